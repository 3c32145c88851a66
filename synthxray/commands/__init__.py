"""Sub-commands of the ``synthxray`` console script (see ``synthxray.cli.COMMANDS``)."""
