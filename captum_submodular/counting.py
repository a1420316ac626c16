"""Counting model evaluations: the one wrapper every count in this package goes through.

An *evaluation* is one input row the model sees: a call on a batch of ``B`` inputs
counts ``B``.  :class:`CountingForward` wraps any forward function; the
:class:`count_evaluations` context manager swaps it in for the ``forward_func`` of a
Captum attribution instance (and of the attributions nested in it, such as the method
a ``NoiseTunnel`` wraps) and always restores the original.

>>> import torch
>>> from captum.attr import Occlusion
>>> model = torch.nn.Linear(4, 2)
>>> counting = CountingForward(model)
>>> _ = counting(torch.zeros(3, 4))          # one call on a batch of 3
>>> counting.rows, counting.calls
(3, 1)
>>> occlusion = Occlusion(model)
>>> with count_evaluations(occlusion) as counter:
...     _ = occlusion.attribute(torch.ones(1, 4), target=0, sliding_window_shapes=(1,))
>>> counter.rows                             # the input, then one row per window position
5
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from torch import Tensor, nn

__all__ = ["EvaluationCounter", "CountingForward", "count_evaluations"]


@dataclass
class EvaluationCounter:
    """Running totals: ``rows`` (model inputs evaluated) and ``calls`` (model calls)."""

    rows: int = 0
    calls: int = 0


def _batch_size(args: Tuple[Any, ...], kwargs: dict) -> int:
    first = args[0] if args else next(iter(kwargs.values()), None)
    if isinstance(first, (tuple, list)) and first:
        first = first[0]
    return int(first.shape[0]) if isinstance(first, Tensor) and first.dim() > 0 else 1


class CountingForward:
    """Calls ``fn`` and adds the batch size of its first argument to a counter.

    Parameters
    ----------
    fn:
        The forward function (a model or any callable).
    counter:
        An :class:`EvaluationCounter` to add to (shared between wrappers); a new one
        by default.
    progress:
        A description to show a tqdm bar over the rows on stderr, with ``total`` rows
        expected; ``None`` (default) for no bar.

    Notes
    -----
    ``__wrapped__`` makes :func:`inspect.signature` (used by Captum) see ``fn``'s
    signature, and other attributes are delegated to ``fn``.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        counter: Optional[EvaluationCounter] = None,
        progress: Optional[str] = None,
        total: Optional[int] = None,
    ) -> None:
        self.__dict__["__wrapped__"] = fn
        self.__dict__["counter"] = counter if counter is not None else EvaluationCounter()
        bar = None
        if progress is not None:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=progress, unit="evals", file=sys.stderr, mininterval=0.5, leave=False)
        self.__dict__["bar"] = bar

    @property
    def rows(self) -> int:
        """Model inputs evaluated so far."""
        return self.__dict__["counter"].rows

    @property
    def calls(self) -> int:
        """Model calls so far."""
        return self.__dict__["counter"].calls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.__dict__["__wrapped__"](*args, **kwargs)
        rows = _batch_size(args, kwargs)
        counter = self.__dict__["counter"]
        counter.rows += rows
        counter.calls += 1
        if self.__dict__["bar"] is not None:
            self.__dict__["bar"].update(rows)
        return out

    def close(self) -> None:
        """Close the progress bar, if any."""
        bar = self.__dict__["bar"]
        if bar is not None:
            bar.close()
            self.__dict__["bar"] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["__wrapped__"], name)


def _attribution_objects(obj: Any) -> List[Any]:
    """``obj`` and every nested object holding a ``forward_func`` (NoiseTunnel, LayerIG, GuidedGradCam …)."""
    found: List[Any] = []
    seen = set()

    def visit(o: Any, depth: int) -> None:
        if id(o) in seen or depth > 4 or isinstance(o, nn.Module):
            return
        seen.add(id(o))
        if "forward_func" in getattr(o, "__dict__", {}):
            found.append(o)
        for v in list(getattr(o, "__dict__", {}).values()):
            if hasattr(v, "__dict__") and "forward_func" in getattr(v, "__dict__", {}):
                visit(v, depth + 1)

    visit(obj, 0)
    return found


class count_evaluations:
    """Context manager counting the model rows an attribution instance evaluates.

    Every ``forward_func`` of ``attribution`` and of the attributions nested in it is
    replaced by a :class:`CountingForward` sharing one :class:`EvaluationCounter`,
    which ``__enter__`` returns; the originals are restored on exit, also after an
    error.  Backward passes are not counted.
    """

    def __init__(self, attribution: Any) -> None:
        self.objects = _attribution_objects(attribution)
        if not self.objects:
            raise ValueError(
                f"methods: {type(attribution).__name__} has no `forward_func` attribute; "
                "expected a Captum attribution instance"
            )
        self.counter = EvaluationCounter()
        self._saved: List[Tuple[Any, Any]] = []

    def __enter__(self) -> EvaluationCounter:
        try:
            for o in self.objects:
                original = o.__dict__["forward_func"]
                self._saved.append((o, original))
                o.forward_func = CountingForward(original, self.counter)
        except BaseException:
            self._restore()
            raise
        return self.counter

    def _restore(self) -> None:
        while self._saved:
            o, original = self._saved.pop()
            o.forward_func = original

    def __exit__(self, *exc: Any) -> None:
        self._restore()
