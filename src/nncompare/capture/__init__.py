"""Activations from any PyTorch model, layer by layer.

Find layer names with :func:`list_layers` (or ``nncompare layers MODEL``), or take
the readable default of :func:`default_layers` (block outputs such as ``layer1.0``
for a ResNet, or every leaf with ``granularity="leaves"``), then
collect activations with :func:`capture`, which runs the data through the model
once and returns them (:class:`CapturedActivations`), streams them batch by batch
into a ``consumer``, and/or stores them in an atomic on-disk cache
(:func:`load_cache`). :class:`ActivationRecorder` is the underlying forward-hook
context manager, for driving the model yourself.

Layer names are the dot paths of :meth:`torch.nn.Module.named_modules` (as used
by torchvision's feature extraction), e.g. ``"layer1.0.conv1"``; glob patterns
such as ``"layer*.?.relu"`` select several (given a sample input,
:func:`resolve_layers` also merges matches that return the very same tensor, such as
a Sequential stage and its last block). A module called several times in
one forward pass is recorded once per call, as ``name``, ``name#1``, ``name#2``,
... (``reuse="first"``/``"last"`` keep only one). Conv activations keep torch's
``(n, c, h, w)`` layout; :func:`to_channels_last` moves channels last.

This module object is also callable: ``nncompare.capture(model, data, layers)``
is :func:`capture`, whichever of the two the name resolves to.

Examples
--------
>>> import nncompare as nc  # doctest: +SKIP
>>> from nncompare.capture import format_layer_table  # doctest: +SKIP
>>> print(format_layer_table(nc.list_layers(model, x[:2])))  # doctest: +SKIP
>>> acts = nc.capture(model, x, ["layer*.1.relu", "fc"])  # doctest: +SKIP
>>> acts["fc"].shape  # doctest: +SKIP
(10000, 10)
"""

from __future__ import annotations

import sys
import types
from typing import Any

try:
    import torch as _torch  # noqa: F401
except ImportError as _err:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "nncompare.capture needs PyTorch, which is not installed. Install it with "
        "`pip install 'nncompare[torch]'` (see constraints.txt for the tested version)."
    ) from _err

from nncompare.capture._cache import CapturedActivations, load_cache, model_fingerprint
from nncompare.capture._data import iter_batches
from nncompare.capture._errors import InvalidCacheError, LayerNotFoundError, StaleCacheError
from nncompare.capture._layers import (
    LayerInfo,
    default_layers,
    format_layer_table,
    list_layers,
    resolve_layers,
)
from nncompare.capture._layout import to_channels_last
from nncompare.capture._recorder import ActivationRecorder
from nncompare.capture._recurrent import RecurrentStates, capture_recurrent, recurrent_layers
from nncompare.capture._run import capture

__all__ = [
    "ActivationRecorder",
    "CapturedActivations",
    "InvalidCacheError",
    "LayerInfo",
    "LayerNotFoundError",
    "RecurrentStates",
    "StaleCacheError",
    "capture",
    "capture_recurrent",
    "default_layers",
    "format_layer_table",
    "iter_batches",
    "list_layers",
    "load_cache",
    "model_fingerprint",
    "recurrent_layers",
    "resolve_layers",
    "to_channels_last",
]


class _CallableModule(types.ModuleType):
    """Lets ``nncompare.capture(...)`` work even when the name is bound to this module.

    ``nncompare`` exposes the function :func:`capture` lazily under the same name as
    this subpackage; once the subpackage is imported, Python's import system binds
    ``nncompare.capture`` to the module instead. Making the module callable keeps
    both ``nc.capture(model, data, layers)`` and ``nc.capture.list_layers`` working.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> CapturedActivations | None:
        return capture(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
