"""Tests for captum_submodular.imputation (ROAD noisy linear imputation)."""

import math

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_submodular.imputation import road_impute

EDGE, DIAG = 1 / 6, 1 / 12
NEIGHBOURS = [(dy, dx, EDGE if dy == 0 or dx == 0 else DIAG)
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]  # fmt: skip


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread (conftest)


# --------------------------------------------------------------------------
# Reference: the ROAD system of one image, solved directly
# --------------------------------------------------------------------------


def spsolve_reference(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """img (C, H, W), removed (H, W) bool -> imputed image, via scipy.sparse.linalg.spsolve.

    For removed i: sum_{j in N(i)} w_ij x_i - sum_{j removed} w_ij x_j = sum_{j kept} w_ij x_j.
    """
    c, h, w = img.shape
    idx = np.flatnonzero(removed.ravel())
    out = img.reshape(c, -1).astype(np.float64).copy()
    if idx.size == 0:
        return out.reshape(c, h, w)
    var = -np.ones(h * w, dtype=np.int64)
    var[idx] = np.arange(idx.size)
    rows, cols, vals = [], [], []
    rhs = np.zeros((idx.size, c))
    for e, p in enumerate(idx):
        py, px = divmod(int(p), w)
        diag = 0.0
        for dy, dx, wt in NEIGHBOURS:
            qy, qx = py + dy, px + dx
            if not (0 <= qy < h and 0 <= qx < w):
                continue
            diag += wt
            q = qy * w + qx
            if var[q] >= 0:
                rows.append(e), cols.append(var[q]), vals.append(-wt)
            else:
                rhs[e] += wt * out[:, q]
        rows.append(e), cols.append(e), vals.append(diag)
    a = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(idx.size, idx.size))
    sol = scipy.sparse.linalg.spsolve(a, rhs)
    out[:, idx] = np.asarray(sol).reshape(idx.size, c).T
    return out.reshape(c, h, w)


def stencil_defect(y: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """max over removed pixels of |y_i - weighted mean of its in-bounds neighbours in y|."""
    n, c, h, w = y.shape
    num = torch.zeros_like(y)
    den = torch.zeros(1, 1, h, w, dtype=y.dtype)
    for dy, dx, wt in NEIGHBOURS:
        ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
        xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
        num[:, :, yd, xd] += wt * y[:, :, ys, xs]
        den[:, :, yd, xd] += wt
    defect = torch.where(removed, (y - num / den).abs(), 0.0)
    return defect.max()


def random_masks(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Masks of several densities and shapes (borders, corners, blobs, all but one)."""
    masks = [rng.random((h, w)) < p for p in (0.05, 0.3, 0.6, 0.9, 0.99)]
    blob = np.zeros((h, w), bool)
    blob[h // 4 : h, : 3 * w // 4] = True  # touches two borders and a corner
    masks.append(blob)
    ring = np.ones((h, w), bool)
    ring[1:-1, 1:-1] = False  # the whole border removed
    masks.append(ring)
    for ky, kx in ((0, 0), (h // 2, w // 3), (h - 1, w - 1)):
        one = np.ones((h, w), bool)
        one[ky, kx] = False  # all but one pixel removed
        masks.append(one)
    island = np.ones((h, w), bool)
    island[h // 3 : h // 3 + 3, w // 2 : w // 2 + 3] = False  # a small kept island
    masks.append(island)
    smooth = np.cumsum(np.cumsum(rng.standard_normal((h, w)), 0), 1)
    masks.append(smooth > np.median(smooth))  # large irregular blobs
    few = np.zeros((h, w), bool)
    few[h // 2, w // 2] = True  # a single removed pixel: singular coarse operators
    masks.append(few.copy())
    few[h // 2, w // 2 + 1] = few[0, w - 1] = True
    masks.append(few)
    return np.stack(masks)


# --------------------------------------------------------------------------
# Against the direct sparse solve
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(6, 7), (17, 23), (40, 32)])
def test_matches_spsolve(dtype, shape):
    h, w = shape
    rng = np.random.default_rng(h * 100 + w)
    img = rng.random((2, 3, h, w))
    masks = random_masks(rng, h, w)
    n = len(masks)
    imgs = np.concatenate([img, img[:1].repeat(n - 2, 0)])  # one image per mask
    ref = np.stack([spsolve_reference(imgs[i], masks[i]) for i in range(n)])
    x = torch.tensor(imgs, dtype=dtype)
    out = road_impute(x, torch.tensor(masks), noise_std=0)
    assert out.dtype == dtype
    err = (out.double() - torch.tensor(ref)).abs().max().item()
    assert err < 1e-4, err  # default tol=1e-4 of the largest deviation (< 1)
    if dtype == torch.float64:
        tight = road_impute(x, torch.tensor(masks), noise_std=0, tol=1e-12)
        assert (tight - torch.tensor(ref)).abs().max().item() < 1e-10


def test_matches_spsolve_offset_and_scaled_data():
    # The tolerance is relative to the kept values' largest deviation from their mean:
    # values in [-2, 3] as after ImageNet normalisation, in [0, 255], and in [100, 101]
    # (an offset changes nothing).
    rng = np.random.default_rng(3)
    masks = random_masks(rng, 24, 24)
    for lo, hi, bound in ((-2.0, 3.0, 2.5e-4), (0.0, 255.0, 1.28e-2), (100.0, 101.0, 1e-4)):
        imgs = lo + (hi - lo) * rng.random((len(masks), 3, 24, 24))
        ref = np.stack([spsolve_reference(imgs[i], masks[i]) for i in range(len(masks))])
        out = road_impute(torch.tensor(imgs, dtype=torch.float32), torch.tensor(masks),
                          noise_std=0)  # fmt: skip
        assert (out.double() - torch.tensor(ref)).abs().max().item() < bound


# --------------------------------------------------------------------------
# The stencil, worked by hand on 5 x 5
# --------------------------------------------------------------------------


def _image5():
    # Distinct values so that a wrong weight or neighbour changes the result.
    return (torch.arange(25, dtype=torch.float64) ** 1.5).reshape(1, 1, 5, 5)


def _impute5(cells):
    x = _image5()
    removed = torch.zeros(5, 5, dtype=torch.bool)
    for cell in cells:
        removed[cell] = True
    return x[0, 0], road_impute(x, removed, noise_std=0, tol=1e-14)[0, 0]


def test_hand_single_centre_pixel():
    v, out = _impute5([(2, 2)])
    edges = v[1, 2] + v[3, 2] + v[2, 1] + v[2, 3]
    diags = v[1, 1] + v[1, 3] + v[3, 1] + v[3, 3]
    assert out[2, 2].item() == pytest.approx((edges / 6 + diags / 12).item(), abs=1e-12)


def test_hand_corner_and_border_pixels():
    v, out = _impute5([(0, 0), (0, 4), (4, 2)])
    # corner (0, 0): neighbours (0,1), (1,0) edge and (1,1) diagonal; weights sum 5/12
    corner = (v[0, 1] / 6 + v[1, 0] / 6 + v[1, 1] / 12) / (5 / 12)
    assert out[0, 0].item() == pytest.approx(corner.item(), abs=1e-12)
    corner2 = (v[0, 3] / 6 + v[1, 4] / 6 + v[1, 3] / 12) / (5 / 12)
    assert out[0, 4].item() == pytest.approx(corner2.item(), abs=1e-12)
    # bottom border (4, 2): 3 edge and 2 diagonal neighbours; weights sum 2/3
    border = ((v[4, 1] + v[4, 3] + v[3, 2]) / 6 + (v[3, 1] + v[3, 3]) / 12) / (2 / 3)
    assert out[4, 2].item() == pytest.approx(border.item(), abs=1e-12)


def test_hand_adjacent_pair():
    # a = (2, 1), b = (2, 2) removed, edge neighbours of each other:
    #   x_a - x_b / 6 = s_a,   x_b - x_a / 6 = s_b   (both interior: weights sum to 1)
    # => x_a = (36 s_a + 6 s_b) / 35,  x_b = (36 s_b + 6 s_a) / 35
    v, out = _impute5([(2, 1), (2, 2)])
    s_a = (v[1, 1] + v[3, 1] + v[2, 0]) / 6 + (v[1, 0] + v[1, 2] + v[3, 0] + v[3, 2]) / 12
    s_b = (v[1, 2] + v[3, 2] + v[2, 3]) / 6 + (v[1, 1] + v[1, 3] + v[3, 1] + v[3, 3]) / 12
    assert out[2, 1].item() == pytest.approx(((36 * s_a + 6 * s_b) / 35).item(), abs=1e-12)
    assert out[2, 2].item() == pytest.approx(((36 * s_b + 6 * s_a) / 35).item(), abs=1e-12)


def test_hand_diagonal_pair():
    # a = (1, 1), b = (2, 2), diagonal neighbours: x_a - x_b / 12 = s_a, x_b - x_a / 12 = s_b
    # => x_a = (144 s_a + 12 s_b) / 143
    v, out = _impute5([(1, 1), (2, 2)])
    s_a = (v[0, 1] + v[2, 1] + v[1, 0] + v[1, 2]) / 6 + (v[0, 0] + v[0, 2] + v[2, 0]) / 12
    s_b = (v[1, 2] + v[3, 2] + v[2, 1] + v[2, 3]) / 6 + (v[1, 3] + v[3, 1] + v[3, 3]) / 12
    assert out[1, 1].item() == pytest.approx(((144 * s_a + 12 * s_b) / 143).item(), abs=1e-12)
    assert out[2, 2].item() == pytest.approx(((144 * s_b + 12 * s_a) / 143).item(), abs=1e-12)


@pytest.mark.parametrize("shape", [(5, 5), (31, 37)])
def test_fixed_point_satisfies_stencil(shape):
    h, w = shape
    rng = np.random.default_rng(7)
    masks = torch.tensor(random_masks(rng, h, w))
    x = torch.tensor(rng.random((len(masks), 2, h, w)))
    default = road_impute(x, masks, noise_std=0)
    assert stencil_defect(default, masks[:, None]) < 1e-4
    tight = road_impute(x, masks, noise_std=0, tol=1e-13)
    assert stencil_defect(tight, masks[:, None]) < 1e-11


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_fixed_point_property(h, w, density, seed):
    g = torch.Generator().manual_seed(seed)
    removed = torch.rand(1, 1, h, w, generator=g) < density
    x = torch.rand(1, 2, h, w, generator=g, dtype=torch.float64)
    out = road_impute(x, removed, noise_std=0, fill=0.5, tol=1e-13)
    if removed.all():
        assert (out == 0.5).all()
        return
    assert torch.equal(out[~removed.expand_as(x)], x[~removed.expand_as(x)])
    assert stencil_defect(out, removed) < 1e-11
    # discrete maximum principle: a convex combination of the kept values
    for ch in range(2):
        vals = x[0, ch][~removed[0, 0]]
        assert out[0, ch].min() >= vals.min() - 1e-12 and out[0, ch].max() <= vals.max() + 1e-12


# --------------------------------------------------------------------------
# Batching, exactness, determinism, noise
# --------------------------------------------------------------------------


def test_batched_equals_one_by_one():
    rng = np.random.default_rng(11)
    masks = torch.tensor(random_masks(rng, 20, 26))
    x = torch.tensor(rng.random((len(masks), 3, 20, 26)))
    # The batch iterates until its slowest system converges, so the results agree to
    # the tolerance, and to rounding with a tight one.
    for tol, bound in ((1e-4, 1e-4), (1e-13, 1e-12)):
        batched = road_impute(x, masks, noise_std=0, tol=tol)
        single = torch.cat([road_impute(x[i : i + 1], masks[i : i + 1], noise_std=0, tol=tol)
                            for i in range(len(masks))])  # fmt: skip
        assert (batched - single).abs().max() < bound


def test_mask_forms_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 12, 9, generator=g)
    m = torch.rand(12, 9, generator=g) < 0.4
    ref = road_impute(x, m[None, None].expand(3, 1, 12, 9).clone(), noise_std=0)
    for form in (m, m[None], m[None].expand(3, 12, 9), m[None, None]):
        assert torch.equal(road_impute(x, form, noise_std=0), ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_kept_pixels_unchanged_exactly(dtype):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 3, 16, 16, generator=g) * 3).to(dtype)
    removed = torch.rand(4, 1, 16, 16, generator=g) < 0.5
    out = road_impute(x, removed, generator=torch.Generator().manual_seed(2))
    assert out.dtype == dtype and out.shape == x.shape
    kept = ~removed.expand_as(x)
    assert torch.equal(out[kept], x[kept])
    assert not torch.equal(out[~kept], x[~kept])


def test_noise_off_is_deterministic_and_draws_nothing():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 30, 30, generator=g)
    removed = torch.rand(2, 1, 30, 30, generator=g) < 0.7
    state = torch.get_rng_state()
    a = road_impute(x, removed, noise_std=0)
    b = road_impute(x, removed, noise_std=0.0)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


def test_noise_is_seed_stable():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 20, generator=g)
    removed = torch.rand(2, 1, 20, 20, generator=g) < 0.5
    a = road_impute(x, removed, generator=torch.Generator().manual_seed(5))
    b = road_impute(x, removed, generator=torch.Generator().manual_seed(5))
    c = road_impute(x, removed, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)
    d = road_impute(x, removed)
    torch.manual_seed(3)
    e = road_impute(x, removed)
    assert torch.equal(d, e)


def test_noise_only_on_removed_pixels_with_the_right_std():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 48, 48, generator=g, dtype=torch.float64)
    removed = torch.rand(4, 1, 48, 48, generator=g) < 0.5
    std = 0.01
    clean = road_impute(x, removed, noise_std=0)
    noisy = road_impute(x, removed, noise_std=std, generator=torch.Generator().manual_seed(9))
    diff = noisy - clean
    rm = removed.expand_as(x)
    assert (diff[~rm] == 0).all()
    # The documented contract: noise_std times one standard normal tensor of the
    # inputs' shape from the generator, used on the removed entries.
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    assert torch.allclose(diff[rm], std * z[rm], rtol=0, atol=1e-15)
    # Statistics on ~13800 samples: the sample std of n Gaussian draws has relative
    # standard error 1/sqrt(2n) ~ 0.6 %, so a 5 % bound is > 8 standard errors; the
    # mean's standard error is std/sqrt(n) ~ 0.0085 std, bounded by 5 standard errors.
    d = diff[rm]
    n = d.numel()
    assert n > 13000
    assert abs(d.std().item() / std - 1) < 0.05
    assert abs(d.mean().item()) < 5 * std / math.sqrt(n)


def test_cpu_generator_gives_the_same_noise_on_any_device():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 40, 40, generator=g)
    removed = torch.rand(3, 1, 40, 40, generator=g) < 0.6
    cpu = road_impute(x, removed, generator=torch.Generator().manual_seed(4))
    gpu = road_impute(x.cuda(), removed.cuda(), generator=torch.Generator().manual_seed(4))
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() < 1e-5


# --------------------------------------------------------------------------
# Degenerate cases and errors
# --------------------------------------------------------------------------


def test_fully_removed_and_nothing_removed():
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.random((3, 3, 16, 16)))
    removed = torch.zeros(3, 1, 16, 16, dtype=torch.bool)
    removed[0] = True  # everything removed: fill
    removed[2, :, 4:9, 3:12] = True  # an ordinary image in the same batch
    fill = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64).view(1, 3, 1, 1)
    out = road_impute(x, removed, noise_std=0, fill=fill)
    assert torch.equal(out[0], fill[0].expand(3, 16, 16))
    assert torch.equal(out[1], x[1])  # nothing removed: unchanged, bit for bit
    ref = spsolve_reference(x[2].numpy(), removed[2, 0].numpy())
    assert (out[2] - torch.tensor(ref)).abs().max() < 1e-4
    scalar = road_impute(x, removed, noise_std=0, fill=-1.0)
    assert (scalar[0] == -1.0).all() and torch.equal(scalar[1:], out[1:])
    noisy = road_impute(x, removed, fill=-1.0, generator=torch.Generator().manual_seed(0))
    assert (noisy[0] != -1.0).all() and (noisy[0] + 1.0).abs().max() < 0.1


def test_groups_agree(monkeypatch):
    # On the CPU images are solved in groups of a few (one workspace, sizes differing
    # by one); one image per group and all in one group give the same result.
    import captum_submodular.imputation._multigrid as imputation

    rng = np.random.default_rng(5)
    masks = torch.tensor(random_masks(rng, 19, 21))
    x = torch.tensor(rng.random((len(masks), 2, 19, 21)))
    results = []
    for values in (1, 2 * 2 * 22 * 24 + 1, 2**30):  # 1 image, 2 images, all per group
        monkeypatch.setattr(imputation, "_CPU_GROUP_VALUES", values)
        results.append(road_impute(x, masks, noise_std=0, tol=1e-13))
    assert all((r - results[0]).abs().max() < 1e-12 for r in results[1:])


def test_removed_pixels_may_hold_anything():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 24, generator=g)
    removed = torch.rand(2, 1, 24, 24, generator=g) < 0.5
    dirty = x.masked_fill(removed, float("nan"))
    dirty[0, 0, removed[0, 0]] = float("inf")
    clean = road_impute(x, removed, noise_std=0)
    assert torch.equal(road_impute(dirty, removed, noise_std=0), clean)


def test_warns_when_max_iter_is_too_small():
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    removed = torch.ones(1, 1, 64, 64, dtype=torch.bool)
    removed[..., 0, :] = False
    with pytest.warns(RuntimeWarning, match="max_iter=1"):
        road_impute(x, removed, noise_std=0, max_iter=1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(inputs=[[1.0]]), "inputs must be a tensor"),
        (dict(inputs=torch.zeros(3, 8, 8)), "inputs must be a tensor of shape N x C x H x W"),
        (dict(inputs=torch.zeros(2, 3, 8, 8, dtype=torch.long)), "inputs must be a floating"),
        (dict(inputs=torch.zeros(0, 3, 8, 8)), "inputs must have non-empty"),
        (dict(inputs=torch.full((2, 3, 8, 8), float("nan"))), "inputs must be finite"),
        (dict(removed=torch.zeros(2, 1, 8, 8)), "removed must be a bool tensor"),
        (dict(removed=np.zeros((8, 8), bool)), "removed must be a bool tensor"),
        (dict(removed=torch.zeros(2, 3, 8, 8, dtype=torch.bool)), "removed must have shape"),
        (dict(removed=torch.zeros(3, 1, 8, 8, dtype=torch.bool)), "removed must have shape"),
        (dict(removed=torch.zeros(8, 7, dtype=torch.bool)), "removed must have shape"),
        (dict(removed=torch.zeros(8, dtype=torch.bool)), "removed must have shape"),
        (dict(noise_std=-0.1), "noise_std"),
        (dict(noise_std=float("nan")), "noise_std"),
        (dict(noise_std=True), "noise_std"),
        (dict(generator=0), "generator"),
        (dict(fill=torch.zeros(4, 1, 1)), "fill"),
        (dict(fill="zero"), "fill"),
        (dict(tol=0), "tol"),
        (dict(tol=float("inf")), "tol"),
        (dict(max_iter=0), "max_iter"),
        (dict(max_iter=2.0), "max_iter"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(inputs=torch.zeros(2, 3, 8, 8), removed=torch.zeros(2, 1, 8, 8, dtype=torch.bool))
    args.update(kwargs)
    inputs, removed = args.pop("inputs"), args.pop("removed")
    with pytest.raises(ValueError, match=match):
        road_impute(inputs, removed, **args)
