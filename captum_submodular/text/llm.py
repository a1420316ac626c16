"""``SubmodularLLMAttribution``: our subset search through Captum's ``LLMAttribution``.

Captum's ``LLMAttribution`` wraps a perturbation method around a language model: the
interpretable features of a prompt (a template's values, the tokens of a text, an image's
segments) are switched on and off, and the method reads the log-probability of a target
answer.  This subclass adds :class:`~captum_submodular.SubmodularAttribution` to the methods
it accepts and differs from Captum in three ways, for our method only (Captum's own methods
run exactly as in ``LLMAttribution``):

- **Batched scoring.**  Captum scores one perturbed prompt per model call.  Here the
  perturbed prompts of one call of the search (up to ``perturbations_per_eval``) are
  tokenized, each followed by the target, right-padded to a common length with an attention
  mask, and scored in one forward.  In a causal model a position never attends to the
  positions after it, so the padding changes nothing: the score is the sequence-level
  log-probability Captum computes with ``forward_in_tokens=False``, which for a causal model
  is also the token-by-token score (``forward_in_tokens=True``) up to floating-point rounding.
  ``batched=False`` (or an ``ImageMaskInput``, whose processor outputs cannot be stacked in
  general) calls Captum's own forward one prompt at a time with the forward arguments Captum
  would pass, whatever the installed release's forward takes.
- **A score our method accepts.**  The search reads one value per prompt: the target's total
  log-probability (``attr_target="log_prob"``) or probability (``"prob"``), with
  ``output_type="scalar"`` (set on the copy of the method it wraps).
- **The full result.**  :meth:`attribute` returns a
  :class:`SubmodularLLMAttributionResult`: Captum's ``LLMAttributionResult`` (its plots work)
  plus the search's result — the features in order, the minimal subset that keeps the
  target's log-probability, the insertion and deletion curves, the model evaluations.

Every argument is checked before any model call: the input type, an empty prompt, tokens of
a ``TextTokenInput`` that are special tokens (pass ``skip_tokens``), a target the tokenizer
cannot encode, ``target=None`` for a model without ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import LLMAttribution, LLMAttributionResult, TextTemplateInput, TextTokenInput
from torch import Tensor

from .. import _compat
from ..attribution import SubmodularAttribution, SubmodularResult

__all__ = ["SubmodularLLMAttribution", "SubmodularLLMAttributionResult", "feature_names"]

#: Keyword arguments of :meth:`SubmodularLLMAttribution.attribute` handed to the search.
_SEARCH_KWARGS = ("perturbations_per_eval", "show_progress", "threshold")


def feature_names(inp: Any) -> list[str]:
    """One readable name per interpretable feature of a Captum ``InterpretableInput``.

    A template's grouped values (``mask=``) are joined with spaces; tokens and image segments
    use ``inp.values``.
    """
    values = [str(v) for v in inp.values]
    if isinstance(inp, TextTemplateInput) and inp.mask is not None:
        groups: dict[int, list[str]] = {}
        for value, idx in zip(values, inp.formatted_mask, strict=True):
            groups.setdefault(int(idx), []).append(value)
        return [" ".join(groups[j]) for j in range(inp.n_itp_features)]
    return values


class SubmodularLLMAttributionResult(LLMAttributionResult):
    """Captum's ``LLMAttributionResult`` with the search's full result.

    Attributes (besides Captum's ``seq_attr``, ``input_tokens``, ``output_tokens``, ``inp``)
    ----------------------------------------------------------------------------------------
    submodular:
        The :class:`~captum_submodular.SubmodularResult`: ``order`` (feature indices, most
        important first), ``minimal_subset``, ``insertion_curve`` / ``deletion_curve``
        (``(m+1,)`` log-probabilities, or probabilities with ``attr_target="prob"``),
        ``region_values``, ``n_evaluations``.
    features:
        One name per interpretable feature (:func:`feature_names`).
    model_calls:
        Model forward calls made for the search (batched prompts count once).
    """

    def __init__(self, *, submodular: SubmodularResult, features: list[str], model_calls: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.submodular = submodular
        self.features = features
        self.model_calls = model_calls

    @property
    def ordered_features(self) -> list[str]:
        """Feature names, most important first."""
        return [self.features[int(i)] for i in self.submodular.order]

    @property
    def minimal_features(self) -> list[str]:
        """Names of the fewest features (a prefix of the order) that keep the target's score."""
        return [self.features[int(i)] for i in self.submodular.minimal_subset]


@dataclass
class _LLMCall:
    """What one :meth:`SubmodularLLMAttribution.attribute` call hands its scorer (one forward argument,
    so that the search passes it through untouched)."""

    inp: Any
    target_tokens: Tensor
    captum_args: tuple[Any, ...]
    batched: bool
    by_tokens: bool
    model_calls: int = 0


class SubmodularLLMAttribution(LLMAttribution):
    """Captum's ``LLMAttribution`` that also accepts :class:`~captum_submodular.SubmodularAttribution`.

    Parameters
    ----------
    attr_method:
        A ``SubmodularAttribution`` built on the language model (``SubmodularAttribution(model)``;
        its search, weights and budget are used, its ``output_type`` is replaced by
        ``"scalar"`` on a copy), or any method Captum's ``LLMAttribution`` accepts
        (``FeatureAblation``, ``ShapleyValueSampling``, ``ShapleyValues``, ``Lime``,
        ``KernelShap``), which then runs exactly as in Captum.
    tokenizer:
        The model's Hugging Face tokenizer.
    attr_target:
        ``"log_prob"`` (default) or ``"prob"``: the score of the target answer.
    batched:
        ``True`` (default): score many perturbed prompts per model call (module docstring).
        ``False``: Captum's forward, one prompt per call.
    pad_token_id:
        Token used to right-pad batched prompts (masked out, never read by a causal model);
        default: the tokenizer's pad, else EOS, else 0.

    Examples
    --------
    >>> llm_attr = SubmodularLLMAttribution(SubmodularAttribution(model), tokenizer)   # doctest: +SKIP
    >>> inp = TextTemplateInput("{} {} {} Answer:", values=[s1, s2, s3])                # doctest: +SKIP
    >>> res = llm_attr.attribute(inp, target=" Paris")                                 # doctest: +SKIP
    >>> res.plot_seq_attr(); res.ordered_features; res.minimal_features                 # doctest: +SKIP
    """

    SUPPORTED_METHODS = LLMAttribution.SUPPORTED_METHODS + (SubmodularAttribution,)

    def __init__(
        self,
        attr_method: Any,
        tokenizer: Any,
        attr_target: str = "log_prob",
        batched: bool = True,
        pad_token_id: int | None = None,
    ) -> None:
        if not isinstance(attr_method, self.SUPPORTED_METHODS):
            names = ", ".join(m.__name__ for m in self.SUPPORTED_METHODS)
            raise ValueError(f"attr_method must be one of {names}; got {type(attr_method).__name__}")
        if attr_target not in ("log_prob", "prob"):
            raise ValueError(f"attr_target must be 'log_prob' or 'prob'; got {attr_target!r}")
        if not isinstance(batched, bool):
            raise ValueError(f"batched must be True or False; got {batched!r}")
        if isinstance(attr_method, SubmodularAttribution) and attr_method.within_region is not None:
            raise ValueError(
                "attr_method: within_region='gradient' needs a differentiable input; the features of "
                "a prompt are switched on and off, so use within_region=None"
            )
        super().__init__(attr_method, tokenizer, attr_target)
        self.is_submodular = isinstance(attr_method, SubmodularAttribution)
        self.batched = batched
        if pad_token_id is None:
            pad_token_id = getattr(tokenizer, "pad_token_id", None)
            if pad_token_id is None:
                pad_token_id = getattr(tokenizer, "eos_token_id", None)
        self.pad_token_id = int(pad_token_id) if pad_token_id is not None else 0
        if self.is_submodular:
            method = self.attr_method
            assert isinstance(method, SubmodularAttribution)
            method.output_type = "scalar"
            method.forward_func = self._score_prompts
            self.include_per_token_attr = False

    # ------------------------------------------------------------------ validation

    def _special_ids(self) -> list[int]:
        ids = getattr(self.tokenizer, "all_special_ids", None)
        return [int(i) for i in ids] if ids else []

    def _check_input(self, inp: Any) -> None:
        if not isinstance(inp, self.SUPPORTED_INPUTS):
            names = ", ".join(t.__name__ for t in self.SUPPORTED_INPUTS)
            raise ValueError(f"inp must be one of {names}; got {type(inp).__name__}")
        if inp.n_itp_features < 1:
            raise ValueError(
                "inp has no interpretable features (an empty text or template values?): nothing to attribute"
            )
        if isinstance(inp, TextTemplateInput):
            if not any(str(v).strip() for v in inp.values):
                raise ValueError("inp: every value of the template is empty: nothing to attribute")
        if isinstance(inp, TextTokenInput):
            special = set(self._special_ids())
            found = [t for t, i in zip(inp.values, inp.itp_tensor[0].tolist(), strict=True) if int(i) in special]
            if found:
                raise ValueError(
                    f"inp: the interpretable tokens include special token(s) {found}; special tokens are never "
                    f"features: pass TextTokenInput(..., skip_tokens=tokenizer.all_special_ids)"
                )

    def _check_target(self, target: Any, gen_args: Any) -> None:
        if target is None:
            generate = getattr(self.model, "generate", None)
            if not callable(generate):
                raise ValueError(
                    "target is None, which asks the model to generate the answer, but the model has no "
                    "generate(); pass the answer to explain as target='...' (or its token ids)"
                )
            return
        if gen_args is not None:
            raise ValueError("gen_args is only used to generate the target; it must be None when target is given")
        if isinstance(target, str):
            if not target:
                raise ValueError("target is an empty string; pass the answer to explain")
            ids = list(self.tokenizer.encode(target, add_special_tokens=False))
            if not ids:
                raise ValueError(f"target {target!r} encodes to no token")
            unk = getattr(self.tokenizer, "unk_token_id", None)
            unk_token = getattr(self.tokenizer, "unk_token", None)
            if unk is not None and int(unk) in [int(i) for i in ids] and not (unk_token and unk_token in target):
                raise ValueError(
                    f"target {target!r} cannot be encoded by the tokenizer: part of it maps to the unknown token "
                    f"{unk_token!r} (ids {ids}); the model would be scored on {unk_token!r}, not on the target"
                )
            return
        if isinstance(target, Tensor):
            if target.dim() != 1 or target.numel() == 0 or target.is_floating_point() or target.dtype == torch.bool:
                raise ValueError(
                    f"target as a tensor must be a non-empty 1-D tensor of token ids; got dtype "
                    f"{target.dtype}, shape {tuple(target.shape)}"
                )
            vocab = len(self.tokenizer) if hasattr(self.tokenizer, "__len__") else None
            if int(target.min()) < 0 or (vocab is not None and int(target.max()) >= vocab):
                raise ValueError(f"target holds token ids outside the tokenizer's vocabulary (0..{vocab})")
            return
        raise ValueError(f"target must be None, a string or a 1-D tensor of token ids; got {type(target).__name__}")

    # ------------------------------------------------------------------ scoring

    def _prompt_ids(self, rows: Tensor, inp: Any) -> list[Tensor] | None:
        """Token ids of the prompt of each row (``k×n`` presence rows), or ``None`` when the model
        inputs are more than ids (e.g. a multimodal processor's output)."""
        if isinstance(inp, TextTokenInput):
            ids = inp.to_model_input(rows)
            return [ids[i] for i in range(ids.shape[0])]
        out = []
        for i in range(rows.shape[0]):
            model_input = _compat.llm_model_input(self, inp.to_model_input(rows[i : i + 1]))
            if set(model_input) - {"input_ids", "attention_mask"}:
                return None
            out.append(model_input["input_ids"].reshape(-1))
        return out

    def _score_prompts(self, rows: Tensor, call: _LLMCall) -> Tensor:
        """The target's log-probability (or probability) for each presence row: ``k×n`` → ``(k,)``."""
        prompts = self._prompt_ids(rows, call.inp) if call.batched else None
        if prompts is None:  # Captum's own forward, one prompt per call
            scores = [self._forward_func(rows[i : i + 1], *call.captum_args).reshape(()) for i in range(rows.shape[0])]
            call.model_calls += rows.shape[0] * (int(call.target_tokens.numel()) if call.by_tokens else 1)
            return torch.stack(scores)
        target = call.target_tokens.to(self.device)
        k, t = len(prompts), int(target.numel())
        lengths = torch.tensor([int(p.numel()) for p in prompts], device=self.device)
        width = int(lengths.max()) + t
        ids = torch.full((k, width), self.pad_token_id, dtype=torch.long, device=self.device)
        attention = torch.zeros((k, width), dtype=torch.long, device=self.device)
        for i, p in enumerate(prompts):
            n = int(p.numel())
            ids[i, :n] = p.to(self.device)
            ids[i, n : n + t] = target
            attention[i, : n + t] = 1
        outputs = self.model(input_ids=ids, attention_mask=attention)
        call.model_calls += 1
        logits = (
            outputs.logits
            if hasattr(outputs, "logits")
            else (outputs[0] if isinstance(outputs, (tuple, list)) else outputs)
        )
        if logits.dim() == 4:  # (k, 1, len, vocab), as Captum handles it
            logits = logits[:, 0]
        positions = (lengths - 1)[:, None] + torch.arange(t, device=self.device)[None]  # k×t
        picked = logits.gather(1, positions[..., None].expand(k, t, logits.shape[-1]))
        log_probs = torch.log_softmax(picked, dim=-1).gather(2, target[None, :, None].expand(k, t, 1))[..., 0]
        total = log_probs.sum(dim=1).detach()
        return total if self.attr_target == "log_prob" else torch.exp(total)

    # ------------------------------------------------------------------ public API

    def attribute(
        self,
        inp: Any,
        target: str | Tensor | None = None,
        num_trials: int = 1,
        gen_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> LLMAttributionResult:
        """Attribute the target answer's log-probability to the features of ``inp``.

        With a Captum method this is ``LLMAttribution.attribute`` unchanged.  With
        ``SubmodularAttribution``:

        Parameters
        ----------
        inp:
            ``TextTemplateInput``, ``TextTokenInput`` (special tokens must be skipped with
            ``skip_tokens``) or ``ImageMaskInput``.
        target:
            The answer: a string, a 1-D tensor of token ids, or ``None`` to let the model
            generate it (``gen_args``, Captum's defaults otherwise).
        num_trials:
            Accepted for Captum's signature (an int >= 1); the search is deterministic, so one
            trial is run.
        gen_args:
            Generation arguments when ``target`` is ``None``.
        **kwargs:
            The forward options of the installed Captum (0.9: ``use_cached_outputs``,
            ``_inspect_forward``, ``forward_in_tokens``), passed to Captum's forward as they are
            (they matter only with ``batched=False`` or an ``ImageMaskInput``), and the search's
            ``perturbations_per_eval`` (prompts per model call; default automatic),
            ``show_progress`` and ``threshold``.

        Returns
        -------
        SubmodularLLMAttributionResult
            ``seq_attr`` of shape ``(n_features,)`` (the gain map: sorting it gives the order),
            ``token_attr`` ``None``, and the full search result (class docstring).
        """
        if not self.is_submodular:
            return super().attribute(inp, target=target, num_trials=num_trials, gen_args=gen_args, **kwargs)
        if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
            raise ValueError(f"num_trials must be an int >= 1; got {num_trials!r}")
        search_kwargs = {k: kwargs.pop(k) for k in _SEARCH_KWARGS if k in kwargs}
        self._check_input(inp)
        self._check_target(target, gen_args)
        forward_options = dict(kwargs)
        known = {name: default for name, default in _compat.llm_forward_parameters()}
        by_tokens = bool(forward_options.get("forward_in_tokens", known.get("forward_in_tokens", False)))
        attr_input = inp.to_tensor().to(self.device)
        n = int(attr_input.shape[-1])
        empty_prompts = self._prompt_ids(torch.zeros_like(attr_input), inp)
        if empty_prompts is not None and empty_prompts[0].numel() == 0:
            raise ValueError(
                "inp: the prompt with every feature removed is empty, so the first target token has "
                "nothing to follow; keep fixed text in the template (or a BOS token)"
            )
        batched = self.batched and empty_prompts is not None
        placeholder = torch.zeros(1, dtype=torch.long)
        _compat.llm_forward_args(inp, placeholder, forward_options)  # unknown options fail before any model call
        target_tokens = _compat.llm_target_tokens(self, inp, target, gen_args)
        call = _LLMCall(
            inp, target_tokens, _compat.llm_forward_args(inp, target_tokens, forward_options), batched, by_tokens
        )
        method = self.attr_method
        assert isinstance(method, SubmodularAttribution)
        (result,) = method.explain(attr_input, additional_forward_args=(call,), **search_kwargs)
        attributions = result.attributions
        assert isinstance(attributions, Tensor)
        seq = inp.format_attr(attributions.reshape(1, n).float())
        return SubmodularLLMAttributionResult(
            seq_attr=seq[0],
            token_attr=None,
            input_tokens=inp.values,
            output_tokens=_compat.llm_pretty_tokens(target_tokens, self.tokenizer),
            inp=inp,
            submodular=result,
            features=feature_names(inp),
            model_calls=call.model_calls,
        )
