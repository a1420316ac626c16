"""The submodular objective ``F(S)`` and the model-output transforms it reads.

For a subset ``S`` of regions, with ``x[S]`` the input keeping only ``S`` and
``x[V∖S]`` its complement (everything else set to the baseline):

=================  ====================================================  ==============
term               formula                                               default weight
=================  ====================================================  ==============
consistency        ``p(x[S])``                                           20
collaboration      ``1 − p(x[V∖S])``                                     5
confidence         ``1 − H(softmax(logits(x[S]))) / log C``              0.01
effectiveness      ``Σ_{i∈S} min_{j∈S, j≠i} arccos(cos(e_i, e_j))/π``    0
=================  ====================================================  ==============

``p`` is the model's score for the target (see :data:`OUTPUT_TYPES`), ``C`` the
number of classes and ``e_i`` an embedding of the single-region input ``x[{i}]``.
``F = Σ weight · term``.  The default weights are the reference settings for plain
classifiers; with an embedding the reference multimodal runs use
``effectiveness = 0.05``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ._inputs import resolve_targets

__all__ = [
    "ObjectiveWeights",
    "OUTPUT_TYPES",
    "target_scores",
    "resolve_output_targets",
    "angular_distances",
    "effectiveness",
    "objective_values",
]

#: How the model's output turns into the target score ``p`` and the confidence term.
#:
#: - ``"logits"``: class logits; ``p = softmax(out)[target]`` (softmax over the last
#:   dimension) and confidence from the entropy of that softmax.
#:   Needs ≥ 2 classes: a softmax over one value is the constant 1 (and a 1-D output
#:   would be a softmax over the batch), so such outputs are refused at the first call
#:   with a pointer to ``"scalar"``.
#: - ``"probabilities"``: the model already returns probabilities (values in [0, 1]);
#:   ``p = out[target]`` and confidence from the entropy of ``out``.  Needs ≥ 2 classes
#:   (one probability per example is ``"scalar"``).
#: - ``"scalar"``: one score per example (output ``N`` or ``N×1``); ``p`` is that value,
#:   ``target`` must be ``None`` and the confidence term is 0.
OUTPUT_TYPES = ("logits", "probabilities", "scalar")


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights ``λ`` of the four objective terms (defaults: the reference setting for plain classifiers)."""

    consistency: float = 20.0
    collaboration: float = 5.0
    confidence: float = 0.01
    effectiveness: float = 0.0

    def __post_init__(self) -> None:
        for name in ("consistency", "collaboration", "confidence", "effectiveness"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value)):
                raise ValueError(f"`weights.{name}` must be a finite number, got {value!r}.")


def resolve_output_targets(
    example_shape: Sequence[int], targets: Sequence[Tuple[int, ...]], output_type: str
) -> List[Tuple[int, ...]]:
    """Check the model's per-example output shape against ``output_type`` and the targets.

    Called at the first model call.  Returns the targets with negative indices resolved
    (``-1`` → the last class); raises ``ValueError`` naming ``output_type`` or ``target``
    when the output cannot give one score per example as asked.
    """
    shape = tuple(int(s) for s in example_shape)
    if output_type == "scalar":
        if math.prod(shape) != 1:
            raise ValueError(
                f"output_type='scalar' expects one value per example, but the model returned "
                f"{shape} values per example; pass output_type='logits' (or 'probabilities') "
                f"and a target"
            )
        return [()] * len(targets)
    if len(shape) == 0 or shape[-1] < 2:
        what = "one value per example" if len(shape) == 0 else f"outputs of shape {shape} per example"
        if output_type == "logits":
            raise ValueError(
                f"output_type='logits' takes a softmax over the classes (the last axis), but the "
                f"model returns {what}: a softmax over one class is the constant 1"
                + (" (and over a 1-D output it would mix the examples of the batch)" if not shape else "")
                + "; pass output_type='scalar' to use the model's value as the score"
            )
        raise ValueError(
            f"output_type='probabilities' needs at least 2 classes on the last axis, but the model "
            f"returns {what}; pass output_type='scalar' for one probability per example"
        )
    out = []
    for t in targets:
        if len(t) == 0:
            raise ValueError(
                f"target is None, but the model returns {shape} values per example: pass the class "
                f"to explain as target=..., or output_type='scalar' for a model with one output"
            )
        if len(t) < len(shape):
            raise ValueError(
                f"target {t if len(t) > 1 else t[0]} selects {len(t)} axis/axes, but the model output "
                f"has shape {shape} per example: pass a tuple of {len(shape)} indices"
            )
        out.append(t)
    return resolve_targets(out, shape)


def target_scores(
    output: Tensor,
    targets: Tuple[Tuple[int, ...], ...],
    output_type: str,
) -> Tuple[Tensor, Tensor]:
    """Target score ``p`` and confidence term for every row of a model output.

    Parameters
    ----------
    output:
        Model output, ``k×…`` (one row per composed input).
    targets:
        One index tuple per row (``()`` for ``target=None``), applied after the row index.
    output_type:
        One of :data:`OUTPUT_TYPES`.

    Returns
    -------
    (p, confidence):
        Two float tensors of shape ``(k,)``.
    """
    k = output.shape[0]
    if output_type == "scalar":
        flat = output.reshape(k, -1)
        if flat.shape[1] != 1:
            raise ValueError(
                f"output_type='scalar' expects one value per example, but the model returned "
                f"shape {tuple(output.shape)}."
            )
        p = flat[:, 0]
        return p, torch.zeros_like(p)
    if output.dim() == 1 or output.shape[-1] < 2:
        resolve_output_targets(output.shape[1:], targets, output_type)  # raises the clear error
    out = output.float() if not output.is_floating_point() else output
    if output_type == "probabilities":
        lo, hi = float(out.min()), float(out.max())
        tol = 8.0 * float(torch.finfo(out.dtype).eps)
        if lo < -tol or hi > 1.0 + tol:
            raise ValueError(
                f"output_type='probabilities' but the model returned values in [{lo:.4g}, {hi:.4g}], "
                f"outside [0, 1]; pass output_type='logits' for class logits"
            )
    probs = torch.softmax(out, dim=-1) if output_type == "logits" else out
    n_classes = probs.shape[-1]
    if all(len(t) == 1 for t in targets) and probs.dim() == 2:
        index = torch.tensor([t[0] for t in targets], device=probs.device)
        index = torch.where(index < 0, index + n_classes, index)
        p = probs.gather(1, index[:, None])[:, 0]
        dist = probs
    else:
        p = torch.stack([probs[(r,) + t] for r, t in enumerate(targets)])
        if p.dim() != 1:
            raise ValueError(
                f"`target` must select one value per example; model output has shape {tuple(output.shape)}."
            )
        dist = torch.stack([probs[(r,) + t[:-1]] for r, t in enumerate(targets)])
        dist = dist.reshape(k, -1)
    if n_classes < 2:
        return p, torch.zeros_like(p)
    # In float64 with 0·log 0 = 0 (a clamp at a tiny value underflows to 0 in float16).
    entropy = torch.special.entr(dist.double()).sum(-1)
    confidence = (1.0 - entropy / math.log(n_classes)).to(torch.promote_types(p.dtype, torch.float32))
    return p, confidence


def angular_distances(embeddings: Tensor) -> Tensor:
    """``d(e_i, e_j) = arccos(cos(e_i, e_j)) / π`` for all pairs (``m×m``, values in [0, 1])."""
    e = embeddings.reshape(embeddings.shape[0], -1).double()
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (e @ e.T).clamp(-1.0, 1.0)
    return torch.arccos(cos) / math.pi


def effectiveness(subsets: Tensor, distances: Tensor) -> Tensor:
    """Diversity term ``Σ_{i∈S} min_{j∈S, j≠i} d_ij`` for each row of ``subsets`` (0 if ``|S| ≤ 1``).

    ``subsets`` is ``k×m`` bool, ``distances`` is ``m×m``.  Memory ``k·m²``.
    """
    m = distances.shape[0]
    d = distances.to(subsets.device).clone()
    d.fill_diagonal_(float("inf"))
    masked = torch.where(subsets[:, None, :], d[None], torch.full_like(d[None], float("inf")))
    nearest = masked.min(dim=-1).values  # k×m
    nearest = torch.where(subsets & torch.isfinite(nearest), nearest, torch.zeros_like(nearest))
    del m
    return nearest.sum(-1)


def objective_values(
    weights: ObjectiveWeights,
    p_subset: Tensor,
    p_complement: Tensor,
    confidence: Tensor,
    diversity: Optional[Tensor] = None,
) -> Tensor:
    """``F = λ_cons·p(x[S]) + λ_colla·(1 − p(x[V∖S])) + λ_conf·conf(x[S]) + λ_eff·eff(S)``."""
    value = (
        weights.consistency * p_subset.double()
        + weights.collaboration * (1.0 - p_complement.double())
        + weights.confidence * confidence.double()
    )
    if diversity is not None and weights.effectiveness != 0:
        value = value + weights.effectiveness * diversity.double()
    return value
