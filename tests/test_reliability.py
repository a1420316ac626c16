"""Property-based reliability suite (issue 13): every input ends in a correct result or a
clear error, and the user's model is never changed.

Each test draws a whole call — shapes (1-D to 4-D, tuples), batch sizes 0–3, dtypes
(float16/32/64, integer, bool), masks, targets, baselines, models (NaN outputs, 1-D
outputs, tuples, ndarrays, BatchNorm and Dropout in training mode, blind features) and
option values — and records, while drawing, every *fault* it put in: the argument a clear
error must name and the phase at which it may be raised:

- ``PRE``: before any model call (the argument is wrong whatever the model does);
- ``FIRST``: at the first model call (the target's range, the output's shape or type,
  NaN on the unperturbed input);
- ``GRAD`` / ``EMB``: at the gradient / the embeddings, which come before the search;
- ``ANY``: the model returns NaN on some perturbed inputs only — a
  :class:`~captum_submodular.NonFiniteOutputError` may come at any time.

The case then ends in exactly one of two ways, both checked:

(a) a correct result, when no fault was drawn: type, shape and dtype right, no NaN,
    inputs / baselines / masks / targets unmutated, the model's parameters and buffers
    bitwise unchanged and every module's mode restored, ``perturbations_per_eval`` 1
    equal to 7 and each example alone equal to the batch (same order, same exact zeros,
    values within rounding);
(b) an exception of a documented type (``ValueError``, ``TypeError``,
    ``NonFiniteOutputError``) whose message names one of the drawn faults, raised no later
    than that fault's phase allows (model calls counted by a wrapper).

Profiles (``tests/conftest.py``): ``ci`` (default: derandomized, bounded, well under
60 s) and ``thorough`` (10× the examples):
``CAPTUM_SUBMODULAR_PROFILE=thorough pytest tests/test_reliability.py``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from hypothesis import event, given, note
from hypothesis import strategies as st
from torch import nn

from captum_submodular import NonFiniteOutputError, ObjectiveWeights, SubmodularAttribution
from captum_submodular.attribution import map_dtype
from captum_submodular.metrics import deletion, highest_confidence, insertion
from captum_submodular.regions import grid_mask, slic_mask

DOCUMENTED = (ValueError, TypeError, NonFiniteOutputError)
PRE, FIRST, GRAD, EMB, ANY = "pre", "first", "grad", "emb", "any"
PHASES = (PRE, FIRST, GRAD, EMB, ANY)

DTYPES = [torch.float16, torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool]


# ============================================================================ the model


class Model(nn.Module):
    """Flattens every input to float, a linear layer to ``classes`` outputs, then one of:

    ``logits`` (k×C), ``oned`` (k), ``column`` (k×1), ``tuple`` ((k×C,)), ``ndarray``,
    ``nan`` (NaN everywhere), ``nan_some`` (NaN where the first feature is 0), ``train``
    (BatchNorm1d + Dropout, left in training mode), ``blind`` (half the features unseen);
    ``softmax=True`` returns probabilities.  ``calls`` counts the model calls.
    """

    def __init__(
        self, features: int, classes: int, kind: str, softmax: bool, seed: int, float64: bool, scale_arg: bool
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.kind = kind
        self.softmax = softmax
        self.float64 = float64
        self.scale_arg = scale_arg
        dtype = torch.float64 if float64 else torch.float32
        self.lin = nn.Linear(features, classes).to(dtype)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(classes, features, generator=g, dtype=dtype))
            self.lin.bias.copy_(torch.randn(classes, generator=g, dtype=dtype) * 0.1)
            if kind == "blind":
                self.lin.weight[:, ::2] = 0
        if kind == "train":
            self.bn = nn.BatchNorm1d(classes).to(dtype)
            self.drop = nn.Dropout(0.5)
            with torch.no_grad():
                self.bn.running_mean.uniform_(-0.3, 0.3, generator=g)
                self.bn.running_var.uniform_(0.5, 1.5, generator=g)
            self.train()
        else:
            self.eval()
        self.calls = 0

    def forward(self, *xs: torch.Tensor) -> Any:
        self.calls += 1
        if self.scale_arg:
            *xs, scale = xs
        dtype = torch.float64 if self.float64 else torch.float32
        flat = torch.cat([x.reshape(x.shape[0], -1).to(dtype) for x in xs], 1)
        z = self.lin(flat)
        if self.scale_arg:
            z = z * scale.to(dtype)[:, None]
        if self.kind == "train":
            z = self.drop(self.bn(z))
        if self.kind == "nan":
            z = z * float("nan")
        if self.kind == "nan_some":
            z = torch.where(flat[:, :1] == 0, torch.full_like(z, float("nan")), z)
        if self.softmax:
            z = torch.softmax(z, -1)
        if self.kind == "oned":
            return z[:, 0]
        if self.kind == "column":
            return z[:, :1]
        if self.kind == "tuple":
            return (z,)
        if self.kind == "ndarray":
            return z.detach().numpy()
        return z


def model_state(model: nn.Module) -> Tuple[Dict[str, torch.Tensor], Dict[str, bool]]:
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        {name: m.training for name, m in model.named_modules()},
    )


def assert_model_unchanged(model: nn.Module, saved) -> None:
    tensors, modes = saved
    now = model.state_dict()
    assert set(now) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(now[k], v), f"model state {k} changed"
    assert {name: m.training for name, m in model.named_modules()} == modes, "module modes changed"


def bitwise_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point():
            return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
        return bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(bitwise_equal(x, y) for x, y in zip(a, b))
    return True


def clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(clone(v) for v in value)
    return value


# ============================================================================ drawing a case


@dataclass
class Case:
    site: Optional[str] = None  # None: a clean case; a fault site; or "several"
    faults: List[Tuple[str, str]] = field(default_factory=list)  # (name in the message, phase)
    inputs: Any = None
    tensors: List[torch.Tensor] = field(default_factory=list)
    n: int = 1
    baselines: Any = None
    baseline_batch: List[bool] = field(default_factory=list)  # per input: batch-shaped baseline
    target: Any = None
    mask: Any = None
    mask_batch: List[bool] = field(default_factory=list)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    ppe: Any = 1
    model: Optional[Model] = None
    classes: int = 3
    out_shape: Tuple[int, ...] = (3,)

    def fault(self, name: str, phase: str) -> None:
        self.faults.append((name, phase))


ATTRIBUTION_SITES = [
    "batch0",
    "many",
    "ndim1",
    "zero_axis",
    "nan_input",
    "batch_mismatch",
    "list_inputs",
    "baseline_shape",
    "baseline_value",
    "baseline_length",
    "baseline_list",
    "mask",
    "mask_count",
    "mask_list",
    "model_output",
    "model_output",
    "model_output",
    "classes",
    "scalar_target",
    "target_form",
    "target_range",
    "target_range",
    "search",
    "ppe",
    "weights",
    "gradient",
    "threshold",
    "train_mode",
]
METRIC_SITES = [
    s
    for s in ATTRIBUTION_SITES
    if s not in ("search", "weights", "gradient", "threshold", "train_mode", "scalar_target")
] + ["n_steps", "substrate", "attributions", "attributions_list"]


def bad(draw, case: Case, site: str, one_in: int = 8) -> bool:
    """Whether to draw a fault at ``site``: always at the one site a faulty case picked, and
    at about one site in ``one_in`` of the cases that mix several faults."""
    if case.site == "several":
        return draw(st.integers(0, one_in - 1)) == 0
    return case.site == site


def _values(shape, dtype, seed) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g) * 1.5).to(dtype)
    return torch.randint(0, 5, shape, generator=g).to(dtype)


@st.composite
def inputs_part(draw, case: Case) -> None:
    """Inputs: one tensor or a tuple of two, 1-D to 4-D, batch 0–3, any dtype."""
    seed = draw(st.integers(0, 2**16))
    n_tensors = draw(st.sampled_from([1, 1, 1, 2]))
    n = 0 if bad(draw, case, "batch0", 12) else draw(st.sampled_from([1, 1, 2, 2, 3]))
    many = bad(draw, case, "many", 25)  # more regions than any search takes
    tensors = []
    for j in range(n_tensors):
        ndim = 1 if bad(draw, case, "ndim1", 15) else draw(st.sampled_from([2, 2, 3, 4]))
        shape = [n] + [draw(st.integers(1, 3)) for _ in range(ndim - 1)]
        if j == 0 and ndim > 1 and case.site not in ("several", "mask"):
            shape[-1] = draw(st.integers(2, 3))  # at least two regions by default
        if many and j == 0:
            shape = [n, 1100]
        if ndim > 1 and bad(draw, case, "zero_axis", 20):
            shape[-1] = 0
        dtype = draw(st.sampled_from(DTYPES))
        t = _values(tuple(shape), dtype, seed + j)
        if dtype.is_floating_point and t.numel() and bad(draw, case, "nan_input", 20):
            t.view(-1)[0] = float("nan")
        tensors.append(t)
    if n_tensors == 2 and n > 0 and bad(draw, case, "batch_mismatch", 20):
        tensors[1] = tensors[1][:-1]  # batch sizes differ
    case.tensors = tensors
    case.n = n
    form = "tensor" if n_tensors == 1 else "tuple"
    if n_tensors == 1 and draw(st.integers(0, 7)) == 0:
        form = "tuple"
    if bad(draw, case, "list_inputs", 15):
        form = "list"
    case.inputs = tensors[0] if form == "tensor" else (tuple(tensors) if form == "tuple" else list(tensors))
    if (
        form == "list"
        or n == 0
        or any(t.dim() < 2 for t in tensors)
        or any(t.shape[0] != n for t in tensors)
        or any(math.prod(t.shape[1:]) == 0 for t in tensors)
        or any(t.is_floating_point() and bool(torch.isnan(t).any()) for t in tensors)
    ):
        case.fault("inputs", PRE)


def _scalar_fault(value: float, dtype: torch.dtype) -> bool:
    """Whether a baseline ``value`` cannot be held exactly by ``dtype`` inputs."""
    if not math.isfinite(value):
        return True
    if dtype == torch.bool:
        return value not in (0, 1)
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        return value != math.floor(value) or not info.min <= value <= info.max
    return not math.isfinite(float(torch.tensor(value, dtype=torch.float64).to(dtype)))


ALL_BASELINE_VALUES = [0, 0.0, 1.0, 2.0, 0.5, -1.0, 300.0, 1e5, float("nan"), float("inf")]


@st.composite
def baselines_part(draw, case: Case) -> None:
    """Baselines: None, scalars, example- or batch-shaped tensors, tuples; or NaN, inf,
    values the dtype cannot hold, wrong shapes, wrong lengths, lists."""
    case.baseline_batch = [False] * len(case.tensors)
    if draw(st.integers(0, 3)) == 0:
        case.baselines = None
        return
    per = []
    for j, x in enumerate(case.tensors):
        wrong = bad(draw, case, "baseline_shape", 10)
        kind = "wrong" if wrong else draw(st.sampled_from(["scalar", "scalar", "example", "batch"]))
        if bad(draw, case, "baseline_value", 6):
            value = draw(st.sampled_from(ALL_BASELINE_VALUES))
        else:
            value = draw(st.sampled_from([v for v in ALL_BASELINE_VALUES if not _scalar_fault(v, x.dtype)]))
        if _scalar_fault(float(value), x.dtype):
            case.fault("baselines", PRE)
        if kind == "scalar":
            b: Any = value
        elif kind == "example":
            b = torch.full(tuple(x.shape[1:]), float(value))
        elif kind == "batch":
            b = torch.full(tuple(x.shape), float(value))
            case.baseline_batch[j] = x.shape[0] > 1
        else:
            b = torch.full(tuple(s + 1 for s in x.shape[1:]) or (2,), float(value))
            case.fault("baselines", PRE)
        per.append(b)
    if len(per) == 1 and draw(st.booleans()):
        case.baselines = per[0]
    else:
        case.baselines = tuple(per)
    if bad(draw, case, "baseline_length", 15):
        case.baselines = tuple(per) + (0.0,)  # one entry too many
        case.fault("baselines", PRE)
    elif isinstance(case.baselines, tuple) and bad(draw, case, "baseline_list", 15):
        case.baselines = list(case.baselines)
        case.fault("baselines", PRE)


def _n_default_regions(case: Case) -> int:
    total = 0
    for x in case.tensors:
        example = tuple(x.shape[1:])
        if len(example) == 3:
            total += min(7, example[1]) * min(7, example[2])
        elif len(example) >= 1:
            total += example[-1]
    return total


@st.composite
def mask_part(draw, case: Case, max_regions: int, attribution: bool) -> None:
    """``feature_mask``: default, valid (broadcast / per-example / negative / spread ids),
    Occlusion's windows; or float, non-broadcasting, one region, a list."""
    case.mask_batch = [False] * len(case.tensors)
    kind = draw(st.sampled_from(["none", "valid", "valid", "windows" if attribution else "valid"]))
    if bad(draw, case, "mask", 6):
        kind = draw(st.sampled_from(["float", "wrong", "single", "windows_int" if attribution else "float"]))
    if any(x.dim() < 2 for x in case.tensors) or case.n == 0:
        kind = "none"
    regions: Optional[List[int]] = None  # per example
    if kind == "none":
        case.mask = None
        if attribution:
            regions = [_n_default_regions(case)] * max(case.n, 1)
    elif kind in ("windows", "windows_int"):
        windows, total = [], 0
        for x in case.tensors:
            w = tuple(draw(st.integers(1, 2)) for _ in x.shape[1:])
            windows.append(w)
            total += math.prod(math.ceil(s / k) for s, k in zip(x.shape[1:], w))
        if kind == "windows_int":
            case.kwargs["sliding_window_shapes"] = 2
            case.fault("sliding_window_shapes", PRE)
        else:
            case.kwargs["sliding_window_shapes"] = windows[0] if len(windows) == 1 else tuple(windows)
        regions = [total] * case.n
    else:
        g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
        masks = []
        ids_per_example: List[set] = [set() for _ in range(case.n)]
        n_ids = draw(st.integers(2, 5))
        transform = draw(st.sampled_from(["plain", "negative", "spread"]))
        for j, x in enumerate(case.tensors):
            shape = [1] + [s if draw(st.booleans()) else 1 for s in x.shape[1:]]
            per_example = case.n > 1 and draw(st.integers(0, 3)) == 0
            if per_example:
                shape[0] = case.n
                case.mask_batch[j] = True
            if j == 0 and case.site not in ("several", "mask"):
                shape[-1] = x.shape[-1]
            m = torch.randint(0, n_ids, tuple(shape), generator=g)
            if j == 0 and case.site not in ("several", "mask") and m.numel():  # at least two regions
                m[..., 0], m[..., -1] = 0, 1
            if kind == "single":
                m = torch.zeros_like(m)
            if transform == "negative":
                m = m - 3
            elif transform == "spread":
                m = m * 7 + 11
            for i in range(case.n):
                ids_per_example[i] |= set(m[i if per_example else 0].reshape(-1).tolist())
            if kind == "float":
                m = m.float()
                case.fault("feature_mask", PRE)
            if kind == "wrong" and j == 0:
                m = torch.zeros((1,) + tuple(s + 1 for s in x.shape[1:]), dtype=torch.long)
                case.fault("feature_mask", PRE)
            if not per_example and draw(st.booleans()):
                m = m[0]  # one example's shape, without the batch axis
            masks.append(m)
        case.mask = masks[0] if len(masks) == 1 and draw(st.booleans()) else tuple(masks)
        if len(masks) > 1 and bad(draw, case, "mask_count", 10):
            case.mask = masks[0]
            case.fault("feature_mask", PRE)
        elif isinstance(case.mask, tuple) and bad(draw, case, "mask_list", 10):
            case.mask = list(case.mask)
            case.fault("feature_mask", PRE)
        regions = [len(s) for s in ids_per_example]
        if kind == "single" and not attribution:
            regions = None  # one region is a valid (short) curve for the metrics
    if attribution and regions is not None:
        if any(m < 2 for m in regions) or any(m > max_regions for m in regions):
            case.fault("feature_mask", PRE)


@st.composite
def model_part(draw, case: Case, output_type: str) -> None:
    """The model, with an output that fits ``output_type``, or not (1-D, one column, a
    tuple, NaN everywhere or on some inputs); BatchNorm + Dropout in training mode; blind
    features; an ndarray output; a per-example forward argument."""
    if output_type == "scalar":
        kind, classes = draw(st.sampled_from([("oned", 2), ("column", 2), ("logits", 1), ("train", 1)]))
    else:
        kind = draw(st.sampled_from(["logits", "logits", "logits", "train", "blind", "ndarray"]))
        classes = draw(st.sampled_from([2, 3, 3, 4]))
    if bad(draw, case, "model_output", 6):
        kind = draw(st.sampled_from(["tuple", "nan", "nan_some", "oned", "column"]))
    if bad(draw, case, "classes", 12):
        classes = 1 if output_type != "scalar" else 3
    features = sum(int(np.prod(x.shape[1:])) if x.dim() > 1 else 1 for x in case.tensors)
    float64 = all(x.dtype == torch.float64 for x in case.tensors) and draw(st.booleans())
    scale_arg = draw(st.integers(0, 6)) == 0
    case.model = Model(
        max(features, 1), classes, kind, output_type == "probabilities", draw(st.integers(0, 2**16)), float64, scale_arg
    )
    case.classes = classes
    if scale_arg:  # a per-example forward argument
        case.kwargs["additional_forward_args"] = torch.linspace(0.5, 1.5, max(case.n, 1))
    case.out_shape = () if kind == "oned" else ((1,) if kind == "column" else (classes,))
    if kind == "tuple":
        case.fault("forward_func", FIRST)
    if kind == "nan":
        case.fault("NaN", FIRST)
    if kind == "nan_some":
        case.fault("NaN", ANY)


@st.composite
def target_part(draw, case: Case, output_type: str, needs_target: Any) -> None:
    """Every target form (int, tuple, scalar tensor, tensor or list of N, list of tuples),
    negative or not; or out of range, float, bool, huge, a wrong length or shape."""
    n, c = case.n, case.classes
    if output_type == "scalar" and not bad(draw, case, "scalar_target", 4):
        case.target = None
        return
    form = draw(st.sampled_from(["int", "int", "tuple", "scalar_tensor", "tensor", "list", "tuples"]))
    if bad(draw, case, "target_form", 5):
        form = draw(st.sampled_from(["none", "float", "float_tensor", "bool", "huge", "short_list", "tensor2d"]))
    lo, hi = (-c - 1, c) if bad(draw, case, "target_range", 5) else (-c, c - 1)
    ints = [draw(st.integers(lo, hi)) for _ in range(max(n, 1))]
    values: List[int] = []
    if form == "none":
        target: Any = None
    elif form == "int":
        target, values = ints[0], ints[:1]
    elif form == "tuple":
        target, values = (ints[0],), ints[:1]
    elif form == "scalar_tensor":
        target, values = torch.tensor(ints[0]), ints[:1]
    elif form == "tensor":
        target, values = torch.tensor(ints[:n]), ints[:n]
    elif form == "list":
        target, values = ints[:n], ints[:n]
    elif form == "tuples":
        target, values = [(v,) for v in ints[:n]], ints[:n]
    elif form == "float":
        target = 1.7
    elif form == "float_tensor":
        target = torch.tensor(1.7)
    elif form == "bool":
        target = True
    elif form == "huge":
        target = 10**20
    elif form == "short_list":
        target = ints[: n - 1] if n > 1 else [0, 0]
    else:  # tensor2d
        target = torch.tensor(ints[:n]).reshape(-1, 1)
        values = ints[:1] if target.numel() == 1 else []
    case.target = target
    if form in ("float", "float_tensor", "bool", "huge", "short_list") or (form == "tensor2d" and not values):
        case.fault("target", PRE)
    if output_type == "scalar":
        if target is not None:
            case.fault("target", PRE)
        return
    if not needs_target:
        return
    if target is None:
        case.fault("target", PRE if needs_target == "pre" else FIRST)
    elif any(not -c <= v < c for v in values):
        case.fault("target", FIRST)


def output_faults(case: Case, output_type: str) -> None:
    shape = case.out_shape
    if case.model.kind == "tuple":
        return
    if output_type == "scalar":
        if math.prod(shape) != 1:
            case.fault("output_type", FIRST)
    elif len(shape) == 0 or shape[-1] < 2:
        case.fault("output_type", FIRST)


# ============================================================================ outcomes


def names_a_fault(err: BaseException, faults: List[Tuple[str, str]], phases: Sequence[str]) -> bool:
    message = str(err)
    for name, phase in faults:
        if phase in phases and name in message:
            return True
    return isinstance(err, NonFiniteOutputError) and any(name == "NaN" and phase in phases for name, phase in faults)


def check_error(err: BaseException, case: Case, calls: int, first_calls: int, extra_calls: int) -> None:
    """(b): a documented type, naming a drawn fault, no later than that fault's phase."""
    assert isinstance(err, DOCUMENTED), f"undocumented {type(err).__name__}: {err}"
    assert case.faults, f"an error without a fault: {type(err).__name__}: {err}"
    phases = {phase for _, phase in case.faults}
    if PRE in phases and calls == 0:
        allowed = [PRE]
    elif calls <= first_calls and ({FIRST, ANY} & phases):
        allowed = [PRE, FIRST, ANY]
    elif calls <= first_calls + extra_calls and ({GRAD, EMB, ANY} & phases):
        allowed = [PRE, FIRST, GRAD, EMB, ANY]
    elif ANY in phases:
        allowed = [ANY]
    else:
        allowed = []
    assert allowed, f"raised after {calls} model call(s), too late for faults {case.faults}: {err}"
    event(f"error after {'no' if calls == 0 else 'some'} model call: {type(err).__name__}")
    event(f"faults drawn: {sorted({name for name, _ in case.faults})}{'' if case.site else ' (in a clean case)'}")
    assert names_a_fault(err, case.faults, allowed), (
        f"the message does not name a drawn fault {case.faults} (phases {allowed}): {type(err).__name__}: {err}"
    )


def run(fn: Callable[[], Any]) -> Tuple[Any, Optional[BaseException], List[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(), None, caught
        except Exception as err:  # noqa: BLE001 - the property decides
            return None, err, caught


def _slice(value: Any, i: int, batch: bool) -> Any:
    return value[i : i + 1] if batch and isinstance(value, torch.Tensor) else value


def example_args(case: Case, i: int) -> Dict[str, Any]:
    """The arguments of example ``i`` alone."""
    tensors = tuple(x[i : i + 1] for x in case.tensors)
    inputs = tensors[0] if isinstance(case.inputs, torch.Tensor) else tensors
    bl = case.baselines
    if isinstance(bl, tuple):
        bl = tuple(_slice(b, i, f) for b, f in zip(bl, case.baseline_batch))
    elif bl is not None:
        bl = _slice(bl, i, case.baseline_batch[0])
    t = case.target
    if isinstance(t, torch.Tensor) and t.dim() == 1 and t.numel() == case.n and case.n > 1:
        t = t[i : i + 1]
    elif isinstance(t, list):
        t = [t[i]]
    mask = case.mask
    if isinstance(mask, tuple):
        mask = tuple(_slice(m, i, f) for m, f in zip(mask, case.mask_batch))
    elif mask is not None:
        mask = _slice(mask, i, case.mask_batch[0])
    kwargs = dict(case.kwargs)
    if "additional_forward_args" in kwargs:
        kwargs["additional_forward_args"] = kwargs["additional_forward_args"][i : i + 1]
    return dict(inputs=inputs, baselines=bl, target=t, feature_mask=mask, kwargs=kwargs)


def rounding(case: Case, results) -> float:
    """How far two evaluations of the same input may differ (batch-dependent rounding):
    a few ulps of the largest model output or score involved."""
    eps = float(torch.finfo(torch.float64 if case.model.float64 else torch.float32).eps)
    scale = 1.0
    for r in results:
        scale = max(scale, float(r.insertion_curve.abs().max()), float(r.deletion_curve.abs().max()))
    modes = {m: m.training for m in case.model.modules()}
    case.model.eval()
    with torch.no_grad():
        args = case.kwargs.get("additional_forward_args")
        extra = () if args is None else (args,)
        for x_form in (case.tensors, [torch.zeros_like(x) for x in case.tensors]):
            out = case.model(*x_form, *extra)
            out = torch.as_tensor(out[0] if isinstance(out, tuple) else out)
            scale = max(scale, float(out.abs().max()))
    for m, flag in modes.items():
        m.training = flag
    for b in case.baselines if isinstance(case.baselines, tuple) else (case.baselines,):
        if isinstance(b, (int, float)):
            scale = max(scale, abs(b) * 4 if math.isfinite(b) else 1.0)  # a linear model of weights ~1
    return 64 * eps * scale


def assert_same_explanations(a, b, what: str, tol: float) -> None:
    assert len(a) == len(b)
    for r, s in zip(a, b):
        assert r.order.tolist() == s.order.tolist(), f"{what}: orders differ {r.order} {s.order}"
        assert torch.equal(r.region_values == 0, s.region_values == 0), f"{what}: exact zeros differ"
        torch.testing.assert_close(r.region_values, s.region_values, rtol=1e-4, atol=tol)


# ============================================================================ attribution


@st.composite
def attribution_cases(draw):
    case = Case(site=draw(st.sampled_from([None] * 8 + ATTRIBUTION_SITES + ["several"] * 3)))
    draw(inputs_part(case))
    search = draw(st.sampled_from(["greedy", "greedy", "bidirectional", "accelerated", "phasewin"]))
    if bad(draw, case, "search", 20):
        search = "nope"
        case.fault("search", PRE)
    max_regions = {"greedy": 256, "bidirectional": 256}.get(search, 1024)
    output_type = draw(st.sampled_from(["logits", "logits", "logits", "probabilities", "scalar"]))
    draw(model_part(case, output_type))
    output_faults(case, output_type)
    draw(target_part(case, output_type, needs_target=True))
    draw(baselines_part(case))
    draw(mask_part(case, max_regions, True))
    case.ppe = draw(st.sampled_from([1, 1, 7, 1000, 2, None]))  # None: automatic
    if bad(draw, case, "ppe", 12):
        case.ppe = draw(st.sampled_from([0, -1, True, 2.5]))
        case.fault("perturbations_per_eval", PRE)
    weights = draw(st.sampled_from(["default", "default", "default", "negative", "diversity"]))
    if bad(draw, case, "weights", 15):
        weights = draw(st.sampled_from(["nan", "nan_embedding"]))
    options: Dict[str, Any] = dict(search=search, output_type=output_type)
    if weights == "negative":
        options["weights"] = (-1.0, 5.0, -0.5, 0.0)
    elif weights == "nan":
        options["weights"] = (float("nan"), 5.0, 0.01, 0.0)
        case.fault("weights", PRE)
    elif weights in ("diversity", "nan_embedding"):
        options["weights"] = (20.0, 5.0, 0.01, 0.05)
        nan = weights == "nan_embedding"

        def embedding(*xs):
            flat = torch.cat([x.reshape(x.shape[0], -1).double() for x in xs], 1)
            return flat * float("nan") if nan else torch.cat([flat, torch.ones(flat.shape[0], 1)], 1)

        options["embedding"] = embedding
        if nan:
            case.fault("embedding", EMB)
    floats = all(x.is_floating_point() for x in case.tensors)
    if draw(st.integers(0, 4)) == 0 and (floats or bad(draw, case, "gradient", 2)):
        options["within_region"] = "gradient"
        if not all(x.is_floating_point() for x in case.tensors):
            case.fault("within_region", PRE)
        if case.model.kind == "ndarray":
            case.fault("within_region", GRAD)
    threshold = draw(st.sampled_from([None, None, None, 0.5]))
    if bad(draw, case, "threshold", 15):
        threshold = draw(st.sampled_from(["abc", float("nan")]))
        case.fault("threshold", PRE)
    if threshold is not None:
        case.kwargs["threshold"] = threshold
    train_mode = "warn"
    if case.model.kind != "train" and draw(st.integers(0, 4)) == 0 or bad(draw, case, "train_mode", 15):
        train_mode = "error"
        if case.model.kind == "train":
            case.fault("training mode", PRE)
    options["train_mode"] = train_mode
    entry = draw(st.sampled_from(["attribute", "explain"]))
    return case, options, entry


def make(case: Case, options: Dict[str, Any]) -> SubmodularAttribution:
    opts = dict(options)
    if "weights" in opts:
        opts["weights"] = ObjectiveWeights(*opts["weights"])
    return SubmodularAttribution(case.model, **opts)


@given(attribution_cases())
def test_attribution_correct_result_or_clear_error(drawn):
    case, options, entry = drawn
    note(
        f"faults={case.faults} options={options} entry={entry} ppe={case.ppe} "
        f"shapes={[(tuple(x.shape), x.dtype) for x in case.tensors]} target={case.target!r} "
        f"baselines={case.baselines!r} mask={case.mask!r} model={case.model.kind} kwargs={case.kwargs}"
    )
    saved_model = model_state(case.model)
    saved_args = clone((case.tensors, case.baselines, case.mask, case.target))

    def call(ppe=case.ppe, args=None, how=entry):
        args = args or dict(
            inputs=case.inputs, baselines=case.baselines, target=case.target, feature_mask=case.mask, kwargs=case.kwargs
        )
        sa = make(case, options)
        fn = sa.attribute if how == "attribute" else sa.explain
        return fn(
            args["inputs"],
            baselines=args["baselines"],
            target=args["target"],
            feature_mask=args["feature_mask"],
            perturbations_per_eval=ppe,
            **args["kwargs"],
        )

    case.model.calls = 0
    result, err, caught = run(call)
    calls = case.model.calls
    assert_model_unchanged(case.model, saved_model)
    assert bitwise_equal(saved_args, (case.tensors, case.baselines, case.mask, case.target)), "arguments mutated"
    ppe = case.ppe if isinstance(case.ppe, int) and not isinstance(case.ppe, bool) and case.ppe > 0 else 1
    first_calls = 1
    m = 64
    extra = max(case.n, 1) * (1 + math.ceil(m / ppe))
    if err is not None:
        check_error(err, case, calls, first_calls, extra)
        return
    assert not [f for f in case.faults if f[1] != ANY], f"no error for faults {case.faults}"
    if case.model.kind == "train":
        assert any("training mode" in str(w.message) for w in caught), "no warning for a model in training mode"
    # (a) a correct result
    event("correct result")
    was_tuple = isinstance(case.inputs, tuple)
    if entry == "attribute":
        maps = result if was_tuple else (result,)
        assert isinstance(result, tuple) == was_tuple
    else:
        assert isinstance(result, list) and len(result) == case.n
        per = [r.attributions if isinstance(r.attributions, tuple) else (r.attributions,) for r in result]
        maps = tuple(torch.cat([p[j] for p in per]) for j in range(len(case.tensors)))
    assert len(maps) == len(case.tensors)
    for a, x in zip(maps, case.tensors):
        assert a.shape == x.shape and a.dtype == map_dtype(x.dtype) and a.device == x.device
        assert torch.isfinite(a).all(), "NaN or inf in the map"
    if case.model.kind == "nan_some":
        return  # the reruns below could meet a NaN input the first run did not
    # ppe 1 equals ppe 7, and the batch equals its examples one by one
    reference = call(ppe=7 if ppe == 1 else 1, how="explain")
    tol = rounding(case, reference)
    if entry == "explain":
        assert_same_explanations(result, reference, "perturbations_per_eval", tol)
    else:
        ref_maps = tuple(
            torch.cat(
                [(r.attributions if isinstance(r.attributions, tuple) else (r.attributions,))[j] for r in reference]
            )
            for j in range(len(case.tensors))
        )
        for a, b in zip(maps, ref_maps):
            assert torch.equal(a == 0, b == 0), "perturbations_per_eval: exact zeros differ"
            torch.testing.assert_close(a, b, rtol=1e-4, atol=tol)
    if case.n > 1:
        singles = [call(ppe=ppe, args=example_args(case, i), how="explain")[0] for i in range(case.n)]
        assert_same_explanations(singles, reference, "batch vs single examples", tol)
    assert_model_unchanged(case.model, saved_model)


# ============================================================================ metrics


@st.composite
def metric_cases(draw):
    case = Case(site=draw(st.sampled_from([None] * 8 + METRIC_SITES + ["several"] * 3)))
    draw(inputs_part(case))
    fn = draw(st.sampled_from(["insertion", "deletion", "highest_confidence"]))
    output = "softmax" if fn == "highest_confidence" else draw(st.sampled_from(["softmax", "softmax", "identity"]))
    draw(model_part(case, "logits" if output == "softmax" or draw(st.booleans()) else "scalar"))
    kind, shape = case.model.kind, case.out_shape
    scalar_output = output == "identity" and (len(shape) == 0 or shape == (1,))
    if output == "softmax" and kind != "tuple" and (len(shape) == 0 or shape[-1] < 2):
        case.fault("output='softmax'", FIRST)
    needs = False if scalar_output else ("pre" if output == "softmax" else "first")
    draw(target_part(case, "logits", needs_target=needs))
    if fn == "highest_confidence" and case.target is None:
        case.fault("target", PRE)
    draw(baselines_part(case))
    draw(mask_part(case, 10**9, False))
    case.ppe = draw(st.sampled_from([1, 7, 64]))
    if bad(draw, case, "ppe", 12):
        case.ppe = draw(st.sampled_from([0, True]))
        case.fault("perturbations_per_eval", PRE)
    n_steps = draw(st.sampled_from([1, 3, 4]))
    if bad(draw, case, "n_steps", 15):
        n_steps = 0
        case.fault("n_steps", PRE)
    floats = all(x.is_floating_point() for x in case.tensors)
    substrate = draw(
        st.sampled_from(
            [None, None, "baseline"] + (["mean"] if floats else []) + (["blur"] if fn == "deletion" else [])
        )
    )
    images = floats and all(x.dim() == 4 for x in case.tensors)
    masks = case.mask if isinstance(case.mask, (tuple, list)) else (case.mask,)
    per_pixel = case.mask is None or all(  # ROAD imputes whole pixels: one region id across channels
        isinstance(m, torch.Tensor) and m.dim() <= x.dim() and ((1,) * (x.dim() - m.dim()) + tuple(m.shape))[1] == 1
        for m, x in zip(masks, case.tensors)
    )
    if images and per_pixel and draw(st.booleans()):
        substrate = "road"
    if bad(draw, case, "substrate", 10):
        substrate = draw(st.sampled_from(["nope", "mean", "blur", "road"]))
        if substrate == "road" and not per_pixel:
            substrate = "nope"
        if (
            substrate == "nope"
            or (substrate == "mean" and not floats)
            or (substrate == "blur" and fn != "deletion")
            or (substrate == "road" and not images)
        ):
            case.fault("substrate", PRE)  # blur: tiny inputs are never N×C×H×W with H, W > 5
    # attributions: like the inputs, one channel, integers; or NaN, a wrong shape, a list
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    attrs = []
    for x in case.tensors:
        a_kind = draw(st.sampled_from(["same", "same", "channel", "int"]))
        if bad(draw, case, "attributions", 10):
            a_kind = draw(st.sampled_from(["nan", "wrong"]))
        shape_a = tuple(x.shape)
        if a_kind == "channel" and x.dim() >= 3:
            shape_a = (x.shape[0], 1, *x.shape[2:])
        if a_kind == "wrong":
            shape_a = tuple(s + 1 for s in x.shape)
            case.fault("attributions", PRE)
        a = torch.randn(shape_a, generator=g)
        if a_kind == "int":
            a = (a * 3).long()
        if a_kind == "nan" and a.numel():
            a.view(-1)[-1] = float("nan")
            case.fault("attributions", PRE)
        attrs.append(a)
    attributions: Any = attrs[0] if len(attrs) == 1 and not isinstance(case.inputs, tuple) else tuple(attrs)
    if len(attrs) > 1 and bad(draw, case, "attributions_list", 12):
        attributions = list(attrs)
        case.fault("attributions", PRE)
    kwargs = dict(n_steps=n_steps, substrate=substrate, perturbations_per_eval=case.ppe)
    if fn != "highest_confidence":
        kwargs["output"] = output
        kwargs["order"] = draw(st.sampled_from(["morf", "lerf"]))
    if "additional_forward_args" in case.kwargs:
        kwargs["additional_forward_args"] = case.kwargs["additional_forward_args"]
    return case, fn, attributions, kwargs


METRIC_FNS = {"insertion": insertion, "deletion": deletion, "highest_confidence": highest_confidence}


@given(metric_cases())
def test_metrics_correct_result_or_clear_error(drawn):
    case, name, attributions, kwargs = drawn
    note(
        f"{name} faults={case.faults} kwargs={kwargs} shapes={[(tuple(x.shape), x.dtype) for x in case.tensors]} "
        f"target={case.target!r} baselines={case.baselines!r} mask={case.mask!r} model={case.model.kind} "
        f"attributions={attributions!r}"
    )
    fn = METRIC_FNS[name]
    saved_model = model_state(case.model)
    saved_args = clone((case.tensors, case.baselines, case.mask, case.target, attributions))

    def call(
        ppe=case.ppe,
        inputs=case.inputs,
        attrs=attributions,
        target=case.target,
        baselines=case.baselines,
        mask=case.mask,
        afa=kwargs.get("additional_forward_args"),  # noqa: B008 - bound once, on purpose
    ):
        kw = dict(kwargs, perturbations_per_eval=ppe)
        kw.pop("additional_forward_args", None)
        res = fn(case.model, inputs, attrs, target, baselines, afa, feature_mask=mask, **kw)
        return res.values if name == "highest_confidence" else res

    case.model.calls = 0
    result, err, caught = run(call)
    calls = case.model.calls
    assert_model_unchanged(case.model, saved_model)
    assert bitwise_equal(saved_args, (case.tensors, case.baselines, case.mask, case.target, attributions))
    if err is not None:
        check_error(err, case, calls, 1, 0)
        return
    assert not [f for f in case.faults if f[1] != ANY], f"no error for faults {case.faults}"
    if case.model.kind == "train":
        assert any("training mode" in str(w.message) for w in caught)
    event("correct result")
    event(f"correct result with substrate={kwargs['substrate']!r}")
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float64 and result.shape[0] == case.n
    assert torch.isfinite(result).all()
    if case.model.kind == "nan_some":
        return
    other = call(ppe=7 if case.ppe == 1 else 1)
    torch.testing.assert_close(result, other, rtol=1e-5, atol=1e-6)
    if case.n > 1:
        for i in range(case.n):
            args = example_args(case, i)
            a_i = (
                attributions[i : i + 1]
                if isinstance(attributions, torch.Tensor)
                else tuple(a[i : i + 1] for a in attributions)
            )
            single = call(
                inputs=args["inputs"],
                attrs=a_i,
                target=args["target"],
                baselines=args["baselines"],
                mask=args["feature_mask"],
                afa=args["kwargs"].get("additional_forward_args"),
            )
            # region mode pads shorter curves: the area is the same
            torch.testing.assert_close(single[0], result[i], rtol=1e-5, atol=1e-6)


# ============================================================================ regions


@st.composite
def grid_cases(draw):
    faults = []
    size = st.one_of(st.integers(1, 6), st.sampled_from([0, -1, 2.5, True, "4"]))
    h, w = draw(size), draw(size)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (h, w)):
        faults.append("height")
    spec = st.one_of(
        st.none(),
        st.integers(0, 4),
        st.tuples(st.integers(0, 4), st.integers(0, 4)),
        st.sampled_from([2.5, (2,), (1, 2, 3), "2", True, (2.0, 2)]),
    )
    grid, tile = draw(spec), draw(spec)
    if (grid is None) == (tile is None):
        faults.append("exactly one")
    elif not faults:
        name, value = ("grid", grid) if grid is not None else ("tile_size", tile)
        pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
        ok = (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            and min(pair) >= 1
        )
        if ok and name == "grid":
            ok = pair[0] <= h and pair[1] <= w
        if not ok:
            faults.append(name)
    return h, w, grid, tile, faults


@given(grid_cases())
def test_grid_mask_correct_result_or_clear_error(drawn):
    h, w, grid, tile, faults = drawn
    result, err, _ = run(lambda: grid_mask(h, w, grid=grid, tile_size=tile))
    if err is not None:
        assert isinstance(err, ValueError) and faults and any(f in str(err) for f in faults), (faults, err)
        return
    assert not faults, f"no error for {faults}"
    assert result.shape == (1, 1, h, w) and result.dtype == torch.long
    if grid is not None:
        gh, gw = (grid, grid) if isinstance(grid, int) else grid
        assert result.unique().tolist() == list(range(gh * gw))
    else:
        th, tw = (tile, tile) if isinstance(tile, int) else tile
        assert result.unique().numel() == math.ceil(h / th) * math.ceil(w / tw)


@st.composite
def slic_cases(draw):
    faults = []
    c, h, w = draw(st.sampled_from([1, 3])), draw(st.integers(2, 8)), draw(st.integers(2, 8))
    image = torch.rand(c, h, w, generator=torch.Generator().manual_seed(draw(st.integers(0, 999))))
    form = draw(st.sampled_from(["tensor", "tensor", "batch1", "array", "batch2", "nan", "inf", "1d"]))
    if form == "batch1":
        image = image[None]
    elif form == "array":
        image = image.permute(1, 2, 0).numpy()
    elif form == "batch2":
        image = torch.stack([image, image])
        faults.append("batch")
    elif form in ("nan", "inf"):
        image[0, 0, 0] = float(form)
        faults.append("NaN" if form == "nan" else "inf")
    elif form == "1d":
        image = image.reshape(-1)
        faults.append("image")
    n_segments = draw(st.sampled_from([2, 4, 9, 1, 2.5]))
    if n_segments in (1, 2.5):
        faults.append("n_segments")
    return image, n_segments, (h, w), faults


@given(slic_cases())
def test_slic_mask_correct_result_or_clear_error(drawn):
    image, n_segments, (h, w), faults = drawn
    result, err, _ = run(lambda: slic_mask(image, n_segments=n_segments))
    if err is not None:
        assert isinstance(err, ValueError) and faults and any(f in str(err) for f in faults), (faults, err)
        return
    assert not faults, f"no error for {faults}"
    assert result.shape == (1, 1, h, w) and result.dtype == torch.long
    ids = result.unique()
    assert ids.tolist() == list(range(ids.numel()))
