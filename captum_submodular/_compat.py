"""The few Captum internals we use, wrapped in one place.

Captum's private helpers (``captum._utils.common``) move between releases; every
other module of this package imports them from here only.  (Input validation, Captum's
``_format_*`` helpers in spirit, lives in :mod:`captum_submodular._inputs`.)
"""

from __future__ import annotations

from typing import Any, Tuple

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
