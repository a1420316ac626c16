"""The few Captum internals we use, wrapped in one place.

Captum's private helpers (``captum._utils.common``) move between releases; every
other module of this package imports them from here only.  (Input validation, Captum's
``_format_*`` helpers in spirit, lives in :mod:`captum_submodular._inputs`.)
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from captum._utils.common import _format_output as _captum_format_output
from captum._utils.common import _select_targets as _captum_select_targets
from captum._utils.progress import progress as _captum_progress
from captum.log import log_usage

__all__ = [
    "select_targets",
    "format_output",
    "progress",
    "log_usage",
    "llm_forward_parameters",
    "llm_forward_args",
    "llm_target_tokens",
    "llm_model_input",
    "llm_pretty_tokens",
]


def format_output(was_tuple: bool, output: Tuple[torch.Tensor, ...]) -> Any:
    """Return a tuple when the user passed a tuple, else the single tensor."""
    return _captum_format_output(was_tuple, output)


def progress(*args: Any, **kwargs: Any) -> Any:
    """Captum's tqdm-based progress bar."""
    return _captum_progress(*args, **kwargs)


def select_targets(output: torch.Tensor, target: Any) -> torch.Tensor:
    """Captum's selection of the target entries of a model output (one per row)."""
    return _captum_select_targets(output, target)


# --------------------------------------------------------------------------- Captum's LLM API
# Used by captum_submodular.text only; imported lazily (captum's llm_attr pulls in matplotlib).
# tests/test_text_compat.py fails loudly when one of these changes in Captum.

#: The parameters of ``LLMAttribution._forward_func`` our adapter knows how to fill.
LLM_FORWARD_KNOWN = ("inp", "target_tokens", "use_cached_outputs", "_inspect_forward", "forward_in_tokens")


def llm_forward_parameters() -> Tuple[Tuple[str, Any], ...]:
    """``(name, default)`` of every parameter of Captum's ``LLMAttribution._forward_func`` after
    ``perturbed_tensor`` (``inspect.Parameter.empty`` when it has no default), in order."""
    import inspect

    from captum.attr import LLMAttribution

    params = list(inspect.signature(LLMAttribution._forward_func).parameters.values())
    if [p.name for p in params[:2]] != ["self", "perturbed_tensor"]:
        raise RuntimeError(
            "Captum's LLMAttribution._forward_func no longer starts with (self, perturbed_tensor); "
            "captum_submodular.text needs an update for this Captum version"
        )
    return tuple((p.name, p.default) for p in params[2:])


def llm_forward_args(inp: Any, target_tokens: torch.Tensor, options: Dict[str, Any]) -> Tuple[Any, ...]:
    """The ``additional_forward_args`` Captum's ``LLMAttribution.attribute`` passes its forward:
    ``inp`` and ``target_tokens``, then each option by name (its default when not given).

    ``options`` keys must be parameters of the installed Captum's forward; the result follows
    that forward's own order, whatever the release (0.8 and 0.9 differ).
    """
    params = llm_forward_parameters()
    names = [n for n, _ in params]
    unknown = sorted(set(options) - set(names[2:]))
    if unknown:
        raise TypeError(
            f"attribute() got unexpected keyword arguments {unknown}; Captum's LLM forward takes {names[2:]}"
        )
    if names[:2] != ["inp", "target_tokens"]:
        raise RuntimeError(
            f"Captum's LLMAttribution._forward_func takes {names}, not (inp, target_tokens, ...); "
            "captum_submodular.text needs an update for this Captum version"
        )
    out: List[Any] = [inp, target_tokens]
    for name, default in params[2:]:
        if name in options:
            out.append(options[name])
        elif default is inspect_empty():
            raise RuntimeError(f"Captum's LLM forward has a new required parameter {name!r}")
        else:
            out.append(default)
    return tuple(out)


def inspect_empty() -> Any:
    """``inspect.Parameter.empty`` (the marker of a parameter without default)."""
    import inspect

    return inspect.Parameter.empty


def llm_target_tokens(attr: Any, inp: Any, target: Any, gen_args: Optional[Dict[str, Any]]) -> torch.Tensor:
    """Captum's ``BaseLLMAttribution._get_target_tokens``: the target's token ids (generates when ``None``)."""
    return attr._get_target_tokens(inp, target, gen_args=gen_args)


def llm_model_input(attr: Any, model_input: Any) -> Dict[str, Any]:
    """Captum's ``BaseLLMAttribution._format_model_input``: a prompt (str / ids / mapping) → model kwargs."""
    return attr._format_model_input(model_input)


def llm_pretty_tokens(ids: torch.Tensor, tokenizer: Any) -> List[str]:
    """Captum's ``_convert_ids_to_pretty_tokens`` (readable tokens for its plots)."""
    from captum.attr._core.llm_attr import _convert_ids_to_pretty_tokens

    return _convert_ids_to_pretty_tokens(ids, tokenizer)
