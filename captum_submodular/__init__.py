"""Submodular subset-selection attribution (SMDL / LiMA) for Captum.

Main entry points
-----------------
- :class:`SubmodularAttribution` — a drop-in for Captum's ``Occlusion`` /
  ``FeatureAblation`` that ranks regions by a greedy submodular search.
- :mod:`captum_submodular.regions` — feature-mask builders (grid, SLIC, prior-guided).
- :mod:`captum_submodular.search` — search strategies behind one small interface.
- :mod:`captum_submodular.objective` — the objective and its weights.
- :mod:`captum_submodular.metrics` / :mod:`captum_submodular.compare` — faithfulness
  metrics and the side-by-side harness.
- :func:`explain_dataset` — whole datasets to Parquet, in-process or on Ray.
"""

from typing import Any

from .attribution import NonFiniteOutputError, SubmodularAttribution, SubmodularResult
from .objective import ObjectiveWeights
from .search import (
    AcceleratedSearch,
    AnytimeSearch,
    BidirectionalSearch,
    GreedySearch,
    PhaseWinSearch,
    RefinedSearch,
    SearchContext,
    SearchOutcome,
    SearchStrategy,
    run_search,
)


def __getattr__(name: str) -> Any:
    # Lazy: the dataset runner pulls in pyarrow (and optionally Ray) only when used.
    if name in ("explain_dataset", "RegionsConfig"):
        from . import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'captum_submodular' has no attribute {name!r}")


__version__ = "0.2.0"

__all__ = [
    "SubmodularAttribution",
    "SubmodularResult",
    "NonFiniteOutputError",
    "ObjectiveWeights",
    "SearchStrategy",
    "SearchOutcome",
    "GreedySearch",
    "BidirectionalSearch",
    "AcceleratedSearch",
    "PhaseWinSearch",
    "RefinedSearch",
    "AnytimeSearch",
    "SearchContext",
    "run_search",
    "explain_dataset",
    "RegionsConfig",
]
