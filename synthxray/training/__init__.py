"""Training loops: shared pieces in ``common``/``diffusion``, one Config + ``train`` per backend."""
