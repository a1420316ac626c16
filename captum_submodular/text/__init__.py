"""Text classifiers and language models: token, word and sentence regions, and Captum's LLM API.

- :func:`text_regions` — a tokenizer's output as a Captum feature mask of tokens, words or
  sentences, with a token-id baseline; special tokens (CLS, SEP, padding, BOS) are never
  removed (:class:`TextRegions`).
- :class:`SubmodularLLMAttribution` — Captum's ``LLMAttribution`` that also accepts
  :class:`~captum_submodular.SubmodularAttribution`, scores many perturbed prompts per model
  call, and returns Captum's ``LLMAttributionResult`` with the search's full result.
- :mod:`captum_submodular.text.metrics` — the log-probability drop when the top-k passages
  are removed, and insertion / deletion over passages.
- :mod:`captum_submodular.text.models` — offline models: the MiniLM zero-shot classifier,
  a small random GPT-2, a word-level tokenizer, and a known-answer language model.

This package needs ``transformers`` (``pip install captum_submodular[text]``); the core of
``captum_submodular`` never imports it.
"""

try:
    import transformers  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ImportError("captum_submodular.text needs transformers: pip install captum_submodular[text]") from None

from .llm import SubmodularLLMAttribution, SubmodularLLMAttributionResult
from .metrics import LLMScorer, logprob_drop, passage_curves
from .regions import TEXT_LEVELS, TextRegions, text_regions

__all__ = [
    "TEXT_LEVELS",
    "TextRegions",
    "text_regions",
    "SubmodularLLMAttribution",
    "SubmodularLLMAttributionResult",
    "LLMScorer",
    "logprob_drop",
    "passage_curves",
]
