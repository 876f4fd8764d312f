"""Model × model matrices from a :func:`nncompare.compare_many` frame, and their clusters.

:func:`model_matrices` turns the tidy frame of a model set into one square matrix per
(layer, measure) — distances (default) or similarities — with the models' metadata
(seed, width, learning rate, labels, ... given by the user) as a table beside it
(:class:`ModelMatrix`). :func:`cluster` runs scipy's hierarchical clustering on one of
them and embeds the models in the plane by multidimensional scaling (Morcos, Raghu &
Bengio 2018, Fig. 5), :class:`Clustering`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Clustering",
    "ModelMatrix",
    "adjusted_rand",
    "check_metadata",
    "classical_mds",
    "cluster",
    "group_summary",
    "model_matrices",
    "model_matrix",
]

VALUES = ("distance", "similarity")
LINKAGES = ("average", "complete", "single", "weighted", "ward")
MDS_KINDS = ("classical", "smacof")


@dataclass
class ModelMatrix:
    """A square model × model matrix of one (layer, measure) of a model set.

    Attributes
    ----------
    values : ndarray of shape (n_models, n_models)
        Symmetric; the diagonal is 0 for distances and the measure's value for identical
        representations (``1``) for similarities.
    names : list of str
        The models, in the order of rows and columns.
    layer : str
        ``layer_a`` of the rows it was built from (with matched layers, also ``layer_b``).
    measure : str
    kind : {"distance", "similarity"}
    metadata : pandas.DataFrame
        One row per model (index: ``names``), one column per metadata key; empty columns
        when no metadata was given.
    """

    values: np.ndarray
    names: list[str]
    layer: str
    measure: str
    kind: str
    metadata: Any = None

    def to_frame(self) -> Any:
        """The matrix as a pandas DataFrame (index and columns: the model names)."""
        import pandas as pd

        return pd.DataFrame(self.values, index=self.names, columns=self.names)

    def distances(self) -> np.ndarray:
        """The matrix as distances (a similarity matrix is taken through its measure's
        distance rule, :func:`nncompare.measures.distance`)."""
        if self.kind == "distance":
            return self.values
        from nncompare.measures._registry import distance

        return np.vectorize(lambda v: distance(self.measure, v))(self.values)

    def __repr__(self) -> str:
        n = len(self.names)
        cols = list(self.metadata.columns) if self.metadata is not None else []
        return (
            f"ModelMatrix({self.measure} {self.kind}, layer={self.layer!r}, {n}×{n} models, "
            f"metadata={cols})"
        )


def check_metadata(
    metadata: Mapping[str, Mapping[str, Any]], names: list[str]
) -> dict[str, dict[str, Any]]:
    """``metadata`` as a plain dict name -> dict for exactly ``names``; a clear error for a
    non-mapping, a missing model or an entry that is not a dict."""
    if not isinstance(metadata, Mapping):
        raise TypeError(
            "metadata must be a mapping model name -> dict of its attributes (e.g. "
            f"{{'s0': {{'seed': 0, 'lr': 0.1}}}}); got {type(metadata).__name__}."
        )
    missing = [n for n in names if n not in metadata]
    if missing:
        raise ValueError(
            f"metadata has no entry for the models {missing} (it has "
            f"{sorted(map(str, metadata))}); give one dict per model."
        )
    for n in names:
        if not isinstance(metadata[n], Mapping):
            raise TypeError(
                f"metadata[{n!r}] must be a dict of attributes; got {type(metadata[n]).__name__}."
            )
    return {n: dict(metadata[n]) for n in names}


def _metadata_frame(names: list[str], metadata: Mapping[str, Mapping[str, Any]] | None) -> Any:
    import pandas as pd

    if metadata is None:
        return pd.DataFrame(index=pd.Index(names, name="model"))
    metadata = check_metadata(metadata, names)
    frame = pd.DataFrame([dict(metadata[n]) for n in names], index=pd.Index(names, name="model"))
    return frame


def _names_of(frame: Any) -> list[str]:
    names = list(dict.fromkeys(list(frame["model_a"]) + list(frame["model_b"])))
    return [str(n) for n in names]


def model_matrix(
    frame: Any,
    layer: str,
    measure: str,
    *,
    value: str = "distance",
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    layer_b: str | None = None,
) -> ModelMatrix:
    """The square model × model matrix of one (layer, measure) of a model-set frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        As returned by :func:`nncompare.compare_many` (columns ``model_a``, ``model_b``,
        ``layer_a``, ``layer_b``, ``measure``, ``value``, ``distance``).
    layer : str
        The ``layer_a`` to take.
    measure : str
    value : {"distance", "similarity"}, default "distance"
        Which column fills the matrix.
    metadata : mapping name -> dict, optional
        Each model's attributes (seed, width, lr, labels, ...), the columns of
        ``ModelMatrix.metadata``. Default: what ``nc.compare_many(..., metadata=)`` kept
        in ``frame.attrs["provenance"]["metadata"]``, if anything.
    layer_b : str, optional
        The ``layer_b`` to take; default: ``layer``.

    Returns
    -------
    ModelMatrix

    Raises
    ------
    ValueError
        When the frame has no rows for (layer, measure), a model pair is missing or
        present twice, or a value is NaN (the row's ``error`` is quoted).
    """
    from nncompare._validation import check_option

    check_option("value", value, VALUES)
    need = {"model_a", "model_b", "layer_a", "layer_b", "measure", "value", "distance"}
    cols = set(getattr(frame, "columns", []))
    if not need <= cols:
        raise ValueError(
            f"frame must be a compare_many frame with the columns {sorted(need)}; it lacks "
            f"{sorted(need - cols)}. Pass the frame nc.compare_many returns."
        )
    if metadata is None:
        attrs = getattr(frame, "attrs", {}) or {}
        metadata = attrs.get("metadata") or (attrs.get("provenance") or {}).get("metadata")
    names = _names_of(frame)
    lb = layer if layer_b is None else layer_b
    sub = frame[
        (frame["layer_a"] == layer) & (frame["layer_b"] == lb) & (frame["measure"] == measure)
    ]
    if sub.empty:
        pairs = sorted(set(zip(frame["layer_a"], frame["measure"], strict=True)))
        raise ValueError(
            f"the frame has no rows for layer {layer!r} (layer_b {lb!r}) and measure "
            f"{measure!r}; it has (layer, measure) = {pairs[:12]}."
        )
    n = len(names)
    index = {name: i for i, name in enumerate(names)}
    out = np.full((n, n), np.nan)
    diag = 0.0 if value == "distance" else _identity_value(measure)
    np.fill_diagonal(out, diag)
    for row in sub.itertuples(index=False):
        i, j = index[str(row.model_a)], index[str(row.model_b)]
        v = float(getattr(row, "distance" if value == "distance" else "value"))
        if np.isnan(v):
            err = getattr(row, "error", None)
            raise ValueError(
                f"{measure} at layer {layer!r} is NaN for {row.model_a} vs {row.model_b}"
                + (f" ({err})" if isinstance(err, str) and err else "")
                + "; a matrix with a missing pair cannot be clustered. Fix that pair or "
                "drop the model."
            )
        if i != j and not np.isnan(out[i, j]):
            raise ValueError(
                f"the frame holds {row.model_a} vs {row.model_b} twice at layer {layer!r} "
                f"for {measure}; pass one run's frame (each unordered pair once)."
            )
        out[i, j] = out[j, i] = v
    missing = [(names[i], names[j]) for i, j in zip(*np.where(np.isnan(out)), strict=True) if i < j]
    if missing:
        raise ValueError(
            f"{len(missing)} model pairs have no row at layer {layer!r} for {measure} "
            f"(e.g. {missing[:3]}); the frame must compare every pair of its models."
        )
    return ModelMatrix(
        values=out,
        names=names,
        layer=layer,
        measure=measure,
        kind=value,
        metadata=_metadata_frame(names, metadata),
    )


def _identity_value(measure: str) -> float:
    from nncompare.measures._registry import get

    rule = get(measure).distance
    if rule == "value":
        raise ValueError(
            f"{measure} is a distance (its value is 0 for identical representations), so "
            "its similarity matrix is not defined; use value='distance'."
        )
    return 1.0


def model_matrices(
    frame: Any,
    *,
    value: str = "distance",
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[tuple[str, str], ModelMatrix]:
    """Every square model × model matrix of a model-set frame, keyed by (layer, measure).

    Takes the rows with ``layer_a == layer_b`` (matched layers; with
    ``compare_many(..., pairs="all")`` use :func:`model_matrix` with ``layer_b=``).
    ``value`` and ``metadata`` as in :func:`model_matrix`.

    Examples
    --------
    >>> df = nc.compare_many(nets, x, measures=["pwcca"])  # doctest: +SKIP
    >>> mats = nc.analyses.model_matrices(df, metadata={"s0": {"lr": 0.1}, ...})  # doctest: +SKIP
    >>> mats["fc2", "pwcca"].values  # doctest: +SKIP
    """
    if not hasattr(frame, "columns") or "layer_a" not in frame.columns:
        raise ValueError(
            f"frame must be the DataFrame returned by nc.compare_many; got {type(frame).__name__}."
        )
    same = frame[frame["layer_a"] == frame["layer_b"]]
    keys = list(dict.fromkeys(zip(same["layer_a"], same["measure"], strict=True)))
    if not keys:
        raise ValueError(
            "the frame has no rows comparing a layer with the same layer of the other model; "
            "use nc.analyses.model_matrix(frame, layer, measure, layer_b=...)."
        )
    return {
        (str(la), str(m)): model_matrix(frame, la, m, value=value, metadata=metadata)
        for la, m in keys
    }


@dataclass
class Clustering:
    """Hierarchical clustering and MDS embedding of a :class:`ModelMatrix`.

    Attributes
    ----------
    matrix : ModelMatrix
    linkage : ndarray of shape (n_models - 1, 4)
        scipy's linkage matrix (:func:`scipy.cluster.hierarchy.linkage`).
    order : list of int
        Leaf order of the dendrogram (rows/columns of the ordered heatmap).
    labels : ndarray of int, or None
        Flat cluster of each model (1, 2, ...), when ``n_clusters`` was given.
    embedding : ndarray of shape (n_models, n_components)
        MDS coordinates of the models.
    stress : float
        Kruskal's stress-1 of the embedding against the distances (0 = exact).
    method, mds : str
    """

    matrix: ModelMatrix
    linkage: np.ndarray
    order: list[int]
    labels: np.ndarray | None
    embedding: np.ndarray
    stress: float
    method: str
    mds: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ordered_names(self) -> list[str]:
        """The model names in dendrogram order."""
        return [self.matrix.names[i] for i in self.order]

    def to_frame(self) -> Any:
        """One row per model: name, cluster, MDS coordinates and the metadata columns."""
        import pandas as pd

        df = pd.DataFrame(index=pd.Index(self.matrix.names, name="model"))
        if self.labels is not None:
            df["cluster"] = self.labels
        for k in range(self.embedding.shape[1]):
            df[f"mds{k + 1}"] = self.embedding[:, k]
        df["order"] = [self.order.index(i) for i in range(len(self.matrix.names))]
        if self.matrix.metadata is not None:
            df = df.join(self.matrix.metadata)
        return df.reset_index()

    def agreement(self, key: str) -> float:
        """Adjusted Rand index between the flat clusters and metadata column ``key``
        (1: the clusters are exactly the groups of ``key``; about 0: unrelated)."""
        if self.labels is None:
            raise ValueError(
                "this clustering has no flat clusters; call cluster(matrix, n_clusters=k)."
            )
        meta = self.matrix.metadata
        if meta is None or key not in meta.columns:
            have = [] if meta is None else list(meta.columns)
            raise KeyError(f"metadata has no column {key!r}; it has {have}.")
        return adjusted_rand(self.labels, meta[key].to_numpy())


def adjusted_rand(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie 1985), numpy only."""
    from math import comb

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"labelings must be 1-D of one length; got {a.shape} and {b.shape}.")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    s_ij = sum(comb(int(v), 2) for v in table.ravel())
    s_a = sum(comb(int(v), 2) for v in table.sum(1))
    s_b = sum(comb(int(v), 2) for v in table.sum(0))
    total = comb(len(a), 2)
    expected = s_a * s_b / total if total else 0.0
    top = 0.5 * (s_a + s_b)
    if top == expected:
        return 1.0
    return float((s_ij - expected) / (top - expected))


def classical_mds(d: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Classical (Torgerson) MDS: coordinates whose Euclidean distances best match ``d``.

    Double-centres ``-d²/2`` and keeps the top ``n_components`` eigenvectors scaled by the
    square root of their (non-negative) eigenvalues; each axis' sign is fixed so that its
    largest-magnitude coordinate is positive (deterministic output).
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.shape[0]
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (d**2) @ j
    w, v = np.linalg.eigh((b + b.T) / 2)
    idx = np.argsort(w)[::-1][:n_components]
    coords = v[:, idx] * np.sqrt(np.clip(w[idx], 0.0, None))
    for k in range(coords.shape[1]):
        if coords[np.argmax(np.abs(coords[:, k])), k] < 0:
            coords[:, k] *= -1
    return coords


def _stress(d: np.ndarray, x: np.ndarray) -> float:
    from scipy.spatial.distance import pdist, squareform

    e = squareform(pdist(x))
    iu = np.triu_indices(d.shape[0], 1)
    den = float(np.sum(d[iu] ** 2))
    return float(np.sqrt(np.sum((d[iu] - e[iu]) ** 2) / den)) if den > 0 else 0.0


def cluster(
    matrix: ModelMatrix | Any,
    *,
    method: str = "average",
    n_clusters: int | None = None,
    n_components: int = 2,
    mds: str = "classical",
    seed: int = 0,
) -> Clustering:
    """Hierarchical clustering and an MDS embedding of a model × model distance matrix.

    Parameters
    ----------
    matrix : ModelMatrix, or square array of distances
        A similarity :class:`ModelMatrix` is turned into distances by its measure's rule.
    method : {"average", "complete", "single", "weighted", "ward"}, default "average"
        scipy's linkage method (:func:`scipy.cluster.hierarchy.linkage` on the condensed
        distances).
    n_clusters : int, optional
        Cut the tree into this many flat clusters (``fcluster(..., "maxclust")``).
    n_components : int, default 2
        Dimensions of the MDS embedding.
    mds : {"classical", "smacof"}, default "classical"
        "classical": Torgerson's eigen-decomposition (numpy; deterministic).
        "smacof": :class:`sklearn.manifold.MDS` on the precomputed distances (needs
        scikit-learn), started from the classical solution.
    seed : int, default 0
        Random state of the smacof iterations.

    Returns
    -------
    Clustering

    Raises
    ------
    ValueError
        For a matrix that is not square, symmetric, finite and non-negative with a zero
        diagonal, or fewer than 3 models.
    """
    from nncompare._validation import check_option

    check_option("method", method, LINKAGES)
    check_option("mds", mds, MDS_KINDS)
    if not isinstance(matrix, ModelMatrix):
        arr = np.asarray(matrix, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ValueError(
                f"matrix must be a ModelMatrix or a square array of distances; got shape "
                f"{arr.shape}."
            )
        matrix = ModelMatrix(
            arr, [str(i) for i in range(arr.shape[0])], "", "", "distance", _metadata_frame(
                [str(i) for i in range(arr.shape[0])], None
            )
        )  # fmt: skip
    d = np.asarray(matrix.distances(), dtype=np.float64)
    n = d.shape[0]
    if n < 3:
        raise ValueError(f"clustering needs at least 3 models; the matrix has {n}.")
    if not np.all(np.isfinite(d)):
        raise ValueError("the distance matrix has NaN or infinite entries; it cannot be clustered.")
    if not np.allclose(d, d.T, atol=1e-10):
        raise ValueError(
            "the distance matrix is not symmetric (largest |d - d.T| = "
            f"{float(np.abs(d - d.T).max()):.3g}); pass a symmetric one."
        )
    if np.any(d < -1e-12) or np.any(np.abs(np.diag(d)) > 1e-12):
        raise ValueError(
            "distances must be non-negative with a zero diagonal; got min "
            f"{float(d.min()):.3g} and largest diagonal {float(np.abs(np.diag(d)).max()):.3g}."
        )
    if isinstance(n_components, bool) or not isinstance(n_components, int):
        raise TypeError(f"n_components must be an int; got {type(n_components).__name__}.")
    if not 1 <= n_components < n:
        raise ValueError(
            f"n_components must be in [1, {n - 1}] for {n} models; got {n_components}."
        )
    d = np.clip((d + d.T) / 2, 0.0, None)
    np.fill_diagonal(d, 0.0)
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    cond = squareform(d, checks=False)
    link = linkage(cond, method=method)
    link = optimal_leaf_ordering(link, cond)
    order = [int(i) for i in leaves_list(link)]
    labels = None
    if n_clusters is not None:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int):
            raise TypeError(f"n_clusters must be an int; got {type(n_clusters).__name__}.")
        if not 1 <= n_clusters <= n:
            raise ValueError(f"n_clusters must be in [1, {n}]; got {n_clusters}.")
        labels = fcluster(link, t=n_clusters, criterion="maxclust").astype(int)
    coords = classical_mds(d, n_components)
    if mds == "smacof":
        try:
            from sklearn.manifold import MDS
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "mds='smacof' needs scikit-learn (`pip install scikit-learn`); or use "
                "mds='classical'."
            ) from None
        import inspect

        params = inspect.signature(MDS).parameters
        kw: dict[str, Any] = {"n_components": n_components, "n_init": 1, "random_state": seed}
        if "metric_mds" in params:  # scikit-learn >= 1.8: metric= names the dissimilarity
            kw.update(metric="precomputed", init="classical_mds")
        else:
            kw["dissimilarity"] = "precomputed"
        est = MDS(**kw)
        coords = est.fit_transform(d, init=coords)
    return Clustering(
        matrix=matrix,
        linkage=link,
        order=order,
        labels=labels,
        embedding=coords,
        stress=_stress(d, coords),
        method=method,
        mds=mds,
    )


def group_summary(matrix: ModelMatrix, key: str) -> Any:
    """Mean ± std of the off-diagonal entries within each group of metadata ``key`` and
    between each pair of groups (Morcos et al. 2018, Figs. 3-4).

    Returns
    -------
    pandas.DataFrame
        Columns ``layer``, ``measure``, ``kind``, ``group_a``, ``group_b``, ``n_pairs``,
        ``mean``, ``std``; ``group_a == group_b`` rows are within a group. A group of
        one model has no pair within it: that row has ``n_pairs`` 0 and NaN mean and std.
    """
    import pandas as pd

    meta = matrix.metadata
    if meta is None or key not in meta.columns:
        have = [] if meta is None else list(meta.columns)
        raise KeyError(f"metadata has no column {key!r}; it has {have}.")
    groups = meta[key].to_numpy()
    uniq = list(dict.fromkeys(groups.tolist()))
    rows = []
    for ai, ga in enumerate(uniq):
        for gb in uniq[ai:]:
            ia, ib = np.where(groups == ga)[0], np.where(groups == gb)[0]
            vals = [matrix.values[i, j] for i in ia for j in ib if (i < j if ga == gb else True)]
            rows.append(
                {
                    "layer": matrix.layer,
                    "measure": matrix.measure,
                    "kind": matrix.kind,
                    "group_a": ga,
                    "group_b": gb,
                    "n_pairs": len(vals),
                    "mean": float(np.mean(vals)) if vals else float("nan"),
                    "std": float(np.std(vals)) if vals else float("nan"),
                }
            )
    return pd.DataFrame(rows)
