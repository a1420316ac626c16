"""The user's model is never changed: module modes and buffers around our model calls.

:func:`model_guard` wraps every evaluation of the attribution class and the metrics.
It finds the ``nn.Module`` s behind a forward function, evaluates them in eval mode,
and afterwards restores each module's own ``training`` flag and every buffer, bitwise.

Every module found is evaluated with ``training = False``; the warning (or the error)
is only for modules whose behaviour depends on the mode (:func:`mode_dependent`: BatchNorm,
Dropout and the like, or any module whose ``forward`` reads ``self.training``), so a
freshly built ``nn.Module`` of linear layers, in training mode by default, is not
flagged.

Why eval mode.  A search evaluates hundreds of perturbed inputs and assumes each input
has one score: in training mode BatchNorm normalises every batch by its own statistics
(and overwrites its running statistics with those of the perturbed inputs, and fails on
a batch of one), and Dropout makes two identical calls differ.  Eval mode is the only
mode in which the model is a deterministic function of its input.  A model found in
training mode therefore gets a ``UserWarning`` (the result is that of ``model.eval()``),
or, where the caller asks for it (``train_mode="error"`` of
:class:`~captum_submodular.SubmodularAttribution`), a ``ValueError`` before any call.

Which modules are found: ``forward_func`` itself when it is a module; the module of a
bound method (``model.forward``); what ``functools.partial``, ``__wrapped__`` (e.g.
:class:`~captum_submodular.counting.CountingForward`) or a Captum attribution's
``forward_func`` wrap; the modules and functions a callable object holds as attributes;
the modules a function or lambda refers to (its closure variables, its default
arguments and the globals it names); modules a module holds outside its registered
children (in a plain list, dict or attribute, where ``model.eval()`` does not reach
them); and modules inside lists, tuples and dicts held by any of those, a few levels deep.
A model hidden deeper (an attribute of an arbitrary object) is not seen: put it in eval mode
yourself.  Parameters are not copied (every evaluation runs without gradients, so nothing
updates them).
"""

from __future__ import annotations

import functools
import types
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, List, Tuple

import torch
from torch import Tensor, nn

__all__ = ["TRAIN_MODES", "find_modules", "mode_dependent", "model_guard"]

#: What to do with a model in training mode: ``"warn"`` (evaluate it in eval mode for
#: the call, restore its modes after, and warn) or ``"error"`` (refuse it).
TRAIN_MODES = ("warn", "error")


def find_modules(*objects: Any, depth: int = 3) -> List[nn.Module]:
    """The ``nn.Module`` s behind callables (see the module docstring), each once."""
    found: List[nn.Module] = []
    seen = set()

    def visit_held(value: Any, level: int) -> None:
        """Modules and callables held directly or in a (nested) container."""
        if isinstance(value, dict):
            items = list(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, (nn.Module, types.FunctionType, types.MethodType, functools.partial)):
                visit(item, level + 1)
            elif isinstance(item, (list, tuple, dict, set, frozenset)) and id(item) not in seen and level < depth:
                seen.add(id(item))
                visit_held(item, level + 1)

    def visit(obj: Any, level: int) -> None:
        if obj is None or id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if isinstance(obj, nn.Module):
            found.append(obj)
            # Modules (and callables) a module or any of its submodules holds outside its
            # registered children: in a plain list, dict or attribute, where ``model.eval()``
            # does not reach them.
            for sub in obj.modules():
                for name, value in vars(sub).items():
                    if not name.startswith("_") or name == "__wrapped__":
                        visit_held(value, level)
            return
        if isinstance(obj, (list, tuple, dict, set, frozenset)):
            visit_held(obj, level)
            return
        if isinstance(obj, functools.partial):
            for item in (obj.func, *obj.args, *obj.keywords.values()):
                visit(item, level + 1)
            return
        if isinstance(obj, types.MethodType):
            visit(obj.__self__, level + 1)
            visit(obj.__func__, level + 1)
            return
        try:
            attrs = dict(vars(obj))
        except TypeError:
            attrs = {}
        if "__wrapped__" in attrs:
            visit(attrs.pop("__wrapped__"), level + 1)
        if not isinstance(obj, types.FunctionType):
            # a callable object: the modules and functions it holds, a Captum attribution's model
            for value in attrs.values():
                visit_held(value, level)
            try:
                inner = getattr(obj, "forward_func", None)
            except Exception:  # an object whose __getattr__ raises something else
                inner = None
            visit(inner, level + 1)
        if isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    visit_held(cell.cell_contents, level)
                except ValueError:  # empty cell
                    pass
            for value in (*(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values()):
                visit_held(value, level)
            for name in obj.__code__.co_names:
                value = obj.__globals__.get(name)
                if isinstance(value, (nn.Module, types.FunctionType, functools.partial)):
                    visit(value, level + 1)

    for obj in objects:
        visit(obj, 0)
    return found


_MODE_DEPENDENT = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.modules.dropout._DropoutNd,
    nn.RNNBase,
    nn.MultiheadAttention,
)


def mode_dependent(module: nn.Module) -> bool:
    """Whether ``module`` behaves differently in training mode: a BatchNorm, InstanceNorm,
    Dropout, RNN or attention layer, or any module whose own ``forward`` reads ``training``."""
    if isinstance(module, _MODE_DEPENDENT):
        return True
    scripted = getattr(module, "original_name", None)  # a TorchScript module: its class name
    if isinstance(scripted, str) and any(k in scripted for k in ("BatchNorm", "Dropout", "InstanceNorm")):
        return True
    forward: Any = getattr(type(module), "forward", None)
    while hasattr(forward, "__wrapped__"):
        forward = forward.__wrapped__
    code = getattr(forward, "__code__", None)
    return code is not None and "training" in code.co_names


def _same(a: Tensor, b: Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return bool(torch.equal(a, b))


@contextmanager
def model_guard(
    *forward_funcs: Any, train_mode: str = "warn", caller: str = "forward_func", hint: str = ""
) -> Iterator[None]:
    """Evaluate the modules behind ``forward_funcs`` in eval mode; restore modes and buffers.

    ``train_mode="error"`` raises ``ValueError`` (before any model call) when a module is
    in training mode; ``"warn"`` warns.  On exit, whatever happened, every module's
    ``training`` flag is its own again and every buffer holds its original tensor with its
    original values (a model that changed a buffer in eval mode also gets a warning).
    """
    modules: List[nn.Module] = []
    seen = set()
    for root in find_modules(*forward_funcs):
        for m in root.modules():
            if id(m) not in seen:
                seen.add(id(m))
                modules.append(m)
    training = [m for m in modules if m.training and mode_dependent(m)]
    if training:
        kinds = sorted({getattr(m, "original_name", None) or type(m).__name__ for m in training})
        shown = ", ".join(kinds[:6]) + (", …" if len(kinds) > 6 else "")
        if train_mode == "error":
            raise ValueError(
                f"{caller}: the model is in training mode ({shown}); call model.eval() first "
                f"(train_mode='error' refuses models in training mode)"
            )
        warnings.warn(
            f"{caller}: the model is in training mode ({shown}). It is evaluated in eval mode "
            f"for this call (deterministic: Dropout off, BatchNorm on its running statistics, "
            f"which stay unchanged) and every module's mode is restored afterwards. Call "
            f"model.eval() to silence this warning{hint}.",
            UserWarning,
            stacklevel=4,
        )
    flags: List[Tuple[nn.Module, bool]] = [(m, m.training) for m in modules]
    saved = [
        (m, name, buf, buf.detach().clone())
        for m in modules
        for name, buf in m.named_buffers(recurse=False)
        if buf is not None
    ]
    try:
        for m in modules:
            m.training = False
        yield
    finally:
        for m, flag in flags:
            m.training = flag
        changed = []
        with torch.no_grad():
            for m, name, original, copy in saved:
                current = dict(m.named_buffers(recurse=False)).get(name)
                replaced = current is None or current.data_ptr() != original.data_ptr()
                if replaced:
                    try:
                        setattr(m, name, original)
                    except Exception:  # a module that does not take the tensor back: restore values
                        if current is not None and current.shape == copy.shape:
                            original = current
                if replaced or not _same(original, copy):
                    changed.append(f"{type(m).__name__}.{name}")
                    original.copy_(copy)
        if changed:
            warnings.warn(
                f"{caller}: the model changed its buffers while being evaluated "
                f"({', '.join(changed[:6])}); they were restored, but the scores may depend on the "
                f"order of evaluation",
                UserWarning,
                stacklevel=4,
            )
