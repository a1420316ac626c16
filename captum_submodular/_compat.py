"""The few Captum internals we use, wrapped in one place.

Captum's private helpers (``captum._utils.common``) move between releases; every
other module of this package imports them from here only.
"""

from __future__ import annotations

from typing import Any, Tuple

import torch
from captum._utils.common import _format_additional_forward_args as _captum_format_args
from captum._utils.common import _format_output as _captum_format_output
from captum._utils.common import _is_tuple as _captum_is_tuple
from captum._utils.progress import progress as _captum_progress
from captum.log import log_usage

__all__ = [
    "is_tuple",
    "as_tuple",
    "format_output",
    "format_additional_forward_args",
    "progress",
    "log_usage",
]


def is_tuple(inputs: Any) -> bool:
    """``True`` when ``inputs`` is a tuple of tensors (Captum's convention)."""
    return bool(_captum_is_tuple(inputs))


def as_tuple(inputs: Any) -> Tuple[torch.Tensor, ...]:
    """Wrap a single tensor into a 1-tuple; leave tuples as they are."""
    if isinstance(inputs, tuple):
        return inputs
    if isinstance(inputs, list):
        return tuple(inputs)
    return (inputs,)


def format_output(was_tuple: bool, output: Tuple[torch.Tensor, ...]) -> Any:
    """Return a tuple when the user passed a tuple, else the single tensor."""
    return _captum_format_output(was_tuple, output)


def format_additional_forward_args(args: Any) -> Any:
    """Captum's normalisation of ``additional_forward_args`` (``None`` or a tuple)."""
    return _captum_format_args(args)


def progress(*args: Any, **kwargs: Any) -> Any:
    """Captum's tqdm-based progress bar."""
    return _captum_progress(*args, **kwargs)
