"""Small data sets that ship with Python packages (no downloads, ever).

* :func:`load_digits` - scikit-learn's 1797 real 8×8 handwritten digits.
* :func:`load_mnist1d` - MNIST-1D, generated offline by the ``mnist1d`` package.
* :func:`load_array_file` - your own ``.npy`` / ``.npz`` arrays.
* :func:`prepare_images` - image batches in either layout, uint8 or float, to the
  float32 channels-first tensor a model expects (layout inferred or given, scaled,
  normalised; says what it did).

Every loader returns a :class:`Dataset` (``x``, ``y``, ``name``, ``split``,
``num_classes``, ``info``). Torch is imported only when ``as_tensor=True``.
"""

from nncompare.workbench.data._dataset import Dataset
from nncompare.workbench.data.arrays import load_array_file
from nncompare.workbench.data.digits import load_digits, stratified_split
from nncompare.workbench.data.images import PreparedImages, parse_scale, prepare_images
from nncompare.workbench.data.mnist1d import load_mnist1d

__all__ = [
    "Dataset",
    "PreparedImages",
    "load_array_file",
    "load_digits",
    "load_mnist1d",
    "parse_scale",
    "prepare_images",
    "stratified_split",
]
