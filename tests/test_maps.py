"""The map's contract, for every registered search and output type.

A region whose addition and removal at its place in the order change neither curve gets
exactly 0 (so a region the model cannot see always does), and the non-zero values sort
into the searched order.  Disconnected models give the ground truth: the target's score
is a function of one cell of the input, so anything outside that cell must be 0.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from captum_submodular import SubmodularAttribution
from captum_submodular.maps import gain_map, no_effect, rank_map
from captum_submodular.regions import grid_mask
from captum_submodular.search import SEARCHES

pytestmark = pytest.mark.usefixtures("single_thread")

SEARCH_NAMES = sorted(SEARCHES)
OUTPUT_TYPES = ("logits", "probabilities", "scalar")
MASK = grid_mask(8, 8, grid=4)  # 16 tiles of 2×2; tile i lies in cell (i // 4 // 2, i % 4 // 2)


def cell_of_tile(i: int) -> int:
    return (i // 4) // 2 * 2 + (i % 4) // 2


class CellNet(nn.Module):
    """A random multi-class conv net that reads only cell ``k`` of a 2×2 grid of an 8×8 image.

    ``logits = scale · (net(cell) − net(baseline cell)) + bias``, so the baseline's logits
    are ``bias`` exactly.  ``output`` selects what the model returns: the logits, their
    softmax (``"probabilities"``) or the probability of class ``c`` alone (``"scalar"``).
    """

    def __init__(
        self,
        k: int,
        seed: int,
        classes: int = 4,
        scale: float = 1.0,
        bias: torch.Tensor | None = None,
        output: str = "logits",
        c: int = 0,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k, self.scale, self.output, self.c = k, scale, output, c
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Linear(6 * 16, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.register_buffer("bias", torch.zeros(classes) if bias is None else bias)

    def net(self, cell: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.conv(cell)).flatten(1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        r, c = divmod(self.k, 2)
        cell = x[:, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4]
        return self.scale * (self.net(cell) - self.net(torch.zeros_like(cell))) + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logits(x)
        if self.output == "probabilities":
            return torch.softmax(z, dim=1)
        if self.output == "scalar":
            return torch.softmax(z, dim=1)[:, self.c]
        return z


def build_case(k: int, seed: int, output: str, saturation: str, target_kind: str) -> tuple[CellNet, torch.Tensor, int]:
    """The model, a 1×3×8×8 input and the class explained, for one case of the contract."""
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(100 + seed))
    probe = CellNet(k, seed).eval()
    with torch.no_grad():
        z = probe.logits(x)[0]
    predicted, other = int(z.argmax()), int(z.argmin())
    scale = 1.0 if saturation == "none" else 1e3
    bias = None
    if saturation == "both":  # saturated on the full input and on the baseline
        bias = torch.zeros(4)
        bias[predicted] = 1e3
    c = predicted if target_kind == "predicted" else other
    model = CellNet(k, seed, scale=scale, bias=bias, output=output, c=c).eval()
    with torch.no_grad():
        p_full = torch.softmax(model.logits(x), 1)[0, c]
        p_base = torch.softmax(model.logits(torch.zeros_like(x)), 1)[0, c]
    if saturation == "full":
        assert p_full in (0.0, 1.0)
    if saturation == "both":
        assert p_full in (0.0, 1.0) and p_base in (0.0, 1.0)
    return model, x, c


def sorted_nonzero_follows_order(result) -> bool:
    """The non-zero region values, read along the order, are strictly decreasing."""
    values = result.region_values[torch.searchsorted(result.region_ids, result.order)]
    nz = values[values != 0]
    return bool((nz[:-1] > nz[1:]).all())


@pytest.mark.parametrize("search", SEARCH_NAMES)
@pytest.mark.parametrize("output", OUTPUT_TYPES)
@pytest.mark.parametrize("saturation", ["none", "full", "both"])
@pytest.mark.parametrize("target_kind", ["predicted", "other"])
def test_regions_outside_the_visible_cell_get_exact_zeros(search, output, saturation, target_kind):
    k = (SEARCH_NAMES.index(search) + OUTPUT_TYPES.index(output)) % 4
    model, x, c = build_case(k, seed=k + 3, output=output, saturation=saturation, target_kind=target_kind)
    sa = SubmodularAttribution(model, search=search, output_type=output)
    target = None if output == "scalar" else c
    outside = torch.tensor([cell_of_tile(i) != k for i in range(16)])
    runs = [sa.explain(x, target=target, feature_mask=MASK, perturbations_per_eval=ppe)[0] for ppe in (1, 7)]
    for r in runs:
        assert (r.region_values[outside] == 0).all()
        assert (r.attributions[0][:, outside[MASK[0, 0]]] == 0).all()
        assert sorted_nonzero_follows_order(r)
        # exactly the regions that changed neither curve are 0 (the contract's "if and only if")
        silent = no_effect(r.insertion_curve, r.deletion_curve, resolution=0.0)
        values_in_order = r.region_values[torch.searchsorted(r.region_ids, r.order)]
        assert ((values_in_order == 0) >= silent).all()
    assert runs[0].order.tolist() == runs[1].order.tolist()
    assert torch.equal(runs[0].region_values == 0, runs[1].region_values == 0)
    # the attribute() map is the same map broadcast over the input
    a = sa.attribute(x, target=target, feature_mask=MASK, perturbations_per_eval=7)
    assert torch.equal(a, runs[1].attributions)


@pytest.mark.parametrize("search", SEARCH_NAMES)
def test_batch_of_examples_with_different_visible_cells(search):
    # One model, a batch of 3 examples whose targets live in different cells: the output
    # for class j·4 + c reads cell j only (each cell has its own head; log-softmax per cell).
    heads = [CellNet(j, seed=j + 11) for j in range(4)]

    class Grid(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = nn.ModuleList(heads)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.log_softmax(h.logits(x), 1) for h in self.heads], dim=1)

    model = Grid().eval()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    targets = [0 * 4 + 1, 2 * 4 + 3, 3 * 4 + 0]
    sa = SubmodularAttribution(model, search=search)
    batched = sa.explain(x, target=targets, feature_mask=MASK, perturbations_per_eval=16)
    for i, (t, r) in enumerate(zip(targets, batched)):
        outside = torch.tensor([cell_of_tile(j) != t // 4 for j in range(16)])
        assert (r.region_values[outside] == 0).all()
        assert (r.region_values[~outside] != 0).any()
        (single,) = sa.explain(x[i : i + 1], target=t, feature_mask=MASK, perturbations_per_eval=1)
        assert single.order.tolist() == r.order.tolist()
        assert torch.equal(single.region_values == 0, r.region_values == 0)


# ----------------------------------------------------------------- properties


@st.composite
def blind_cases(draw):
    """A model that ignores a random subset of its input's regions, and a call to explain it."""
    m = draw(st.integers(2, 8))
    visible = draw(st.lists(st.booleans(), min_size=m, max_size=m).filter(any))
    seed = draw(st.integers(0, 2**16))
    search = draw(st.sampled_from(SEARCH_NAMES))
    output = draw(st.sampled_from(OUTPUT_TYPES))
    ppe = draw(st.integers(1, 9))
    gain = draw(st.sampled_from([0.5, 5.0, 500.0]))  # 500: saturated scores
    return m, visible, seed, search, output, ppe, gain


@given(blind_cases())
def test_a_model_never_credits_regions_it_ignores(case):
    m, visible, seed, search, output, ppe, gain = case
    g = torch.Generator().manual_seed(seed)
    width = 2  # elements per region
    keep = torch.tensor(visible).repeat_interleave(width).float()
    w1 = torch.randn(m * width, 6, generator=g)
    w2 = torch.randn(6, 3, generator=g)

    def model(x: torch.Tensor) -> torch.Tensor:
        z = gain * torch.tanh((x * keep) @ w1) @ w2
        if output == "probabilities":
            return torch.softmax(z, dim=1)
        if output == "scalar":
            return z[:, 0] - z[:, 1]
        return z

    x = torch.randn(2, m * width, generator=g)
    mask = torch.arange(m).repeat_interleave(width)[None]
    target = None if output == "scalar" else [0, 2]
    results = SubmodularAttribution(model, search=search, output_type=output).explain(
        x, target=target, feature_mask=mask, perturbations_per_eval=ppe
    )
    invisible = ~torch.tensor(visible)
    for r in results:
        assert (r.region_values[invisible] == 0).all()
        assert sorted_nonzero_follows_order(r)


@st.composite
def curves(draw):
    """Insertion and deletion curves along an order, some steps flat on both curves."""
    m = draw(st.integers(1, 12))
    flat = draw(st.lists(st.booleans(), min_size=m, max_size=m))
    step = st.floats(-1.0, 1.0, allow_nan=False).filter(lambda v: abs(v) > 1e-6)
    d_ins = [0.0 if f else draw(step) for f in flat]
    d_del = [0.0 if f else draw(step) for f in flat]
    ins = torch.cumsum(torch.tensor([0.0] + d_ins, dtype=torch.float64), 0)
    dele = 5.0 - torch.cumsum(torch.tensor([0.0] + d_del, dtype=torch.float64), 0)
    return ins, dele, torch.tensor(flat)


@given(curves())
def test_gain_map_zeros_exactly_the_flat_steps_and_orders_the_rest(c):
    ins, dele, flat = c
    values = gain_map(ins, dele, resolution=1e-9)
    assert torch.equal(values == 0, flat)
    assert torch.equal(no_effect(ins, dele, resolution=1e-9), flat)
    nz = values[values != 0]
    assert (nz[:-1] > nz[1:]).all()


def test_rank_map_ranks_every_region():
    assert rank_map(4).tolist() == [4.0, 3.0, 2.0, 1.0]
