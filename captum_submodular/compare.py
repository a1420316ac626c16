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
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import numbers
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from . import metrics as _metrics
from .metrics import CurveResult
from .search import DEFAULT_SEARCH, SEARCHES

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
    "STANDARD_METHODS",
    "DEFAULT_LINEUP",
    "main",
]

#: Metric name -> (curve kind, substrate override or None, higher is better, table header).
COMPARE_METRICS: Dict[str, Tuple[str, Optional[str], bool, str]] = {
    "insertion": ("insertion", None, True, "insertion ↑"),
    "deletion": ("deletion", None, False, "deletion ↓"),
    "insertion_blur": ("insertion", "blur", True, "blur insertion ↑"),
    "highest_confidence": ("insertion", None, True, "HC"),
}
#: Reveal budgets of the highest-confidence metric.
HC_BUDGETS: Tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
_FORMAT = "captum_submodular.compare/1"


# --------------------------------------------------------------------------- methods


@dataclass
class Method:
    """One attribution method of a comparison.

    Attributes
    ----------
    name:
        Unique label (table row, legend, JSON key).
    attribution:
        A Captum attribution instance (``Occlusion(model)``,
        ``LayerGradCam(model, layer)``, ``SubmodularAttribution(model)`` …).
    kwargs:
        Keyword arguments of every ``attribute`` call (``target`` is set by the
        harness).
    kwargs_fn:
        Optional ``kwargs_fn(i, x_i) -> dict`` for per-example arguments (e.g. a
        SLIC ``feature_mask``); ``i`` is the example index and ``x_i`` its
        ``1×…`` input. Merged over ``kwargs``.
    postprocess:
        Optional callable applied to the raw ``attribute`` output (e.g.
        ``torch.abs``) before it is brought to the input's shape.
    """

    name: str
    attribution: Any
    kwargs: Optional[Dict[str, Any]] = None
    kwargs_fn: Optional[Callable[[int, Tensor], Dict[str, Any]]] = None
    postprocess: Optional[Callable[[Any], Any]] = None

    def call_kwargs(self, i: int, x_i: Tensor) -> Dict[str, Any]:
        kw = dict(self.kwargs or {})
        if self.kwargs_fn is not None:
            extra = self.kwargs_fn(i, x_i)
            if not isinstance(extra, Mapping):
                raise ValueError(
                    f"methods: kwargs_fn of {self.name!r} must return a dict, got {type(extra).__name__}"
                )
            kw.update(extra)
        return kw


class _Counter:
    def __init__(self) -> None:
        self.rows = 0
        self.calls = 0


class _CountingForward:
    """Calls the wrapped forward function and adds the first argument's batch size to a counter.

    ``__wrapped__`` makes :func:`inspect.signature` (used by Captum's ``_run_forward``)
    see the original signature; other attributes (``device_ids`` …) are delegated.
    """

    def __init__(self, fn: Callable[..., Any], counter: _Counter) -> None:
        self.__dict__["__wrapped__"] = fn
        self.__dict__["_counter"] = counter

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        counter = self.__dict__["_counter"]
        counter.calls += 1
        first = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(first, (tuple, list)) and first:
            first = first[0]
        counter.rows += int(first.shape[0]) if isinstance(first, Tensor) and first.dim() > 0 else 1
        return self.__dict__["__wrapped__"](*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["__wrapped__"], name)


def _attribution_objects(obj: Any) -> List[Any]:
    """``obj`` and every nested object holding a ``forward_func`` (NoiseTunnel, LayerIG, GuidedGradCam …)."""
    found: List[Any] = []
    seen = set()

    def visit(o: Any, depth: int) -> None:
        if id(o) in seen or depth > 4 or isinstance(o, nn.Module):
            return
        seen.add(id(o))
        if "forward_func" in getattr(o, "__dict__", {}):
            found.append(o)
        for v in list(getattr(o, "__dict__", {}).values()):
            if hasattr(v, "__dict__") and "forward_func" in getattr(v, "__dict__", {}):
                visit(v, depth + 1)

    visit(obj, 0)
    return found


class count_evaluations:
    """Context manager counting the model rows an attribution instance evaluates.

    >>> with count_evaluations(method) as counter:          # doctest: +SKIP
    ...     method.attribute(x, target=3)
    >>> counter.rows                                          # doctest: +SKIP
    """

    def __init__(self, attribution: Any) -> None:
        self.objects = _attribution_objects(attribution)
        if not self.objects:
            raise ValueError(
                f"methods: {type(attribution).__name__} has no `forward_func` attribute; "
                "expected a Captum attribution instance"
            )
        self.counter = _Counter()
        self._saved: List[Tuple[Any, Any]] = []

    def __enter__(self) -> _Counter:
        try:
            for o in self.objects:
                original = o.__dict__["forward_func"]
                self._saved.append((o, original))
                o.forward_func = _CountingForward(original, self.counter)
        except BaseException:
            self._restore()
            raise
        return self.counter

    def _restore(self) -> None:
        while self._saved:
            o, original = self._saved.pop()
            o.forward_func = original

    def __exit__(self, *exc: Any) -> None:
        self._restore()


def to_input_shape(attribution: Any, x: Tensor, name: str = "method") -> Tensor:
    """Bring one example's map to ``x``'s shape (``1×C×…``) or ``1×1×…``.

    * a 1-tuple is unpacked; an ``H×W`` or ``1×H×W`` map of an ``N×C×H×W`` input
      gains the missing axes;
    * a map whose spatial shape differs is upsampled with
      ``LayerAttribution.interpolate`` (bilinear for 2-D, linear / trilinear
      for 1-D / 3-D);
    * a channel count other than the input's or 1 is summed to one channel.
    """
    from captum.attr import LayerAttribution

    if isinstance(attribution, (tuple, list)):
        if len(attribution) != 1:
            raise ValueError(f"methods: {name!r} returned {len(attribution)} tensors; expected one")
        attribution = attribution[0]
    if not isinstance(attribution, Tensor):
        raise ValueError(f"methods: {name!r} returned {type(attribution).__name__}; expected a tensor")
    a = attribution.detach()
    if not a.is_floating_point():
        a = a.float()
    if tuple(a.shape) == tuple(x.shape):
        return a
    if x.dim() < 3:
        raise ValueError(
            f"methods: {name!r} returned shape {tuple(a.shape)} for an input of shape {tuple(x.shape)}"
        )
    spatial = tuple(x.shape[2:])
    while a.dim() < x.dim():
        a = a.unsqueeze(0)
    if a.dim() != x.dim() or a.shape[0] != 1:
        raise ValueError(
            f"methods: {name!r} returned shape {tuple(attribution.shape)}, which cannot be brought to "
            f"the input shape {tuple(x.shape)}"
        )
    if tuple(a.shape[2:]) != spatial:
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(spatial))
        if mode is None:
            raise ValueError(f"methods: cannot upsample {name!r}'s map to {spatial}")
        a = LayerAttribution.interpolate(a, spatial, interpolate_mode=mode)
    if a.shape[1] not in (1, x.shape[1]):
        a = a.sum(dim=1, keepdim=True)
    return a


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` in ``model.modules()`` order (Grad-CAM's usual layer)."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            last = m
    if last is None:
        raise ValueError("model has no nn.Conv2d layer")
    return last


# --------------------------------------------------------------------------- result


def _concat_curves(parts: Sequence[CurveResult]) -> CurveResult:
    """Stack curves of disjoint examples, padding shorter ones with their last point."""
    width = max(int(c.scores.shape[1]) for c in parts)

    def pad(t: Tensor) -> Tensor:
        extra = width - t.shape[1]
        return torch.cat([t, t[:, -1:].expand(-1, extra)], dim=1) if extra else t

    return CurveResult(
        area=torch.cat([c.area for c in parts]),
        fractions=torch.cat([pad(c.fractions) for c in parts]),
        scores=torch.cat([pad(c.scores) for c in parts]),
        lengths=torch.cat([c.lengths for c in parts]),
        kind=parts[0].kind,
    )


def _stats(values: Sequence[float]) -> Tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _fmt(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    if digits == 0:
        return f"{mean:,.0f} ± {std:,.0f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass
class Comparison:
    """Per-example results of :func:`compare`.

    Attributes
    ----------
    methods:
        Method names, in order.
    metrics:
        Curve metrics computed (``"insertion"``, ``"deletion"``, ``"insertion_blur"``).
    values:
        ``values[method][metric]``: ``(N,)`` areas; also ``"evaluations"`` and
        ``"seconds"`` per example.
    highest_confidence:
        ``highest_confidence[method]``: ``(len(hc_examples), len(budgets))``
        (empty when no labels or no misclassified example).
    hc_examples:
        Indices of the misclassified examples scored by highest confidence.
    curves:
        ``curves[method][metric]``: :class:`~captum_submodular.metrics.CurveResult`
        (``"highest_confidence"``: the true-class insertion curves of ``hc_examples``).
    maps:
        ``maps[method]``: ``N×C×…`` or ``N×1×…`` CPU tensor, the maps scored.
    inputs, targets, labels, predictions, names:
        The batch (CPU), the explained class per example, the true labels (or
        ``None``), the clean predicted class and example names.
    target_probabilities:
        Clean softmax probability of each example's target.
    """

    methods: List[str]
    metrics: List[str]
    values: Dict[str, Dict[str, np.ndarray]]
    highest_confidence: Dict[str, np.ndarray] = field(default_factory=dict)
    hc_examples: List[int] = field(default_factory=list)
    budgets: Tuple[float, ...] = HC_BUDGETS
    curves: Dict[str, Dict[str, CurveResult]] = field(default_factory=dict)
    maps: Dict[str, Tensor] = field(default_factory=dict)
    inputs: Optional[Tensor] = None
    targets: List[int] = field(default_factory=list)
    labels: Optional[List[int]] = None
    predictions: List[int] = field(default_factory=list)
    names: List[str] = field(default_factory=list)
    target_probabilities: List[float] = field(default_factory=list)
    n_steps: int = 50
    substrate: Optional[str] = None

    # ------------------------------------------------------------------ summaries

    @property
    def n_examples(self) -> int:
        return len(self.targets)

    @property
    def has_hc(self) -> bool:
        return self.labels is not None

    def summary(self) -> Dict[str, Dict[str, Tuple[float, float]]]:
        """``summary()[method][column] = (mean, std)`` for every table column."""
        out: Dict[str, Dict[str, Tuple[float, float]]] = {}
        for name in self.methods:
            row: Dict[str, Tuple[float, float]] = {}
            for metric in self.metrics:
                row[metric] = _stats(self.values[name][metric])
            if self.has_hc:
                hc = np.asarray(self.highest_confidence.get(name, np.zeros((0, len(self.budgets)))))
                for j, b in enumerate(self.budgets):
                    row[f"hc@{b:g}"] = _stats(hc[:, j] if hc.size else [])
                if not self.hc_examples:
                    row["hc@none"] = (float("nan"), float("nan"))
            row["evaluations"] = _stats(self.values[name]["evaluations"])
            row["seconds"] = _stats(self.values[name]["seconds"])
            out[name] = row
        return out

    def table(self, digits: int = 3, bold_best: bool = True) -> str:
        """Markdown table: one row per method, ``mean ± std`` over examples.

        Columns: method, the curve metrics (insertion ↑, deletion ↓, blur
        insertion ↑ when computed), highest confidence per budget (when labels
        were given; mean over the misclassified examples, ``n/a`` when none),
        evaluations/example, seconds/example. The best mean of each metric
        column is bold.
        """
        summary = self.summary()
        cols: List[Tuple[str, str, Optional[bool], int]] = []  # key, header, higher_is_better, digits
        for metric in self.metrics:
            cols.append((metric, COMPARE_METRICS[metric][3], COMPARE_METRICS[metric][2], digits))
        if self.has_hc:
            n_mis = len(self.hc_examples)
            if n_mis == 0:  # one placeholder column instead of a block of n/a
                cols.append(("hc@none", "highest confidence ↑ (n=0 misclassified)", None, digits))
            for b in self.budgets if n_mis else ():
                cols.append((f"hc@{b:g}", f"HC@{b:.0%} ↑ (n={n_mis})", True, digits))
        cols.append(("evaluations", "evaluations/example", None, 0))
        cols.append(("seconds", "seconds/example", None, 2))
        best: Dict[str, float] = {}
        for key, _, hib, _ in cols:
            means = [summary[m][key][0] for m in self.methods if not math.isnan(summary[m][key][0])]
            if hib is not None and means and len(self.methods) > 1:
                best[key] = max(means) if hib else min(means)
        lines = ["| method | " + " | ".join(h for _, h, _, _ in cols) + " |"]
        lines.append("|---|" + "|".join("---:" for _ in cols) + "|")
        for name in self.methods:
            cells = []
            for key, _, _, d in cols:
                mean, std = summary[name][key]
                text = _fmt(mean, std, d)
                if bold_best and key in best and mean == best[key]:
                    text = f"**{text}**"
                cells.append(text)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    # ------------------------------------------------------------------ files

    def to_dict(self) -> Dict[str, Any]:
        """The per-example numbers and curves as plain Python (what :meth:`to_json` writes)."""
        methods: Dict[str, Any] = {}
        for name in self.methods:
            entry: Dict[str, Any] = {k: [float(v) for v in vals] for k, vals in self.values[name].items()}
            if self.has_hc:
                hc = np.asarray(self.highest_confidence.get(name, np.zeros((0, len(self.budgets)))))
                entry["highest_confidence"] = [[float(v) for v in row] for row in hc]
            entry["curves"] = {
                metric: {
                    "fractions": c.fractions.tolist(),
                    "scores": c.scores.tolist(),
                    "lengths": c.lengths.tolist(),
                    "kind": c.kind,
                }
                for metric, c in self.curves.get(name, {}).items()
            }
            methods[name] = entry
        return {
            "format": _FORMAT,
            "n_steps": self.n_steps,
            "substrate": self.substrate,
            "metrics": list(self.metrics),
            "budgets": list(self.budgets),
            "examples": {
                "names": list(self.names),
                "targets": list(self.targets),
                "labels": None if self.labels is None else list(self.labels),
                "predictions": list(self.predictions),
                "target_probabilities": list(self.target_probabilities),
                "hc_examples": list(self.hc_examples),
            },
            "methods": methods,
        }

    def to_json(self, path: Union[str, os.PathLike]) -> str:
        """Write :meth:`to_dict` as JSON (floats round-trip exactly); returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1, ensure_ascii=False)
        return path

    @classmethod
    def from_json(cls, path: Union[str, os.PathLike]) -> "Comparison":
        """Rebuild the numbers and curves written by :meth:`to_json` (maps and inputs are not stored)."""
        with open(os.fspath(path), encoding="utf-8") as fh:
            data = json.load(fh)
        if data.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a comparison file (format {data.get('format')!r})")
        ex = data["examples"]
        metrics = list(data["metrics"])
        values, hc, curves = {}, {}, {}
        for name, entry in data["methods"].items():
            values[name] = {k: np.asarray(entry[k], dtype=np.float64) for k in metrics + ["evaluations", "seconds"]}
            if "highest_confidence" in entry:
                hc[name] = np.asarray(entry["highest_confidence"], dtype=np.float64).reshape(
                    -1, len(data["budgets"])
                )
            curves[name] = {
                m: CurveResult(
                    area=_metrics.curve_area(
                        torch.tensor(c["fractions"], dtype=torch.float64),
                        torch.tensor(c["scores"], dtype=torch.float64),
                    ),
                    fractions=torch.tensor(c["fractions"], dtype=torch.float64),
                    scores=torch.tensor(c["scores"], dtype=torch.float64),
                    lengths=torch.tensor(c["lengths"], dtype=torch.long),
                    kind=c["kind"],
                )
                for m, c in entry.get("curves", {}).items()
            }
        return cls(
            methods=list(data["methods"]), metrics=metrics, values=values, highest_confidence=hc,
            hc_examples=list(ex["hc_examples"]), budgets=tuple(data["budgets"]), curves=curves,
            targets=list(ex["targets"]), labels=ex["labels"], predictions=list(ex["predictions"]),
            names=list(ex["names"]), target_probabilities=list(ex["target_probabilities"]),
            n_steps=int(data["n_steps"]), substrate=data["substrate"],
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence["Comparison"]) -> "Comparison":
        """One comparison from shards over disjoint examples (e.g. runs in parallel processes).

        The parts must have the same methods, metrics, budgets, steps and substrate;
        examples keep the order of ``parts``. Region-mode curves of different lengths are
        padded by repeating their last point (as :class:`CurveResult` does). Maps and
        inputs are joined only when every part has them.
        """
        parts = list(parts)
        if not parts or not all(isinstance(p, Comparison) for p in parts):
            raise ValueError("parts: expected a non-empty sequence of Comparison objects")
        first = parts[0]
        for i, p in enumerate(parts[1:], 1):
            for attr in ("methods", "metrics", "budgets", "n_steps", "substrate"):
                if getattr(p, attr) != getattr(first, attr):
                    raise ValueError(f"parts[{i}]: {attr} {getattr(p, attr)!r} differs from parts[0]'s "
                                     f"{getattr(first, attr)!r}")
            if (p.labels is None) != (first.labels is None):
                raise ValueError(f"parts[{i}]: labels given in some parts but not in others")
        offsets = np.cumsum([0] + [p.n_examples for p in parts])[:-1]
        values = {name: {k: np.concatenate([np.asarray(p.values[name][k]) for p in parts])
                         for k in first.values[name]} for name in first.methods}
        hc = {}
        for name in first.methods:
            rows = [np.asarray(p.highest_confidence[name]) for p in parts if name in p.highest_confidence]
            if rows:
                hc[name] = np.concatenate([r.reshape(-1, len(first.budgets)) for r in rows])
        curves: Dict[str, Dict[str, CurveResult]] = {}
        for name in first.methods:
            keys = set.intersection(*(set(p.curves.get(name, {})) for p in parts))
            curves[name] = {k: _concat_curves([p.curves[name][k] for p in parts]) for k in sorted(keys)}
        maps = {}
        for name in first.methods:
            if all(name in p.maps for p in parts):
                maps[name] = torch.cat([p.maps[name] for p in parts])
        inputs = torch.cat([p.inputs for p in parts]) if all(p.inputs is not None for p in parts) else None
        return cls(
            methods=list(first.methods), metrics=list(first.metrics), values=values, highest_confidence=hc,
            hc_examples=[int(i + o) for p, o in zip(parts, offsets) for i in p.hc_examples],
            budgets=tuple(first.budgets), curves=curves, maps=maps, inputs=inputs,
            targets=[t for p in parts for t in p.targets],
            labels=None if first.labels is None else [v for p in parts for v in p.labels],
            predictions=[v for p in parts for v in p.predictions], names=[v for p in parts for v in p.names],
            target_probabilities=[v for p in parts for v in p.target_probabilities],
            n_steps=first.n_steps, substrate=first.substrate,
        )  # fmt: skip

    def csv_columns(self) -> List[str]:
        cols = ["method", "example", "name", "target", "label", "prediction"] + list(self.metrics)
        if self.has_hc:
            cols += [f"hc@{b:g}" for b in self.budgets]
        return cols + ["evaluations", "seconds"]

    def to_csv(self, path: Union[str, os.PathLike]) -> str:
        """One row per (method, example) with the raw numbers (``hc@…`` empty for correctly
        classified examples); floats written with ``repr`` so they round-trip. Returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        cols = self.csv_columns()
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for name in self.methods:
                hc = np.asarray(self.highest_confidence.get(name, np.zeros((0, len(self.budgets)))))
                for i in range(self.n_examples):
                    row: List[Any] = [
                        name, i, self.names[i] if i < len(self.names) else "", self.targets[i],
                        "" if self.labels is None else self.labels[i], self.predictions[i],
                    ]  # fmt: skip
                    row += [repr(float(self.values[name][m][i])) for m in self.metrics]
                    if self.has_hc:
                        if i in self.hc_examples:
                            k = self.hc_examples.index(i)
                            row += [repr(float(v)) for v in hc[k]]
                        else:
                            row += [""] * len(self.budgets)
                    row += [repr(float(self.values[name]["evaluations"][i])),
                            repr(float(self.values[name]["seconds"][i]))]
                    writer.writerow(row)
        return path

    # ------------------------------------------------------------------ figure

    def mean_areas(self, metric: str) -> Dict[str, float]:
        return {m: float(np.mean(self.values[m][metric])) for m in self.methods}

    def figure(
        self,
        path: Optional[Union[str, os.PathLike]] = None,
        examples: Optional[Sequence[int]] = None,
        *,
        to_display: Optional[Callable[[Any], Any]] = None,
        class_names: Optional[Sequence[str]] = None,
        title: Optional[str] = None,
        dpi: int = 110,
    ) -> Any:
        """Maps of a few examples plus the mean curves of every method.

        One row per example (default: the first four) with the image and each
        method's map over it (red supports the target, blue opposes it); below,
        one panel per curve metric with the mean curve of each method over all
        examples, the legend giving the mean area. The image is shown with
        ``to_display(x_i)`` (``C×H×W`` in, ``H×W×3`` in ``[0, 1]`` out) or
        min–max scaled. Saved as PNG when ``path`` is given. Returns the
        Matplotlib figure (Agg canvas).
        """
        from . import plotting

        if examples is None:
            examples = list(range(min(4, self.n_examples)))
        examples = [int(i) for i in examples]
        for i in examples:
            if not 0 <= i < self.n_examples:
                raise ValueError(f"examples: index {i} out of range for {self.n_examples} examples")
        show_maps = bool(examples) and self.inputs is not None and all(m in self.maps for m in self.methods)
        rows = len(examples) if show_maps else 0
        panels = [m for m in self.metrics if all(m in self.curves.get(n, {}) for n in self.methods)]
        ncols = max(1 + len(self.methods), 2 * max(1, len(panels)))
        cell = 2.1
        height = max(cell * rows + (3.3 if panels else 0), 1.0)
        fig = plotting.new_figure((cell * (1 + len(self.methods)) if show_maps else 4.0 * max(1, len(panels)),
                                   max(height, 1.0)))
        ratios = [1.0] * rows + ([1.45] if panels else [])
        gs = fig.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.35,
                              top=1.0 - (0.8 if title else 0.45) / height, bottom=0.05, left=0.05, right=0.98)
        for r, i in enumerate(examples if show_maps else []):
            sub = gs[r, 0].subgridspec(1, 1 + len(self.methods), wspace=0.05)
            x_i = self.inputs[i]
            img = plotting.to_image(x_i, to_display)
            ax = fig.add_subplot(sub[0, 0])
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            tgt = self.targets[i]
            tname = class_names[tgt] if class_names is not None and 0 <= tgt < len(class_names) else str(tgt)
            tname = tname if len(tname) <= 22 else tname[:21] + "…"
            label = self.names[i] if i < len(self.names) and self.names[i] else f"example {i}"
            prob = self.target_probabilities[i] if i < len(self.target_probabilities) else float("nan")
            ax.set_title(f"{label}\n{tname} (p={prob:.2f})", fontsize=7.5)
            for c, name in enumerate(self.methods):
                ax = fig.add_subplot(sub[0, c + 1])
                ins = self.values[name].get("insertion")
                dele = self.values[name].get("deletion")
                extra = []
                if ins is not None:
                    extra.append(f"ins {ins[i]:.2f}")
                if dele is not None:
                    extra.append(f"del {dele[i]:.2f}")
                head = f"{name}\n" if r == 0 else ""
                plotting.overlay(ax, img, self.maps[name][i], title=head + " ".join(extra), fontsize=7.5)
        if panels:
            sub = gs[rows, 0].subgridspec(1, len(panels), wspace=0.3)
            for p, metric in enumerate(panels):
                ax = fig.add_subplot(sub[0, p])
                curves = {n: (self.curves[n][metric].fractions, self.curves[n][metric].scores) for n in self.methods}
                kind, override, hib, header = COMPARE_METRICS[metric]
                ttl = {"insertion": "Insertion", "deletion": "Deletion", "insertion_blur": "Blurred insertion",
                       "highest_confidence": "True-class insertion"}.get(metric, metric)
                ttl += f" ({'higher' if hib else 'lower'} is better)"
                plotting.plot_curves(
                    ax, curves, areas=self.mean_areas(metric) if metric in self.values[self.methods[0]] else None,
                    title=ttl, xlabel="fraction of pixels " + ("deleted" if kind == "deletion" else "inserted"),
                    legend_loc="upper right" if kind == "deletion" else "lower right", fontsize=7.5,
                )  # fmt: skip
                ax.set_ylim(0.0, 1.02)
        if title:
            fig.suptitle(title, fontsize=10, y=1.0 - 0.1 / height)
        if path is not None:
            path = os.fspath(path)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return fig


# --------------------------------------------------------------------------- harness


def _check_methods(methods: Any) -> List[Method]:
    if not isinstance(methods, (list, tuple)) or len(methods) == 0:
        raise ValueError("methods must be a non-empty list of Method; got an empty or non-list value")
    seen = set()
    for m in methods:
        if not isinstance(m, Method):
            raise ValueError(f"methods must hold Method instances; got {type(m).__name__}")
        if not isinstance(m.name, str) or not m.name:
            raise ValueError(f"methods: every Method needs a non-empty name; got {m.name!r}")
        if m.name in seen:
            raise ValueError(f"methods: duplicate method name {m.name!r}")
        seen.add(m.name)
        if not callable(getattr(m.attribution, "attribute", None)):
            raise ValueError(f"methods: {m.name!r} has no attribute() method; expected a Captum attribution")
    return list(methods)


def _check_metrics(metrics: Any, labels: Any) -> Tuple[List[str], bool]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    try:
        names = list(metrics)
    except TypeError:
        raise ValueError(f"metrics must be a sequence of names; got {metrics!r}") from None
    unknown = [m for m in names if m not in COMPARE_METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown metric(s) {unknown}; choose from {list(COMPARE_METRICS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"metrics: duplicate names in {names}")
    hc = "highest_confidence" in names
    if hc and labels is None:
        raise ValueError("labels: the highest_confidence metric needs the true labels (labels=...)")
    curve = [m for m in names if m != "highest_confidence"]
    return curve, hc or labels is not None


def _int_list(value: Any, n: int, name: str) -> List[int]:
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return [int(value.item())] * n
        if value.dim() != 1 or value.numel() != n or value.is_floating_point():
            raise ValueError(f"{name} must hold {n} integers; got a tensor of shape {tuple(value.shape)}")
        return [int(v) for v in value.tolist()]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return [int(value)] * n
    if isinstance(value, (list, tuple)):
        if len(value) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{name} must be a list of {n} integers; got {value!r}")
        return [int(v) for v in value]
    raise ValueError(f"{name} must be an int, a list of {n} ints or an integer tensor; got {type(value).__name__}")


def _example_baselines(baselines: Any, i: int, n: int) -> Any:
    if isinstance(baselines, Tensor) and baselines.dim() > 0 and baselines.shape[0] == n and n > 1:
        return baselines[i : i + 1]
    return baselines


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def compare(
    model: Callable[..., Tensor],
    inputs: Tensor,
    targets: Any,
    methods: Sequence[Method],
    *,
    baselines: Any = None,
    metrics: Sequence[str] = ("insertion", "deletion"),
    n_steps: int = 50,
    substrate: Any = None,
    labels: Any = None,
    names: Optional[Sequence[str]] = None,
    output: Union[str, Callable[..., Any]] = "softmax",
    perturbations_per_eval: int = 64,
    show_progress: bool = True,
) -> Comparison:
    r"""Explain every example with every method and score the maps with one protocol.

    Parameters
    ----------
    model:
        The classifier (``N×…`` in, ``N×classes`` logits out); used for the
        clean predictions and the metrics. The methods hold their own
        references (normally the same model).
    inputs:
        ``N×C×H×W`` batch (any ``N×…`` tensor works when no layer maps or
        figure are needed).
    targets:
        Class explained per example: an int, a list / tensor of ``N`` ints, or
        ``None`` for the clean predicted class.
    methods:
        Non-empty list of :class:`Method` with unique names.
    baselines:
        Captum forms (``None`` → 0, scalar, tensor of one example or the
        batch): the metrics' substrate, also passed to methods that accept
        ``baselines`` and do not set them.
    metrics:
        Names from ``("insertion", "deletion", "insertion_blur",
        "highest_confidence")``.
    n_steps:
        Steps ``K`` of the pixel-mode curves.
    substrate:
        Substrate of ``"insertion"``, ``"deletion"`` and highest confidence
        (see :mod:`captum_submodular.metrics`); ``"insertion_blur"`` always
        uses the blur.
    labels:
        True labels (int list/tensor of ``N``); enables highest confidence on
        the misclassified examples.
    names:
        Example names for the table files and figure.
    output:
        Score of the metrics (``"softmax"`` of the target by default).
    perturbations_per_eval:
        Rows per model call of the clean pass and the metrics.
    show_progress:
        tqdm bar over methods × examples, then over methods × metrics.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Naming the argument, for an empty method list, duplicate method names,
        an unknown metric, bad targets / labels, or missing labels for
        highest confidence.
    """
    methods = _check_methods(methods)
    curve_metrics, want_hc = _check_metrics(metrics, labels)
    if not isinstance(inputs, Tensor) or inputs.dim() < 2 or inputs.shape[0] == 0:
        raise ValueError(
            f"inputs must be a non-empty N×… tensor; got {getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    n_steps = _metrics._check_positive_int(n_steps, "n_steps")
    ppe = _metrics._check_positive_int(perturbations_per_eval, "perturbations_per_eval")
    n = int(inputs.shape[0])
    if names is not None and len(names) != n:
        raise ValueError(f"names must have one entry per example ({n}); got {len(names)}")
    label_list = None if labels is None else _int_list(labels, n, "labels")
    if "insertion_blur" in curve_metrics and (inputs.dim() != 4 or min(inputs.shape[-2:]) <= 5):
        raise ValueError(f"metrics: insertion_blur needs N×C×H×W images with H, W > 5; got {tuple(inputs.shape)}")
    inputs = inputs.detach()

    # Clean predictions: one pass, reused everywhere.
    with torch.no_grad():
        outs = [model(inputs[s : s + ppe]) for s in range(0, n, ppe)]
    clean = torch.cat([o.detach() for o in outs])
    if clean.dim() != 2 or clean.shape[0] != n:
        raise ValueError(f"model must return N×classes outputs; got shape {tuple(clean.shape)}")
    predictions = clean.argmax(dim=1).cpu().tolist()
    target_list = predictions[:] if targets is None else _int_list(targets, n, "targets")
    probs = torch.softmax(clean.double(), dim=1)
    target_probs = [float(probs[i, t]) for i, t in enumerate(target_list)]
    hc_examples = (
        [i for i in range(n) if label_list[i] != predictions[i]] if want_hc and label_list is not None else []
    )

    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(methods) * (n + len(hc_examples)), desc="compare", unit="expl", file=sys.stderr)

    values: Dict[str, Dict[str, np.ndarray]] = {}
    maps: Dict[str, Tensor] = {}
    hc_maps: Dict[str, Dict[int, Tensor]] = {}
    try:
        for method in methods:
            evals = np.zeros(n)
            secs = np.zeros(n)
            per_example: List[Tensor] = []
            pass_bl = baselines is not None and _accepts(method.attribution.attribute, "baselines")

            def explain(i: int, target: int) -> Tuple[Tensor, int, float]:
                x_i = inputs[i : i + 1]
                kw = method.call_kwargs(i, x_i)
                if pass_bl and "baselines" not in kw:
                    kw["baselines"] = _example_baselines(baselines, i, n)
                kw["target"] = target
                with count_evaluations(method.attribution) as counter:
                    start = time.perf_counter()
                    raw = method.attribution.attribute(x_i, **kw)
                    elapsed = time.perf_counter() - start
                if method.postprocess is not None:
                    raw = method.postprocess(raw)
                return to_input_shape(raw, x_i, method.name).cpu(), counter.rows, elapsed

            for i in range(n):
                if bar is not None:
                    bar.set_postfix_str(f"{method.name} #{i}")
                a, evals[i], secs[i] = explain(i, target_list[i])
                per_example.append(a)
                if bar is not None:
                    bar.update(1)
            shapes = {tuple(a.shape) for a in per_example}
            if len(shapes) > 1:
                per_example = [a.sum(dim=1, keepdim=True) if a.dim() > 2 else a for a in per_example]
            maps[method.name] = torch.cat(per_example)
            values[method.name] = {"evaluations": evals, "seconds": secs}
            hc_maps[method.name] = {}
            for i in hc_examples:
                if label_list[i] == target_list[i]:
                    hc_maps[method.name][i] = maps[method.name][i : i + 1]
                else:
                    hc_maps[method.name][i] = explain(i, label_list[i])[0]
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    # Metrics: batched over examples, clean output reused.
    curves: Dict[str, Dict[str, CurveResult]] = {m.name: {} for m in methods}
    hc_values: Dict[str, np.ndarray] = {}
    jobs = len(methods) * (len(curve_metrics) + (1 if hc_examples else 0))
    bar = None
    if show_progress and jobs:
        from tqdm.auto import tqdm

        bar = tqdm(total=jobs, desc="metrics", unit="curve", file=sys.stderr)
    try:
        for method in methods:
            attr = maps[method.name].to(inputs.device)
            for metric in curve_metrics:
                kind, override, _, _ = COMPARE_METRICS[metric]
                res = _metrics.perturbation_curves(
                    model, inputs, attr, kind, target_list, baselines, n_steps=n_steps,
                    substrate=override if override is not None else substrate, output=output,
                    perturbations_per_eval=ppe, clean_output=clean,
                )  # fmt: skip
                curves[method.name][metric] = res
                values[method.name][metric] = res.area.numpy()
                if bar is not None:
                    bar.update(1)
            if hc_examples:
                idx = torch.tensor(hc_examples, device=inputs.device)
                sub_bl = baselines
                if isinstance(baselines, Tensor) and baselines.dim() > 0 and baselines.shape[0] == n and n > 1:
                    sub_bl = baselines[idx.to(baselines.device)]
                hc = _metrics.highest_confidence(
                    model, inputs[idx], torch.cat([hc_maps[method.name][i] for i in hc_examples]).to(inputs.device),
                    [label_list[i] for i in hc_examples], sub_bl, budgets=HC_BUDGETS, n_steps=n_steps,
                    substrate=substrate, perturbations_per_eval=ppe, clean_output=clean[idx.to(clean.device)],
                )  # fmt: skip
                hc_values[method.name] = hc.values.numpy()
                curves[method.name]["highest_confidence"] = hc.curves
                if bar is not None:
                    bar.update(1)
            elif want_hc:
                hc_values[method.name] = np.zeros((0, len(HC_BUDGETS)))
    finally:
        if bar is not None:
            bar.close()

    return Comparison(
        methods=[m.name for m in methods],
        metrics=curve_metrics,
        values=values,
        highest_confidence=hc_values,
        hc_examples=hc_examples,
        budgets=HC_BUDGETS,
        curves=curves,
        maps=maps,
        inputs=inputs.cpu(),
        targets=target_list,
        labels=label_list,
        predictions=predictions,
        names=list(names) if names is not None else [f"example {i}" for i in range(n)],
        target_probabilities=target_probs,
        n_steps=n_steps,
        substrate=substrate if isinstance(substrate, str) or substrate is None else "callable",
    )


# --------------------------------------------------------------------------- standard set


class _SlicMasks:
    """SLIC mask per example, computed once and shared by the methods that use it."""

    def __init__(self, n_segments: int) -> None:
        self.n_segments = n_segments
        self._cache: Dict[int, Tuple[Tensor, Tensor]] = {}

    def __call__(self, i: int, x_i: Tensor) -> Dict[str, Any]:
        from .regions import slic_mask

        hit = self._cache.get(i)
        if hit is None or not torch.equal(hit[0], x_i):
            hit = (x_i.detach().clone(), slic_mask(x_i[0].detach().cpu(), n_segments=self.n_segments).to(x_i.device))
            self._cache[i] = hit
        return {"feature_mask": hit[1]}


#: Names accepted by :func:`standard_methods`.
STANDARD_METHODS = ("ours", "Occlusion", "FeatureAblation", "KernelShap", "Lime", "IntegratedGradients",
                    "LayerGradCam", "published")
#: The line-up :func:`standard_methods` builds when ``include`` is not given (the slow
#: ``Lime`` and ``published`` rows are opt-in).
DEFAULT_LINEUP = ("ours", "Occlusion", "FeatureAblation", "KernelShap", "IntegratedGradients", "LayerGradCam")
#: Superpixels of the published method's setting (ALGORITHMS.md: about 45 on ImageNet photos).
PUBLISHED_SEGMENTS = 49


def standard_methods(
    model: nn.Module,
    *,
    include: Sequence[str] = DEFAULT_LINEUP,
    n_segments: int = 49,
    search: str = DEFAULT_SEARCH,
    occlusion_window: Tuple[int, ...] = (3, 15, 15),
    occlusion_stride: Tuple[int, ...] = (3, 8, 8),
    shap_samples: int = 500,
    lime_samples: int = 500,
    ig_steps: int = 32,
    layer: Optional[nn.Module] = None,
    published_segments: int = PUBLISHED_SEGMENTS,
    perturbations_per_eval: int = 64,
) -> List[Method]:
    """The usual line-up on an image classifier, sharing one SLIC mask per example.

    - ``ours``: :class:`SubmodularAttribution` with ``search`` and default weights.
    - ``Occlusion``: ``occlusion_window`` / ``occlusion_stride``.
    - ``FeatureAblation``, ``KernelShap`` (``shap_samples``) and ``Lime``
      (``lime_samples``, Captum's default Lasso surrogate; needs scikit-learn) on the
      SLIC mask of ``n_segments`` regions, the same mask as ``ours``.
    - ``IntegratedGradients``: ``ig_steps`` steps, internal batch ``ig_steps``.
    - ``LayerGradCam`` on ``layer`` (default: :func:`last_conv_layer`).
    - ``published``: the stand-in for the published method (SMDL/LiMA):
      ``search="bidirectional"`` with the published weights 20/5/0.01/0 on its own SLIC
      mask of ``published_segments`` regions.

    ``include`` picks and orders the rows (default :data:`DEFAULT_LINEUP`; any of
    :data:`STANDARD_METHODS`).
    """
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, LayerGradCam, Lime, Occlusion

    from .attribution import SubmodularAttribution
    from .objective import ObjectiveWeights

    unknown = [m for m in include if m not in STANDARD_METHODS]
    if unknown:
        raise ValueError(f"include: unknown method(s) {unknown}; choose from {list(STANDARD_METHODS)}")
    slic = _SlicMasks(n_segments)
    published_slic = slic if published_segments == n_segments else _SlicMasks(published_segments)
    ppe = perturbations_per_eval
    build: Dict[str, Callable[[], Method]] = {
        "ours": lambda: Method("ours", SubmodularAttribution(model, search=search),
                               {"perturbations_per_eval": ppe}, kwargs_fn=slic),
        "Occlusion": lambda: Method("Occlusion", Occlusion(model),
                                    {"sliding_window_shapes": tuple(occlusion_window),
                                     "strides": tuple(occlusion_stride), "perturbations_per_eval": ppe}),
        "FeatureAblation": lambda: Method("FeatureAblation", FeatureAblation(model),
                                          {"perturbations_per_eval": ppe}, kwargs_fn=slic),
        "KernelShap": lambda: Method("KernelShap", KernelShap(model),
                                     {"n_samples": shap_samples, "perturbations_per_eval": ppe}, kwargs_fn=slic),
        "Lime": lambda: Method("Lime", Lime(model),
                               {"n_samples": lime_samples, "perturbations_per_eval": ppe}, kwargs_fn=slic),
        "IntegratedGradients": lambda: Method("IntegratedGradients", IntegratedGradients(model),
                                              {"n_steps": ig_steps, "internal_batch_size": ig_steps}),
        "LayerGradCam": lambda: Method("LayerGradCam",
                                       LayerGradCam(model, layer if layer is not None else last_conv_layer(model))),
        "published": lambda: Method("published", SubmodularAttribution(model, search="bidirectional",
                                                                       weights=ObjectiveWeights()),
                                    {"perturbations_per_eval": ppe}, kwargs_fn=published_slic),
    }  # fmt: skip
    return [build[name]() for name in include]


# --------------------------------------------------------------------------- command line


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``captum-submodular compare``: the standard line-up on bundled ImageNet samples.

    Prints the Markdown table and writes ``table.md``, ``results.json``,
    ``results.csv`` and ``figure.png`` under ``--out``.
    """
    parser = argparse.ArgumentParser(
        prog="captum-submodular compare",
        description="Compare SubmodularAttribution with Captum methods on bundled ImageNet samples.",
    )
    parser.add_argument("--images", type=int, default=4, help="number of bundled ImageNet samples (first ones)")
    parser.add_argument("--model", default="efficientnet_lite0", help="model name (see models.available_models)")
    parser.add_argument("--regions", type=int, default=49, help="SLIC regions for the region methods")
    parser.add_argument("--search", default=DEFAULT_SEARCH, choices=tuple(SEARCHES))
    parser.add_argument("--methods", default=",".join(DEFAULT_LINEUP),
                        help=f"comma-separated subset of {','.join(STANDARD_METHODS)}")
    parser.add_argument("--metrics", default="insertion,deletion,insertion_blur",
                        help=f"comma-separated subset of {','.join(COMPARE_METRICS)}")
    parser.add_argument("--steps", type=int, default=50, help="steps of the insertion/deletion curves")
    parser.add_argument("--no-labels", action="store_true",
                        help="do not pass the true labels (no highest confidence on misclassified images)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", default=os.path.join("outputs", "compare"), help="output folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.images < 1:
        parser.error("--images must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    from .data import imagenet_samples
    from .models import load_model

    lm = load_model(args.model)
    samples = imagenet_samples(limit=args.images)
    x = torch.stack([lm.preprocess(s.image) for s in samples]).to(lm.device)
    labels = None if args.no_labels else [int(s.label) for s in samples]
    methods = standard_methods(lm.model, include=[m.strip() for m in args.methods.split(",") if m.strip()],
                               n_segments=args.regions, search=args.search)
    result = compare(
        lm.model, x, None, methods, metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
        n_steps=args.steps, labels=labels, names=[s.name for s in samples], show_progress=not args.no_progress,
    )  # fmt: skip
    table = result.table()
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    result.to_json(os.path.join(args.out, "results.json"))
    result.to_csv(os.path.join(args.out, "results.csv"))
    result.figure(os.path.join(args.out, "figure.png"), to_display=lm.to_display, class_names=lm.class_names,
                  title=f"{args.model}, {len(samples)} images, SLIC {args.regions} regions")
    print(f"wrote {args.out}/table.md, results.json, results.csv, figure.png", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
