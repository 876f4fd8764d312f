"""Summaries of Freeze Training experiments (Raghu et al. 2017, §4.2).

:func:`nncompare.training.freeze_experiment` (the workbench) trains the networks; the
summary of its runs is an analysis, so that the report can read it without the workbench.
"""

from __future__ import annotations

from typing import Any

__all__ = ["summarize_freeze"]


def summarize_freeze(runs: Any) -> Any:
    """Mean and standard deviation over seeds of :func:`freeze_experiment`'s runs.

    Returns
    -------
    pandas.DataFrame
        Per (model, mode): ``n_seeds, test_accuracy_mean, test_accuracy_std,
        saved_fraction_mean, backward_flops_mean, seconds_mean`` (std with ddof=1, NaN
        for one seed).
    """
    g = runs.groupby(["model", "mode"], sort=False)
    out = g.agg(
        n_seeds=("seed", "count"),
        test_accuracy_mean=("test_accuracy", "mean"),
        test_accuracy_std=("test_accuracy", "std"),
        saved_fraction_mean=("saved_fraction", "mean"),
        backward_flops_mean=("backward_flops", "mean"),
        seconds_mean=("seconds", "mean"),
    )
    return out.reset_index()
