"""Which exceptions are the user's to fix (shown as one ``error:`` line) and which are bugs (full traceback).

The rule, shared by ``run_script`` (training scripts) and the ``synthxray`` console script: an
``ExplainedError``, or a ``ValueError`` / ``KeyError`` / ``FileNotFoundError`` / ``FileExistsError`` /
``NotADirectoryError`` raised by synthxray's own code (our validation of flags, files and data), is
the user's input; anything else, including those types raised inside torch, diffusers or another
library, is unexpected and keeps its traceback. A leaf module: it imports nothing from synthxray.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

INPUT_ERRORS = (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError)


class ExplainedError(Exception):
    """An error whose message already says what happened and what to do (e.g. ``HubPushError``)."""


class DataError(ValueError):
    """Input data that cannot be read; the message names the file, key or value."""


def is_input_error(exc: BaseException) -> bool:
    """True when ``exc`` is the user's to fix: see the module docstring."""
    if isinstance(exc, ExplainedError):
        return True
    if not isinstance(exc, INPUT_ERRORS):
        return False
    tb, last = exc.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None:
        return False
    raised_in = Path(last.tb_frame.f_code.co_filename).resolve()
    return _PACKAGE in raised_in.parents


def message(exc: BaseException) -> str:
    """The text to show: ``str(exc)``, without the quotes ``KeyError`` adds."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc) or type(exc).__name__
