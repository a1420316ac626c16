"""Submodular subset-selection attribution (SMDL / LiMA) for Captum.

Main entry points
-----------------
- :class:`SubmodularAttribution` — a drop-in for Captum's ``Occlusion`` /
  ``FeatureAblation`` that ranks regions by a greedy submodular search.
- :mod:`captum_submodular.regions` — feature-mask builders (grid, SLIC, prior-guided).
- :mod:`captum_submodular.search` — search strategies behind one small interface.
- :mod:`captum_submodular.objective` — the objective and its weights.
"""

from .attribution import NonFiniteOutputError, SubmodularAttribution, SubmodularResult
from .objective import ObjectiveWeights
from .search import BidirectionalSearch, GreedySearch, SearchOutcome, SearchStrategy, run_search

__version__ = "0.1.0"

__all__ = [
    "SubmodularAttribution",
    "SubmodularResult",
    "NonFiniteOutputError",
    "ObjectiveWeights",
    "SearchStrategy",
    "SearchOutcome",
    "GreedySearch",
    "BidirectionalSearch",
    "run_search",
]
