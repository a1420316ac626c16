"""The result of a comparison: per-example numbers, curves and maps, with table, files and figure."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..metrics import HC_BUDGETS, METRICS, CurveResult, Metric, curve_area

__all__ = ["Comparison"]

_FORMAT = "captum_submodular.compare/2"


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


def _stats(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _fmt(mean: float, std: float, digits: int, spread: bool = True) -> str:
    if math.isnan(mean):
        return "n/a"
    if digits == 0:
        return f"{mean:,.0f} ± {std:,.0f}" if spread else f"{mean:,.0f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if spread else f"{mean:.{digits}f}"


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
    budgeted:
        ``budgeted[method][metric]``: ``(len(hc_examples), len(columns))`` values of the
        metrics that explain the true label (highest confidence: one column per budget;
        empty when no labels or no misclassified example).
    highest_confidence:
        ``budgeted[method]["highest_confidence"]`` by method (read-only view).
    hc_examples:
        Indices of the misclassified examples scored by the label metrics.
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

    methods: list[str]
    metrics: list[str]
    values: dict[str, dict[str, np.ndarray]]
    budgeted: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    hc_examples: list[int] = field(default_factory=list)
    budgets: tuple[float, ...] = HC_BUDGETS
    curves: dict[str, dict[str, CurveResult]] = field(default_factory=dict)
    maps: dict[str, Tensor] = field(default_factory=dict)
    inputs: Tensor | None = None
    targets: list[int] = field(default_factory=list)
    labels: list[int] | None = None
    predictions: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    target_probabilities: list[float] = field(default_factory=list)
    n_steps: int = 50
    substrate: str | None = None

    # ------------------------------------------------------------------ summaries

    @property
    def n_examples(self) -> int:
        return len(self.targets)

    @property
    def has_hc(self) -> bool:
        return self.labels is not None

    @property
    def label_metrics(self) -> list[Metric]:
        """The metrics of :attr:`budgeted` (those explaining the true label), in registry order."""
        names = {k for per in self.budgeted.values() for k in per}
        return [m for m in METRICS.values() if m.name in names]

    @property
    def highest_confidence(self) -> dict[str, np.ndarray]:
        return {name: per["highest_confidence"] for name, per in self.budgeted.items() if "highest_confidence" in per}

    def _label_values(self, name: str, metric: Metric) -> np.ndarray:
        return np.asarray(self.budgeted.get(name, {}).get(metric.name, np.zeros((0, len(metric.columns)))))

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """``summary()[method][column] = (mean, std)`` for every table column."""
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for name in self.methods:
            row: dict[str, tuple[float, float]] = {}
            for metric in self.metrics:
                row[metric] = _stats(self.values[name][metric])
            for label_metric in self.label_metrics:
                vals = self._label_values(name, label_metric)
                for j, col in enumerate(label_metric.columns):
                    row[col] = _stats(vals[:, j] if vals.size else [])
                if not self.hc_examples:
                    row[f"{label_metric.short or label_metric.name}@none"] = (float("nan"), float("nan"))
            row["evaluations"] = _stats(self.values[name]["evaluations"])
            row["seconds"] = _stats(self.values[name]["seconds"])
            out[name] = row
        return out

    def table(self, digits: int = 3, bold_best: bool = True) -> str:
        """Markdown table: one row per method, ``mean ± std`` over examples (the value
        alone when there is one example: a spread of one value means nothing).

        Columns: method, the curve metrics (insertion ↑, deletion ↓, blur
        insertion ↑ when computed), highest confidence per budget (when labels
        were given; mean over the misclassified examples, ``n/a`` when none),
        evaluations/example, seconds/example. The best mean of each metric
        column is bold.
        """
        summary = self.summary()
        cols: list[tuple[str, str, bool | None, int]] = []  # key, header, higher_is_better, digits
        for metric in self.metrics:
            cols.append((metric, METRICS[metric].label, METRICS[metric].higher_is_better, digits))
        n_mis = len(self.hc_examples)
        for lm in self.label_metrics:
            if n_mis == 0:  # one placeholder column instead of a block of n/a
                cols.append(
                    (
                        f"{lm.short or lm.name}@none",
                        f"{lm.name.replace('_', ' ')} {lm.arrow} (n=0 misclassified)",
                        None,
                        digits,
                    )
                )
            for col, b in zip(lm.columns, lm.budgets, strict=True) if n_mis else ():
                cols.append((col, f"{lm.label}@{b:.0%} {lm.arrow} (n={n_mis})", lm.higher_is_better, digits))
        cols.append(("evaluations", "evaluations/example", None, 0))
        cols.append(("seconds", "seconds/example", None, 2))
        best: dict[str, float] = {}
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
                text = _fmt(mean, std, d, spread=self.n_examples > 1)
                if bold_best and key in best and mean == best[key]:
                    text = f"**{text}**"
                cells.append(text)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        """The per-example numbers and curves as plain Python (what :meth:`to_json` writes)."""
        methods: dict[str, Any] = {}
        for name in self.methods:
            entry: dict[str, Any] = {k: [float(v) for v in vals] for k, vals in self.values[name].items()}
            for metric in self.label_metrics:
                entry[metric.name] = [[float(v) for v in row] for row in self._label_values(name, metric)]
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
            "label_metrics": [m.name for m in self.label_metrics],
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

    def to_json(self, path: str | os.PathLike) -> str:
        """Write :meth:`to_dict` as JSON (floats round-trip exactly); returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1, ensure_ascii=False)
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Comparison:
        """Rebuild the numbers and curves written by :meth:`to_json` (maps and inputs are not stored)."""
        with open(os.fspath(path), encoding="utf-8") as fh:
            data = json.load(fh)
        if data.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a comparison file (format {data.get('format')!r})")
        ex = data["examples"]
        metrics = list(data["metrics"])
        values, budgeted, curves = {}, {}, {}
        for name, entry in data["methods"].items():
            values[name] = {k: np.asarray(entry[k], dtype=np.float64) for k in metrics + ["evaluations", "seconds"]}
            budgeted[name] = {
                k: np.asarray(entry[k], dtype=np.float64).reshape(-1, len(METRICS[k].columns))
                for k in data.get("label_metrics", [])
            }
            curves[name] = {
                m: CurveResult(
                    area=curve_area(
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
            methods=list(data["methods"]), metrics=metrics, values=values,
            budgeted=budgeted if data.get("label_metrics") else {},
            hc_examples=list(ex["hc_examples"]), budgets=tuple(data["budgets"]), curves=curves,
            targets=list(ex["targets"]), labels=ex["labels"], predictions=list(ex["predictions"]),
            names=list(ex["names"]), target_probabilities=list(ex["target_probabilities"]),
            n_steps=int(data["n_steps"]), substrate=data["substrate"],
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[Comparison]) -> Comparison:
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
                    raise ValueError(
                        f"parts[{i}]: {attr} {getattr(p, attr)!r} differs from parts[0]'s {getattr(first, attr)!r}"
                    )
            if (p.labels is None) != (first.labels is None):
                raise ValueError(f"parts[{i}]: labels given in some parts but not in others")
        offsets = np.cumsum([0] + [p.n_examples for p in parts])[:-1]
        values = {
            name: {k: np.concatenate([np.asarray(p.values[name][k]) for p in parts]) for k in first.values[name]}
            for name in first.methods
        }
        budgeted = (
            {
                name: {m.name: np.concatenate([p._label_values(name, m) for p in parts]) for m in first.label_metrics}
                for name in first.methods
            }
            if first.label_metrics
            else {}
        )
        curves: dict[str, dict[str, CurveResult]] = {}
        for name in first.methods:
            keys = set.intersection(*(set(p.curves.get(name, {})) for p in parts))
            curves[name] = {k: _concat_curves([p.curves[name][k] for p in parts]) for k in sorted(keys)}
        maps = {}
        for name in first.methods:
            if all(name in p.maps for p in parts):
                maps[name] = torch.cat([p.maps[name] for p in parts])
        inputs = (
            torch.cat([p.inputs for p in parts if p.inputs is not None])
            if all(p.inputs is not None for p in parts)
            else None
        )
        return cls(
            methods=list(first.methods), metrics=list(first.metrics), values=values, budgeted=budgeted,
            hc_examples=[int(i + o) for p, o in zip(parts, offsets, strict=True) for i in p.hc_examples],
            budgets=tuple(first.budgets), curves=curves, maps=maps, inputs=inputs,
            targets=[t for p in parts for t in p.targets],
            labels=None if first.labels is None else [v for p in parts for v in (p.labels or [])],
            predictions=[v for p in parts for v in p.predictions], names=[v for p in parts for v in p.names],
            target_probabilities=[v for p in parts for v in p.target_probabilities],
            n_steps=first.n_steps, substrate=first.substrate,
        )  # fmt: skip

    def csv_columns(self) -> list[str]:
        cols = ["method", "example", "name", "target", "label", "prediction"] + list(self.metrics)
        for metric in self.label_metrics:
            cols += list(metric.columns)
        return cols + ["evaluations", "seconds"]

    def to_csv(self, path: str | os.PathLike) -> str:
        """One row per (method, example) with the raw numbers (``hc@…`` empty for correctly
        classified examples); floats written with ``repr`` so they round-trip. Returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        cols = self.csv_columns()
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for name in self.methods:
                for i in range(self.n_examples):
                    row: list[Any] = [
                        name, i, self.names[i] if i < len(self.names) else "", self.targets[i],
                        "" if self.labels is None else self.labels[i], self.predictions[i],
                    ]  # fmt: skip
                    row += [repr(float(self.values[name][m][i])) for m in self.metrics]
                    for metric in self.label_metrics:
                        if i in self.hc_examples:
                            k = self.hc_examples.index(i)
                            row += [repr(float(v)) for v in self._label_values(name, metric)[k]]
                        else:
                            row += [""] * len(metric.columns)
                    row += [
                        repr(float(self.values[name]["evaluations"][i])),
                        repr(float(self.values[name]["seconds"][i])),
                    ]
                    writer.writerow(row)
        return path

    # ------------------------------------------------------------------ figure

    def mean_areas(self, metric: str) -> dict[str, float]:
        return {m: float(np.mean(self.values[m][metric])) for m in self.methods}

    def figure(
        self,
        path: str | os.PathLike | None = None,
        examples: Sequence[int] | None = None,
        *,
        to_display: Callable[[Any], Any] | None = None,
        class_names: Sequence[str] | None = None,
        title: str | None = None,
        dpi: int = 110,
    ) -> Any:
        """Maps of a few examples plus the mean curves of every method.

        One row per example (default: the first four) with the image and each
        method's map over it (red supports the target, blue opposes it; one colour
        key for all maps, each scaled to its own 99.5th percentile of ``|value|``);
        below, one panel per curve metric with the mean curve of each method over
        all examples, the legend (under the panel) giving the mean area. The image is shown with
        ``to_display(x_i)`` (``C×H×W`` in, ``H×W×3`` in ``[0, 1]`` out) or
        min–max scaled. Saved as PNG when ``path`` is given. Returns the
        Matplotlib figure (Agg canvas).
        """
        from .. import plotting

        if examples is None:
            examples = list(range(min(4, self.n_examples)))
        examples = [int(i) for i in examples]
        for i in examples:
            if not 0 <= i < self.n_examples:
                raise ValueError(f"examples: index {i} out of range for {self.n_examples} examples")
        show_maps = bool(examples) and self.inputs is not None and all(m in self.maps for m in self.methods)
        rows = len(examples) if show_maps else 0
        panels = [m for m in self.metrics if all(m in self.curves.get(n, {}) for n in self.methods)]
        cell = 2.1
        key_rows = 1 if rows else 0
        height = max(cell * rows + 0.5 * key_rows + (3.6 if panels else 0), 1.0)
        fig = plotting.new_figure(
            (cell * (1 + len(self.methods)) if show_maps else 4.0 * max(1, len(panels)), max(height, 1.0))
        )
        ratios = [1.0] * rows + [0.1] * key_rows + ([1.45] if panels else [])
        gs = fig.add_gridspec(
            len(ratios),
            1,
            height_ratios=ratios,
            hspace=0.35,
            top=1.0 - (0.8 if title else 0.45) / height,
            bottom=0.05,
            left=0.05,
            right=0.98,
        )
        for r, i in enumerate(examples if show_maps and self.inputs is not None else []):
            sub = gs[r, 0].subgridspec(1, 1 + len(self.methods), wspace=0.05)
            x_i = self.inputs[i]  # type: ignore[index]  # (checked in the loop's condition)
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
        if show_maps:
            # One key for all maps: each map is scaled to its own 99.5th percentile of |value|.
            cax = fig.add_subplot(gs[rows, 0].subgridspec(1, 3, width_ratios=[1, 2, 1])[0, 1])
            plotting.colour_key(
                cax,
                1.0,
                orientation="horizontal",
                fontsize=6.5,
                label="each map / its 99.5th percentile of |value|: red supports the target, blue opposes it",
            )
        if panels:
            sub = gs[rows + key_rows, 0].subgridspec(1, len(panels), wspace=0.3)
            for p, metric in enumerate(panels):
                ax = fig.add_subplot(sub[0, p])
                curves = {n: (self.curves[n][metric].fractions, self.curves[n][metric].scores) for n in self.methods}
                spec = METRICS[metric]
                kind = spec.curve
                ttl = f"{spec.title or metric} ({'higher' if spec.higher_is_better else 'lower'} is better)"
                plotting.plot_curves(
                    ax, curves, areas=self.mean_areas(metric) if metric in self.values[self.methods[0]] else None,
                    title=ttl, xlabel="fraction of pixels " + ("deleted" if kind == "deletion" else "inserted"),
                    fontsize=7.5,
                )  # fmt: skip
                ax.set_ylim(0.0, 1.02)
        if title:
            fig.suptitle(title, fontsize=10, y=1.0 - 0.1 / height)
        if path is not None:
            path = os.fspath(path)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return fig
