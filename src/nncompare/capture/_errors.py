"""Exceptions raised by :mod:`nncompare.capture`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from nncompare.errors import NNCompareError

__all__ = ["InvalidCacheError", "LayerNotFoundError", "StaleCacheError"]

_HOW_TO_LIST = (
    "List every layer name with `nncompare layers MODEL` on the command line "
    "or `nc.list_layers(model)` in Python."
)


class LayerNotFoundError(NNCompareError, KeyError):
    """A requested layer name or pattern matches no module of the model.

    Subclass of :class:`KeyError`, so ``except KeyError`` also catches it. Unlike a
    plain ``KeyError`` its message is printed as is (not quoted), and it names the
    closest existing layers.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @classmethod
    def for_name(
        cls,
        name: str,
        known: Iterable[str],
        *,
        owner: str = "the model",
        is_pattern: bool = False,
        how_to_list: str = _HOW_TO_LIST,
    ) -> LayerNotFoundError:
        """Build the error for a missing ``name``, listing close matches among ``known``."""
        known = list(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        if is_pattern:
            head = f"The pattern {name!r} matched no layer of {owner}."
        else:
            head = f"No layer named {name!r} in {owner}."
        if close:
            hint = " Did you mean " + ", ".join(repr(c) for c in close) + "?"
        elif not known:
            hint = " The model has no submodules to choose from."
        else:
            hint = ""
        return cls(f"{head}{hint} {how_to_list}")


class InvalidCacheError(NNCompareError, ValueError):
    """A path is not a complete, readable nncompare activation cache."""


class StaleCacheError(InvalidCacheError):
    """An activation cache exists but was made for another model, layers or options."""
