"""Errors on the command line: one line each, the traceback only with ``--debug``."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

__all__ = ["DEBUG_KEY", "NncompareGroup", "one_line"]

DEBUG_KEY = "nncompare.debug"
_MAX_CHARS = 2000


def one_line(text: str, limit: int = _MAX_CHARS) -> str:
    """``text`` with its lines joined and whitespace runs collapsed, at most ``limit`` chars."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _debug(ctx: click.Context) -> bool:
    if ctx.meta.get(DEBUG_KEY):
        return True
    return os.environ.get("NNCOMPARE_DEBUG", "").strip().lower() in ("1", "true", "yes")


class _OneLineError(click.ClickException):
    """A ClickException whose message is already one line."""


class NncompareGroup(click.Group):
    """A click group that turns every exception of a command into a one-line error.

    ``click.ClickException`` messages are flattened to one line; any other exception
    becomes ``Error: <Type>: <message> (rerun with --debug for the traceback)``. With
    ``nncompare --debug`` (or ``NNCOMPARE_DEBUG=1``) the full traceback is printed to
    stderr as well: the exception itself, or the cause of a ClickException.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.exceptions.UsageError as exc:
            # click would print a Usage: preamble and a hint above the error: one line here,
            # with click's usage exit code (2).
            err = _OneLineError(one_line(exc.format_message()))
            err.exit_code = exc.exit_code
            raise err from None
        except click.ClickException as exc:
            cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
            if _debug(ctx):
                traceback.print_exception(cause if cause is not None else exc, file=sys.stderr)
            raise _OneLineError(one_line(exc.format_message())) from cause
        except Exception as exc:
            if _debug(ctx):
                raise
            message = one_line(str(exc)) or "(no message)"
            raise _OneLineError(
                f"{type(exc).__name__}: {message} (rerun with --debug for the traceback)"
            ) from exc
