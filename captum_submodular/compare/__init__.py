r"""Side-by-side comparison of attribution methods on one model and one batch.

The harness is bound once to ``(model, inputs, targets)``: the clean model
output is computed once (one pass over the batch) and reused by every metric
(``clean_output=`` of :mod:`captum_submodular.metrics`). Each method is any
Captum attribution *instance* — ours included — wrapped in a :class:`Method`
with the keyword arguments of its ``attribute`` call.

>>> from captum.attr import FeatureAblation, IntegratedGradients
>>> from captum_submodular import SubmodularAttribution
>>> from captum_submodular.compare import Method, compare
>>> methods = [
...     Method("ours", SubmodularAttribution(model), kwargs_fn=lambda i, x: {"feature_mask": masks[i]}),
...     Method("FeatureAblation", FeatureAblation(model), kwargs_fn=lambda i, x: {"feature_mask": masks[i]}),
...     Method("IG", IntegratedGradients(model), {"n_steps": 32}),
... ]                                                            # doctest: +SKIP
>>> result = compare(model, images, None, methods)              # doctest: +SKIP
>>> print(result.table())                                        # doctest: +SKIP

Protocol
--------
* Every example is explained on its own (one ``attribute`` call with a batch
  of one), so the *evaluations per example* and *seconds per example* are
  clean. Evaluations are counted by temporarily replacing the instance's
  ``forward_func`` (and that of any nested Captum attribution, e.g. the
  wrapped method of ``NoiseTunnel`` or the ``IntegratedGradients`` inside
  ``LayerIntegratedGradients``) by a counting wrapper that adds the batch size
  of the first positional argument on every call; the original is restored in
  a ``finally``. Gradient methods count their forward rows the same way
  (backward passes are not counted).
* ``baselines`` given to :func:`compare` are the metrics' substrate and are
  also passed to every method whose ``attribute`` accepts a ``baselines``
  argument, unless the method's own kwargs set one.
* Maps are brought to the input's shape: layer maps whose spatial shape
  differs are upsampled with ``captum.attr.LayerAttribution.interpolate``
  (bilinear for images), and a channel count other than the input's (or 1) is
  summed to one channel. ``Method.postprocess`` runs first, on the raw output.
* Metrics (pixel mode, ``n_steps`` steps, softmax of the target by default):
  ``"insertion"`` (↑) and ``"deletion"`` (↓) with ``substrate``,
  ``"insertion_blur"`` (↑, insertion from the blurred input,
  ``substrate="blur"``) and ``"highest_confidence"`` (↑; when ``labels`` are
  given: for the *misclassified* examples, the insertion curve of a map of the
  *true* class, max ``p(true class)`` within reveal budgets 25/50/75/100 %).
  For a misclassified example whose target is not its label, the method is
  called once more with ``target=label``; that extra call is not part of the
  evaluations/seconds per example.
* Spreads are sample standard deviations over examples (0 for one example).

DiFull and GridPG (:func:`compare_grids`, :mod:`.grid`) run the same explanation loop on
mosaics of images and score every map by its localisation in the target's cell; AggAtt
figures come from :meth:`GridComparison.figure`.
"""

from ..counting import count_evaluations
from ..metrics import HC_BUDGETS, METRICS
from ..regions import last_conv_layer
from .grid import GRID_SETTINGS, GridComparison, compare_grids, grid_lineup, grid_methods, grid_model, pick_grid_cells
from .harness import Method, compare, explain_one, to_input_shape
from .lineup import DEFAULT_LINEUP, PUBLISHED_SEGMENTS, STANDARD_METHODS, SharedRegions, standard_methods
from .result import Comparison

#: The metrics the harness accepts: the registry of :mod:`captum_submodular.metrics`.
COMPARE_METRICS = METRICS

__all__ = [
    "Method",
    "Comparison",
    "compare",
    "COMPARE_METRICS",
    "HC_BUDGETS",
    "count_evaluations",
    "to_input_shape",
    "last_conv_layer",
    "standard_methods",
    "SharedRegions",
    "STANDARD_METHODS",
    "DEFAULT_LINEUP",
    "PUBLISHED_SEGMENTS",
    "explain_one",
    "compare_grids",
    "GridComparison",
    "GRID_SETTINGS",
    "grid_lineup",
    "grid_methods",
    "grid_model",
    "pick_grid_cells",
]
