"""Representation-similarity measures on (n_samples, n_features) activation matrices.

Pure functions; each module holds one family. ``available()`` lists them with metadata.
"""

from nncompare.measures._registry import MeasureInfo, available, compute, get, similarity
from nncompare.measures.cca import cca, cca_r2, pwcca, svcca
from nncompare.measures.cka import cka, cka_debiased, cka_rbf
from nncompare.measures.conv import dft_cca, reshape_conv
from nncompare.measures.covariance import bures_wasserstein, covariance_cosine
from nncompare.measures.procrustes import procrustes, shape
from nncompare.measures.regression import lr_r2
from nncompare.measures.rsa import mutual_knn, rsa

__all__ = [
    "MeasureInfo",
    "available",
    "bures_wasserstein",
    "cca",
    "cca_r2",
    "cka",
    "cka_debiased",
    "cka_rbf",
    "compute",
    "covariance_cosine",
    "dft_cca",
    "get",
    "lr_r2",
    "mutual_knn",
    "procrustes",
    "pwcca",
    "reshape_conv",
    "rsa",
    "shape",
    "similarity",
    "svcca",
]
