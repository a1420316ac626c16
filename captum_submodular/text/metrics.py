"""Faithfulness metrics for language models, over the features (passages) of a prompt.

Every metric reads the target answer's score (log-probability by default) on prompts with
some features removed, through an :class:`LLMScorer` bound once to a model, a prompt and a
target.  Features are ranked by decreasing attribution, ties by the lower feature index (a
stable sort), the same rule for every method.

- :func:`logprob_drop`: ``score(all) − score(all but the top k)`` for each ``k`` — the
  headline metric of ContextCite (Cohen-Wang et al., 2024).  Higher is better.
- :func:`passage_curves`: insertion (start from no feature, put the top-ranked ones back one
  at a time; higher area is better) and deletion (remove them one at a time; lower is better)
  over features, ``x = k / m``, trapezoid area on ``[0, 1]``.

The three are registered in :data:`captum_submodular.metrics.METRICS` as ``llm_logprob_drop``,
``llm_insertion`` and ``llm_deletion`` (``kind="llm"``: they take an :class:`LLMScorer`, not the
image ``Faithfulness`` binding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import _compat
from ..metrics.registry import METRICS, Metric, register_metric
from .llm import SubmodularLLMAttribution, _LLMCall

__all__ = ["LLMScorer", "PassageCurves", "logprob_drop", "passage_curves", "ranking"]


class LLMScorer:
    """The target's score on a prompt with some features kept, many prompts per model call.

    Parameters
    ----------
    llm_attr:
        A :class:`~captum_submodular.text.SubmodularLLMAttribution` (its model, tokenizer,
        ``attr_target`` and ``batched`` setting are used, whatever method it wraps).
    inp:
        The Captum input (``TextTemplateInput``, ``TextTokenInput`` …).
    target:
        The answer (string or token ids); required.
    batch_size:
        Prompts per model call.
    **forward_options:
        Captum's forward options, as in :meth:`SubmodularLLMAttribution.attribute`.

    Attributes
    ----------
    n_features:
        Number of interpretable features ``n``.
    evaluations, model_calls:
        Prompts scored and model calls made so far.
    full_score:
        The score of the unperturbed prompt.
    """

    def __init__(
        self,
        llm_attr: SubmodularLLMAttribution,
        inp: Any,
        target: str | Tensor,
        batch_size: int = 16,
        **forward_options: Any,
    ) -> None:
        if not isinstance(llm_attr, SubmodularLLMAttribution):
            raise ValueError(f"llm_attr must be a SubmodularLLMAttribution; got {type(llm_attr).__name__}")
        if target is None:
            raise ValueError("target: the metrics score a given answer; pass target='...'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        llm_attr._check_input(inp)
        llm_attr._check_target(target, None)
        self.llm_attr = llm_attr
        self.inp = inp
        self.batch_size = batch_size
        self.n_features = int(inp.n_itp_features)
        tokens = _compat.llm_target_tokens(llm_attr, inp, target, None)
        by_tokens = bool(
            forward_options.get(
                "forward_in_tokens", dict(_compat.llm_forward_parameters()).get("forward_in_tokens", False)
            )
        )
        empty = llm_attr._prompt_ids(torch.zeros(1, self.n_features), inp)
        self._call = _LLMCall(
            inp,
            tokens,
            _compat.llm_forward_args(inp, tokens, forward_options),
            llm_attr.batched and empty is not None,
            by_tokens,
        )
        self.evaluations = 0
        self.full_score = float(self(torch.ones(1, self.n_features, dtype=torch.bool))[0])

    @property
    def model_calls(self) -> int:
        return self._call.model_calls

    def __call__(self, presence: Tensor) -> Tensor:
        """``k×n`` bool (``True`` = feature kept) → ``(k,)`` float64 scores."""
        if presence.dim() != 2 or presence.shape[1] != self.n_features:
            raise ValueError(f"presence must be k×{self.n_features}; got shape {tuple(presence.shape)}")
        rows = presence.to(self.llm_attr.device, torch.float32)
        out = []
        with torch.no_grad():
            for s in range(0, rows.shape[0], self.batch_size):
                out.append(self.llm_attr._score_prompts(rows[s : s + self.batch_size], self._call).double().cpu())
        self.evaluations += int(rows.shape[0])
        return torch.cat(out)


def ranking(attributions: Tensor | Sequence[float]) -> Tensor:
    """Feature indices by decreasing attribution, ties by the lower index (stable sort)."""
    a = torch.as_tensor(attributions, dtype=torch.float64).reshape(-1)
    return torch.sort(-a, stable=True).indices


def _check(scorer: LLMScorer, attributions: Any) -> Tensor:
    a = torch.as_tensor(attributions.detach().cpu() if isinstance(attributions, Tensor) else attributions)
    if a.numel() != scorer.n_features:
        raise ValueError(
            f"attributions: expected {scorer.n_features} values (one per feature), got shape {tuple(a.shape)}"
        )
    if not torch.isfinite(a.double()).all():
        raise ValueError("attributions must be finite")
    return ranking(a)


def logprob_drop(scorer: LLMScorer, attributions: Any, ks: Sequence[int] = (1, 2, 3)) -> Tensor:
    """``score(prompt) − score(prompt without its top-k features)`` for each ``k`` in ``ks``.

    Parameters
    ----------
    scorer:
        An :class:`LLMScorer` (prompt and target bound).
    attributions:
        ``n`` values (``(n,)`` or ``1×n``; e.g. ``LLMAttributionResult.seq_attr``).
    ks:
        Numbers of features removed, each in ``1..n``.

    Returns
    -------
    Tensor
        ``(len(ks),)`` float64 drops (log-probability units with ``attr_target="log_prob"``).
    """
    order = _check(scorer, attributions)
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 or k > scorer.n_features for k in ks):
        raise ValueError(f"ks must be numbers of features in 1..{scorer.n_features}; got {ks}")
    presence = torch.ones(len(ks), scorer.n_features, dtype=torch.bool)
    for r, k in enumerate(ks):
        presence[r, order[:k]] = False
    return scorer.full_score - scorer(presence)


@dataclass(frozen=True)
class PassageCurves:
    """Insertion and deletion over features: ``(n+1,)`` scores at ``x = k/n``, and their areas."""

    fractions: Tensor
    insertion: Tensor
    deletion: Tensor

    @property
    def insertion_area(self) -> float:
        return float(torch.trapezoid(self.insertion, self.fractions))

    @property
    def deletion_area(self) -> float:
        return float(torch.trapezoid(self.deletion, self.fractions))


def passage_curves(scorer: LLMScorer, attributions: Any) -> PassageCurves:
    """Insertion and deletion curves over the features ranked by ``attributions`` (``2n`` prompts;
    the empty and full prompts are shared)."""
    order = _check(scorer, attributions)
    n = scorer.n_features
    prefixes = torch.zeros(n + 1, n, dtype=torch.bool)
    for k in range(1, n + 1):
        prefixes[k, order[:k]] = True
    scores = scorer(torch.cat([prefixes, ~prefixes[1:n]]))
    insertion = scores[: n + 1]
    deletion = torch.cat([insertion[n:], scores[n + 1 :], insertion[:1]])
    return PassageCurves(torch.arange(n + 1, dtype=torch.float64) / n, insertion, deletion)


def _insertion_area(scorer: LLMScorer, attributions: Any) -> float:
    return passage_curves(scorer, attributions).insertion_area


def _deletion_area(scorer: LLMScorer, attributions: Any) -> float:
    return passage_curves(scorer, attributions).deletion_area


_LLM_METRICS: dict[str, Metric] = {
    "llm_logprob_drop": Metric(
        "llm_logprob_drop",
        logprob_drop,
        True,
        "log-probability drop of the target when the top-k features are removed (ContextCite)",
        kind="llm",
        label="log-prob drop ↑",
        title="Log-probability drop",
    ),
    "llm_insertion": Metric(
        "llm_insertion",
        _insertion_area,
        True,
        "area under the insertion curve over features",
        kind="llm",
        curve="insertion",
        label="LLM insertion ↑",
        title="Insertion over features",
    ),
    "llm_deletion": Metric(
        "llm_deletion",
        _deletion_area,
        False,
        "area under the deletion curve over features",
        kind="llm",
        curve="deletion",
        label="LLM deletion ↓",
        title="Deletion over features",
    ),
}
for _metric in _LLM_METRICS.values():
    if _metric.name not in METRICS:
        register_metric(_metric)
