"""Captum feature masks over text: tokens, words or sentences of a tokenizer's output.

:func:`text_regions` tokenizes a text and returns the token ids with a feature mask whose
regions are tokens, words (runs of non-whitespace characters) or sentences (ending in
``.``, ``!`` or ``?`` followed by whitespace, or at a blank line), and a baseline of token
ids.  It uses the character offsets of a Hugging Face fast tokenizer when it has them;
otherwise it tokenizes the text piece by piece (one word or sentence at a time, each with
the whitespace before it) and adds the special tokens with the tokenizer's own
``build_inputs_with_special_tokens``.

Special tokens (CLS, SEP, BOS, EOS, padding) are never removed.  Every element of a
Captum feature mask belongs to some region, so a special token takes the id of its
nearest region (the next one for leading tokens, the previous one otherwise) and its
baseline is the token itself: composing ``where(kept, input, baseline)`` leaves it in
place whatever subset is kept, so no region ever changes it and it adds no region.
``TextRegions.special_tokens_mask`` marks those positions (use it to blank them in a
token-level plot; :meth:`TextRegions.region_values` reads each region's value off its
own tokens only).

>>> regions = text_regions(tokenizer, "The cat sat. It was happy.", level="sentence")  # doctest: +SKIP
>>> sa.explain(regions.input_ids, baselines=regions.baselines,                         # doctest: +SKIP
...            feature_mask=regions.feature_mask, target=1)
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["TEXT_LEVELS", "TextRegions", "text_regions", "word_spans", "sentence_spans"]

#: Region granularities of :func:`text_regions`.
TEXT_LEVELS = ("token", "word", "sentence")

#: Named baselines: the tokenizer attribute holding the token id.
_NAMED_BASELINES = {"pad": "pad_token_id", "mask": "mask_token_id", "unk": "unk_token_id"}

_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)|\n\s*\n")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the runs of non-whitespace characters of ``text``."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, without surrounding whitespace.

    A sentence ends after ``.``, ``!`` or ``?`` (and closing quotes or brackets) followed by
    whitespace or the end of the text, or at a blank line; the rest of the text is the last
    sentence.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if b - trail > a + lead:
            out.append((a + lead, b - trail))
    return out


@dataclass(frozen=True)
class TextRegions:
    """A tokenized text with a feature mask of regions and a token-id baseline (one example).

    Attributes
    ----------
    text:
        The text.
    level:
        ``"token"``, ``"word"`` or ``"sentence"``.
    input_ids:
        ``1×L`` int64 token ids, special tokens included.
    feature_mask:
        ``1×L`` int64 region ids ``0..m−1`` in reading order; special tokens carry the id of
        their nearest region (see the module docstring).
    baselines:
        ``1×L`` int64: the baseline token id on every region token, the input's own token on
        special tokens (so they are never removed).
    special_tokens_mask:
        ``1×L`` bool, ``True`` on special tokens.
    region_texts:
        ``m`` strings, the text of each region (its character span).
    region_spans:
        ``m`` character spans ``[start, end)`` into ``text``.
    model_inputs:
        The tokenizer's other ``1×L`` outputs (``attention_mask``, ``token_type_ids`` …).
    baseline_id:
        The baseline token id.
    """

    text: str
    level: str
    input_ids: Tensor
    feature_mask: Tensor
    baselines: Tensor
    special_tokens_mask: Tensor
    region_texts: list[str]
    region_spans: list[tuple[int, int]]
    model_inputs: dict[str, Tensor] = field(repr=False)
    baseline_id: int = 0

    @property
    def n_regions(self) -> int:
        """Number of regions ``m``."""
        return len(self.region_texts)

    def region_values(self, attributions: Tensor) -> Tensor:
        """One value per region: the mean of ``attributions`` (``1×L`` or ``L``) over its own tokens.

        Special tokens are left out, so a map that is constant per region gives back exactly
        the region's value.  Returns an ``(m,)`` float64 tensor.
        """
        a = attributions.detach().reshape(-1).double().cpu()
        if a.numel() != self.input_ids.numel():
            raise ValueError(
                f"attributions: expected {self.input_ids.numel()} values (one per token), "
                f"got shape {tuple(attributions.shape)}"
            )
        keep = ~self.special_tokens_mask.reshape(-1).cpu()
        ids = self.feature_mask.reshape(-1).cpu()[keep]
        sums = torch.zeros(self.n_regions, dtype=torch.float64).index_add_(0, ids, a[keep])
        counts = torch.bincount(ids, minlength=self.n_regions).double()
        return sums / counts

    def texts_of(self, region_ids: Tensor | Sequence[int]) -> list[str]:
        """The texts of ``region_ids`` (e.g. a result's ``order`` or ``minimal_subset``), in that order."""
        ids = region_ids.tolist() if isinstance(region_ids, Tensor) else list(region_ids)
        return [self.region_texts[int(i)] for i in ids]

    def keep_only(self, region_ids: Tensor | Sequence[int]) -> str:
        """The text with only ``region_ids`` kept (the others dropped), for reading a subset."""
        keep = {int(i) for i in (region_ids.tolist() if isinstance(region_ids, Tensor) else region_ids)}
        return " ".join(t for i, t in enumerate(self.region_texts) if i in keep)


def _baseline_id(tokenizer: Any, baseline: str | int) -> int:
    if isinstance(baseline, str):
        if baseline not in _NAMED_BASELINES:
            raise ValueError(f"baseline must be a token id or one of {sorted(_NAMED_BASELINES)}; got {baseline!r}")
        value = getattr(tokenizer, _NAMED_BASELINES[baseline], None)
        if value is None:
            raise ValueError(f"baseline={baseline!r}: the tokenizer has no {baseline} token; pass a token id")
        return int(value)
    if isinstance(baseline, bool) or not isinstance(baseline, int):
        raise ValueError(f"baseline must be a token id (int) or one of {sorted(_NAMED_BASELINES)}; got {baseline!r}")
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    if baseline < 0 or (size is not None and baseline >= size):
        raise ValueError(f"baseline={baseline} is not a token id of this tokenizer (0..{size})")
    return int(baseline)


def _with_offsets(
    tokenizer: Any, text: str, max_length: int | None
) -> tuple[list[int], list[tuple[int, int]], list[bool], dict[str, list[int]]] | None:
    """Token ids, offsets, special flags and the other model inputs, or ``None`` without offsets."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    try:
        enc = tokenizer(
            text,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            truncation=max_length is not None,
            max_length=max_length,
        )
    except (NotImplementedError, TypeError, ValueError):
        return None
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    special = [bool(s) for s in enc["special_tokens_mask"]]
    others = {k: list(v) for k, v in enc.items() if k not in ("input_ids", "offset_mapping", "special_tokens_mask")}
    return ids, offsets, special, others


def _piecewise(
    tokenizer: Any, text: str, spans: list[tuple[int, int]], max_length: int | None
) -> tuple[list[int], list[int], list[bool], dict[str, list[int]]]:
    """Tokenize span by span (each with the whitespace before it): ids, span of each token, special flags.

    The special tokens are those the tokenizer puts before and after the whole text.
    """
    ids: list[int] = []
    piece: list[int] = []
    prev = 0
    for j, (_, end) in enumerate(spans):
        part = tokenizer.encode(text[prev:end], add_special_tokens=False)
        ids += [int(t) for t in part]
        piece += [j] * len(part)
        prev = end
    # the special tokens the tokenizer adds around a text: what encoding with them adds to encoding without
    with_special = [int(t) for t in tokenizer.encode(text, add_special_tokens=True)]
    without = [int(t) for t in tokenizer.encode(text, add_special_tokens=False)]
    start = next(
        (i for i in range(len(with_special) - len(without) + 1) if with_special[i : i + len(without)] == without), None
    )
    if start is None:
        raise ValueError("tokenizer: cannot locate its special tokens; pass a fast (offset-mapping) tokenizer")
    prefix, suffix = with_special[:start], with_special[start + len(without) :]
    full = prefix + ids + suffix
    flags = [True] * len(prefix) + [False] * len(ids) + [True] * len(suffix)
    it = iter(piece)
    owner = [-1 if f else next(it) for f in flags]
    if max_length is not None and len(full) > max_length:
        n_tail = 0
        while n_tail < len(flags) and flags[len(flags) - 1 - n_tail]:
            n_tail += 1
        keep = max(0, max_length - n_tail)
        full = full[:keep] + full[len(full) - n_tail :]
        flags = flags[:keep] + flags[len(flags) - n_tail :]
        owner = owner[:keep] + owner[len(owner) - n_tail :]
    others: dict[str, list[int]] = {"attention_mask": [1] * len(full)}
    if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
        others["token_type_ids"] = [0] * len(full)
    return full, owner, flags, others


def _check_user_mask(feature_mask: Any, special: list[bool], tokens: list[str]) -> list[int]:
    if not isinstance(feature_mask, Tensor) or feature_mask.is_floating_point() or feature_mask.dtype == torch.bool:
        raise ValueError("feature_mask must be an integer tensor with one region id per token (-1 on special tokens)")
    flat = feature_mask.reshape(-1).tolist()
    if len(flat) != len(special):
        raise ValueError(f"feature_mask has {len(flat)} entries but the text has {len(special)} tokens")
    for pos, (value, sp) in enumerate(zip(flat, special, strict=True)):
        if sp and value >= 0:
            raise ValueError(
                f"feature_mask covers the special token {tokens[pos]!r} at position {pos} with region {value}: "
                "special tokens are never regions, give them -1"
            )
        if not sp and value < 0:
            raise ValueError(
                f"feature_mask is {value} on the ordinary token {tokens[pos]!r} at position {pos}; "
                "only special tokens may be -1"
            )
    return [int(v) for v in flat]


def text_regions(
    tokenizer: Any,
    text: str,
    level: str = "word",
    baseline: str | int = "pad",
    max_length: int | None = None,
    offsets: bool | None = None,
    feature_mask: Tensor | None = None,
) -> TextRegions:
    """Tokenize ``text`` and build a Captum feature mask of tokens, words or sentences.

    Parameters
    ----------
    tokenizer:
        A Hugging Face tokenizer (``__call__`` / ``encode``; fast tokenizers give offsets).
    text:
        A non-empty string.
    level:
        ``"token"`` (each non-special token), ``"word"`` (default) or ``"sentence"``.
    baseline:
        The token id that means "removed": ``"pad"`` (default), ``"mask"``, ``"unk"`` (the
        tokenizer's token of that name) or an int token id.
    max_length:
        Truncate to this many tokens (special tokens kept), or ``None``.
    offsets:
        ``None`` (default): use the fast tokenizer's character offsets when it has them;
        ``False``: tokenize piece by piece (the fallback for tokenizers without offsets;
        ``level="token"`` then splits the words into their tokens).
    feature_mask:
        Optional ``L`` (or ``1×L``) integer mask of your own over the tokens, replacing the
        one ``level`` builds: any non-negative ids on ordinary tokens, ``-1`` on special
        tokens (a region id on a special token is refused).

    Returns
    -------
    TextRegions
        ``1×L`` ``input_ids``, ``feature_mask``, ``baselines`` and ``special_tokens_mask``,
        the region texts and the tokenizer's other model inputs.

    Raises
    ------
    ValueError
        For an empty text, an unknown ``level`` or ``baseline``, a ``feature_mask`` covering a
        special token, or a text with no ordinary token left after truncation.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string; got {text!r}")
    if level not in TEXT_LEVELS:
        raise ValueError(f"level must be one of {TEXT_LEVELS}; got {level!r}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be None or an int >= 1; got {max_length!r}")
    if offsets not in (None, False):
        raise ValueError(f"offsets must be None (automatic) or False; got {offsets!r}")
    base_id = _baseline_id(tokenizer, baseline)
    spans = sentence_spans(text) if level == "sentence" else word_spans(text)
    got = None if offsets is False else _with_offsets(tokenizer, text, max_length)
    if got is not None:
        ids, offs, special, others = got
        ends = [b for _, b in spans]
        owner = [
            -1 if sp else min(bisect.bisect_right(ends, s), len(spans) - 1)
            for (s, _), sp in zip(offs, special, strict=True)
        ]
        tok_spans = [(s, e) for s, e in offs]
    else:
        ids, owner, special, others = _piecewise(tokenizer, text, spans, max_length)
        tok_spans = [spans[o] if o >= 0 else (0, 0) for o in owner]
    tokens = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    if feature_mask is not None:
        owner = _check_user_mask(feature_mask, special, tokens)
        region_of = {o: k for k, o in enumerate(sorted({o for o in owner if o >= 0}))}
        texts: dict[int, list[int]] = {}
        for pos, o in enumerate(owner):
            if o >= 0:
                texts.setdefault(region_of[o], []).append(pos)
        region_texts = [" ".join(tokens[p] for p in texts[k]) for k in range(len(region_of))]
        region_spans = [
            (min(tok_spans[p][0] for p in texts[k]), max(tok_spans[p][1] for p in texts[k]))
            for k in range(len(region_of))
        ]
    elif level == "token":
        positions = [p for p, o in enumerate(owner) if o >= 0]
        region_of = {}
        for k, p in enumerate(positions):
            owner[p] = k
            region_of[k] = k
        if got is not None:
            region_spans = [tok_spans[p] for p in positions]
            region_texts = [
                text[a:b] if b > a else tokens[p] for (a, b), p in zip(region_spans, positions, strict=True)
            ]
        else:
            region_spans = [tok_spans[p] for p in positions]
            region_texts = [tokens[p] for p in positions]
    else:
        used = sorted({o for o in owner if o >= 0})
        region_of = {o: k for k, o in enumerate(used)}
        region_spans = [spans[o] for o in used]
        region_texts = [text[a:b] for a, b in region_spans]
    if not region_of:
        raise ValueError(
            f"text {text[:40]!r} has no ordinary token"
            + (f" within max_length={max_length}" if max_length is not None else "")
        )
    region = [region_of[o] if o >= 0 else -1 for o in owner]
    # special tokens: the id of the next region for leading ones, of the previous region otherwise
    last = next(r for r in region if r >= 0)
    for pos, r in enumerate(region):
        if r >= 0:
            last = r
        else:
            region[pos] = last
    input_ids = torch.tensor([ids], dtype=torch.long)
    special_t = torch.tensor([special], dtype=torch.bool)
    baselines = torch.where(special_t, input_ids, torch.full_like(input_ids, base_id))
    return TextRegions(
        text=text,
        level=level if feature_mask is None else "custom",
        input_ids=input_ids,
        feature_mask=torch.tensor([region], dtype=torch.long),
        baselines=baselines,
        special_tokens_mask=special_t,
        region_texts=region_texts,
        region_spans=region_spans,
        model_inputs={k: torch.tensor([v], dtype=torch.long) for k, v in others.items()},
        baseline_id=base_id,
    )
