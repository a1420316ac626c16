"""The submodular objective ``F(S)`` and the model-output transforms it reads.

For a subset ``S`` of regions, with ``x[S]`` the input keeping only ``S`` and
``x[V∖S]`` its complement (everything else set to the baseline):

=================  =================================================  ==============
term               formula                                            default weight
=================  =================================================  ==============
consistency        ``p(x[S])``                                         20
collaboration      ``1 − p(x[V∖S])``                                   5
confidence         ``1 − H(softmax(logits(x[S]))) / log C``            0.01
effectiveness      ``Σ_{i∈S} min_{j∈S, j≠i} arccos(cos(e_i, e_j))/π``  0
=================  =================================================  ==============

``p`` is the model's score for the target (see :data:`OUTPUT_TYPES`), ``C`` the
number of classes and ``e_i`` an embedding of the single-region input ``x[{i}]``.
``F = Σ weight · term``.  The default weights are the reference settings for plain
classifiers; with an embedding the reference multimodal runs use
``effectiveness = 0.05``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    "ObjectiveWeights",
    "OUTPUT_TYPES",
    "target_scores",
    "angular_distances",
    "effectiveness",
    "objective_values",
]

#: How the model's output turns into the target score ``p`` and the confidence term.
#:
#: - ``"logits"``: class logits; ``p = softmax(out)[target]`` (softmax over the last
#:   dimension) and confidence from the entropy of that softmax.
#: - ``"probabilities"``: the model already returns probabilities; ``p = out[target]``
#:   and confidence from the entropy of ``out`` (needs ≥ 2 classes).
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
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"`weights.{name}` must be a finite number, got {value!r}.")


def target_scores(output: Tensor, targets: Tuple[Tuple[int, ...], ...], output_type: str,
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
    out = output.float() if not output.is_floating_point() else output
    probs = torch.softmax(out, dim=-1) if output_type == "logits" else out
    n_classes = probs.shape[-1]
    if all(len(t) == 1 for t in targets) and probs.dim() == 2:
        index = torch.tensor([t[0] for t in targets], device=probs.device)
        p = probs.gather(1, index[:, None])[:, 0]
        dist = probs
    else:
        p = torch.stack([probs[(r,) + t] for r, t in enumerate(targets)])
        if p.dim() != 1:
            raise ValueError(
                f"`target` must select one value per example; model output has shape "
                f"{tuple(output.shape)}."
            )
        dist = torch.stack([probs[(r,) + t[:-1]] for r, t in enumerate(targets)])
        dist = dist.reshape(k, -1)
    if n_classes < 2:
        return p, torch.zeros_like(p)
    entropy = -(dist * torch.log(dist.clamp_min(1e-12))).sum(-1)
    confidence = 1.0 - entropy / math.log(n_classes)
    return p, confidence


def angular_distances(embeddings: Tensor) -> Tensor:
    """``d(e_i, e_j) = arccos(cos(e_i, e_j)) / π`` for all pairs (``m×m``, values in [0, 1])."""
    e = embeddings.reshape(embeddings.shape[0], -1).double()
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (e @ e.T).clamp(-1.0, 1.0)
    return torch.arccos(cos) / math.pi


def effectiveness(subsets: Tensor, distances: Tensor) -> Tensor:
    """Diversity term ``Σ_{i∈S} min_{j∈S, j≠i} d_ij`` for each row of ``subsets`` (0 if |S| ≤ 1).

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


def objective_values(weights: ObjectiveWeights, p_subset: Tensor, p_complement: Tensor,
                     confidence: Tensor, diversity: Optional[Tensor] = None) -> Tensor:
    """``F = λ_cons·p(x[S]) + λ_colla·(1 − p(x[V∖S])) + λ_conf·conf(x[S]) + λ_eff·eff(S)``."""
    value = (weights.consistency * p_subset.double()
             + weights.collaboration * (1.0 - p_complement.double())
             + weights.confidence * confidence.double())
    if diversity is not None and weights.effectiveness != 0:
        value = value + weights.effectiveness * diversity.double()
    return value
