"""The solver behind :func:`captum_submodular.imputation.road_impute`: batched conjugate
gradients preconditioned by one multigrid cycle per iteration (see that docstring)."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# The solver works with the system multiplied by 12, whose stencil is integer
# (2 for edge neighbours, 1 for diagonal ones, 12 D on the diagonal): the fine
# operator, and the Galerkin operators of the first coarse grids, are then exact
# in floating point, so rounding cannot add a spurious mass term (which the
# near-singular systems of large removed blobs would amplify).
_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))  # index 4 = centre
_WEIGHTS12 = tuple(0.0 if (dy, dx) == (0, 0) else (2.0 if dy == 0 or dx == 0 else 1.0)
                   for dy, dx in _OFFSETS)  # fmt: skip
_COARSEST_UNKNOWNS = 64  # coarsen until a grid has at most this many points (dense solve)
# Jacobi damping on the pixel grid: D^-1 A has its high frequencies in [2/3, 4/3] in
# the interior and eigenvalues up to about 1.5 near borders and masks, so any value
# below 4/3 converges; 2 / (2/3 + 1.5) = 0.92 is the classical choice, 0.8-0.9 measured
# best (34-36 iterations per 50-step curve against 36-37 at 1.0).
_FINE_OMEGA = 0.85
_COARSE_OMEGA = 1.5  # l1-Jacobi damping on the coarse grids; any value < 2 is convergent
# On the CPU, images are solved in groups of about this many values per field, so that
# the arrays one operation writes and the next reads stay in the cache (measured: 1.5x
# faster than one group on a 32 MB L3); on other devices all images in one group.
_CPU_GROUP_VALUES = 2**20


# --------------------------------------------------------------------------
# Grids: a field n x c x h x w is stored flat, each plane padded to
# (h + 3) x (w + 3) (one zero row/column before, two after), with a zero margin
# of one padded row + 1 around the whole buffer, so that the 8 neighbours of
# every entry are contiguous 1-D slices of the buffer at fixed offsets.
# --------------------------------------------------------------------------


class _Grid:
    def __init__(self, n: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> None:
        self.n, self.h, self.w = n, h, w
        self.row = w + 3
        self.plane = (h + 3) * (w + 3)
        self.margin = self.row + 1
        self.dtype, self.device = dtype, device

    def zeros(self, *shape: Any, dtype: Optional[torch.dtype] = None) -> Tensor:
        return torch.zeros(*shape, dtype=dtype or self.dtype, device=self.device)

    def buffer(self, c: int) -> Tensor:
        return self.zeros(self.n * c * self.plane + 2 * self.margin)

    def planes(self, buf: Tensor, c: int) -> Tensor:
        """(n, c, plane) view of the entries of a buffer (without the margin)."""
        return buf[self.margin : self.margin + self.n * c * self.plane].view(self.n, c, self.plane)

    def padded(self, planes: Tensor) -> Tensor:
        """(n, c, h + 3, w + 3) view of a (n, c, plane) tensor."""
        return planes.view(planes.shape[0], planes.shape[1], self.h + 3, self.w + 3)

    def inner(self, planes: Tensor) -> Tensor:
        """(n, c, h, w) view of the pixels of a (n, c, plane) or (n, c, h + 3, w + 3) tensor."""
        if planes.dim() == 3:
            planes = self.padded(planes)
        return planes[:, :, 1 : self.h + 1, 1 : self.w + 1]

    def shifted(self, buf: Tensor, c: int, k: int) -> Tensor:
        """(n, c, plane) view of the neighbour at offset ``_OFFSETS[k]`` of every entry."""
        dy, dx = _OFFSETS[k]
        start = self.margin + dy * self.row + dx
        return buf[start : start + self.n * c * self.plane].view(self.n, c, self.plane)

    def coarse(self) -> _Grid:
        return _Grid(self.n, self.h // 2 + 1, self.w // 2 + 1, self.dtype, self.device)


def _restrict(fine: Tensor, out: Tensor, rows: Optional[Tensor] = None) -> None:
    """``out = P^T fine``: fine (n, c, h + 3, w + 3) padded with zeros -> out (n, c, hc, wc).

    Coarse point ``I`` sits on fine pixel ``2I``; weights 1 on it, 1/2 on its edge
    neighbours, 1/4 on its diagonal ones. ``rows``: optional workspace (n, c, hc, w + 3).
    """
    hc, wc = out.shape[-2:]
    if rows is None:
        rows = fine.new_empty(*fine.shape[:2], hc, fine.shape[-1])
    torch.add(fine[:, :, 1 : 2 * hc : 2], fine[:, :, 0 : 2 * hc - 1 : 2], alpha=0.5, out=rows)
    rows.add_(fine[:, :, 2 : 2 * hc + 1 : 2], alpha=0.5)
    torch.add(rows[..., 1 : 2 * wc : 2], rows[..., 0 : 2 * wc - 1 : 2], alpha=0.5, out=out)
    out.add_(rows[..., 2 : 2 * wc + 1 : 2], alpha=0.5)


def _prolong_add(
    coarse: Tensor,
    fine: Tensor,
    mask: Optional[Tensor] = None,
    cols: Optional[Tensor] = None,
    odd: Optional[Tensor] = None,
) -> None:
    """``fine += mask * (P coarse)``: bilinear, coarse (n, c, hc, wc) -> fine (n, c, h, w).

    Columns are interpolated on the coarse rows first (the strided writes touch half
    the fine size), then rows, straight into ``fine``. ``cols`` (n, c, hc, w) and
    ``odd`` (n, c, h // 2, w): optional workspaces.
    """
    h, w = fine.shape[-2:]
    he, ho, we, wo = (h + 1) // 2, h // 2, (w + 1) // 2, w // 2
    if cols is None or odd is None:
        cols = coarse.new_empty(*coarse.shape[:3], w)
        odd = coarse.new_empty(*coarse.shape[:2], ho, w)
    cols[..., 0::2] = coarse[..., :we]
    torch.add(coarse[..., :wo], coarse[..., 1 : wo + 1], out=cols[..., 1::2])
    cols[..., 1::2].mul_(0.5)
    torch.add(cols[:, :, :ho], cols[:, :, 1 : ho + 1], out=odd)
    if mask is None:
        fine[:, :, 0::2].add_(cols[:, :, :he])
        fine[:, :, 1::2].add_(odd, alpha=0.5)
    else:
        fine[:, :, 0::2].addcmul_(cols[:, :, :he], mask[:, :, 0::2])
        fine[:, :, 1::2].addcmul_(odd, mask[:, :, 1::2], value=0.5)


def _galerkin_weight(dtype: torch.dtype, device: torch.device) -> Tensor:
    """Weight of the strided convolution from the 9 stencil maps of ``A`` to 5 of ``P^T A P``.

    ``(P^T A P)(I, I + o) = sum_{a, d} P_a S_d(2I + a) P_{a + d - 2o}`` with
    ``P_v = 2^-|v_y| 2^-|v_x|`` for ``|v| <= 1`` (else 0) and ``S_d(p) = A(p, p + d)``.
    Only the centre and the 4 offsets after it (``_OFFSETS[4:]``) are computed; the
    other 4 follow from symmetry, ``S_o(I) = S_-o(I + o)``.
    """

    def p1(v: int) -> float:
        return 1.0 if v == 0 else (0.5 if abs(v) == 1 else 0.0)

    wt = [[[[p1(ay) * p1(ax) * p1(ay + dy - 2 * oy) * p1(ax + dx - 2 * ox)
             for ax in (-1, 0, 1)] for ay in (-1, 0, 1)]
           for dy, dx in _OFFSETS] for oy, ox in _OFFSETS[4:]]  # fmt: skip
    return torch.tensor(wt, dtype=dtype, device=device)


def _galerkin(maps: Tensor, weight: Tensor) -> Tensor:
    """5 stencil maps of ``P^T A P`` from the 9 of ``A`` (padded (n, 9, h + 3, w + 3)).

    On CUDA in float64: cuDNN may run float32 convolutions in TF32 (the default on
    recent GPUs), which would round the Galerkin products (exact dyadic numbers on
    the first grids) to 10 bits.
    """
    if maps.device.type != "cuda":
        return F.conv2d(maps, weight, stride=2)
    return F.conv2d(maps.double(), weight.double(), stride=2).to(maps.dtype)


def _coarsest_inverse(maps: Tensor) -> Tensor:
    """Inverse (n, K, K) of the coarsest operator (stencil maps (n, 9, h, w)), regularised.

    The Galerkin operator is only semi-definite where coarse basis functions are
    linearly dependent on the removed pixels (for example when few pixels are
    removed); its null vectors are prolongated to zero. Adding ``1e-5`` times the
    largest diagonal entry makes it definite (an identity for an image with nothing
    removed) and changes the coarse correction by about that relative amount.
    """
    n, _, h, w = maps.shape
    k = h * w
    idx = torch.arange(k, device=maps.device)
    iy, ix = idx // w, idx % w
    a = torch.zeros(n, k, k, dtype=torch.float64, device=maps.device)
    flat = maps.reshape(n, 9, k).double()
    for j, (dy, dx) in enumerate(_OFFSETS):
        jy, jx = iy + dy, ix + dx
        ok = (jy >= 0) & (jy < h) & (jx >= 0) & (jx < w)
        a[:, idx[ok], (jy * w + jx)[ok]] = flat[:, j, ok]
    top = a.diagonal(dim1=1, dim2=2).amax(dim=1)
    shift = torch.where(top > 0, 1e-5 * top, 1.0)
    a.diagonal(dim1=1, dim2=2).add_(shift[:, None])
    return torch.cholesky_inverse(torch.linalg.cholesky(a)).to(maps.dtype)


def _dot(a: Tensor, b: Tensor, prod: Tensor) -> Tensor:
    """Dot products over the last axis, keepdim, through a preallocated product array."""
    return torch.mul(a, b, out=prod).sum(dim=-1, keepdim=True)


def _max_abs(z: Tensor) -> Tensor:
    """max |z| over the last axis, keepdim (two reductions: much faster than the inf-norm)."""
    return torch.maximum(z.amax(dim=-1, keepdim=True), -z.amin(dim=-1, keepdim=True))


# --------------------------------------------------------------------------
# The multigrid hierarchy and the preconditioned conjugate gradient
# --------------------------------------------------------------------------


class _Multigrid:
    """Operators and workspaces for ``A`` (12 x the ROAD system) of up to ``n`` images.

    Allocated once per call and set up again for every group of images
    (:meth:`setup`, which may use fewer images), so that the large arrays are not
    allocated again.
    """

    # Per-image arrays: views of the first images of ``_full``, set by ``_use``.
    mask: Tensor
    diag4: Tensor
    stencils: List[Tensor]
    dinv: List[Tensor]
    res: List[Tensor]
    rhs: List[Tensor]
    rows: List[Tensor]
    cols: List[Tensor]
    odd: List[Tensor]
    r: Tensor
    q: Tensor
    prod: Tensor
    images: Tensor

    def __init__(self, n: int, c: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> None:
        self.c = c
        fine = _Grid(n, h, w, dtype, device)
        self.grids: List[_Grid] = [fine]
        while self.grids[-1].h * self.grids[-1].w > _COARSEST_UNKNOWNS:
            coarse = self.grids[-1].coarse()
            if (coarse.h, coarse.w) == (self.grids[-1].h, self.grids[-1].w):
                break
            self.grids.append(coarse)
        # 12 D (sum of the in-bounds weights times 12) is separable: with
        # r_i = sum of [1 2 1] over the rows i-1..i+1 that exist (c_j likewise),
        # 12 D_ij = r_i c_j - 4.
        ar, ac = torch.arange(h, device=device), torch.arange(w, device=device)
        r = 4.0 - (ar == 0).to(dtype) - (ar == h - 1).to(dtype)
        col = 4.0 - (ac == 0).to(dtype) - (ac == w - 1).to(dtype)
        d12 = fine.zeros(1, 1, h + 3, w + 3)
        d12[0, 0, 1 : h + 1, 1 : w + 1] = r[:, None] * col[None, :] - 4
        self.d12 = d12
        self.d12_inv = torch.where(d12 > 0, _FINE_OMEGA / d12.clamp(min=1), 0.0).view(1, 1, -1)
        self.coarsest_inverse = fine.zeros(0)
        self._zero = fine.zeros(())
        self.weight = _galerkin_weight(dtype, device)
        pairs = list(zip(self.grids, self.grids[1:]))
        self._full: Dict[str, Any] = dict(
            # Fine operator: A x = m * ((12 D + 4) x - S121(x)) for x zero on kept pixels.
            mask=fine.zeros(n, 1, fine.plane),
            diag4=fine.zeros(n, 1, fine.plane),
            # Stencil maps S_d(p) = A(p, p + d) of every grid (the fine ones feed the
            # Galerkin products) and the Jacobi weights.
            stencils=[g.zeros(n, 9, g.h + 3, g.w + 3) for g in self.grids],
            dinv=[g.zeros(n, 1, g.plane) for g in self.grids],
            # Cycle vectors: per grid a residual, per coarse grid a right-hand side, and
            # the workspaces of the transfers; conjugate-gradient vectors.
            res=[g.zeros(n, c, g.plane) for g in self.grids],
            rhs=[fine.zeros(n, 0)] + [g.zeros(n, c, g.plane) for g in self.grids[1:]],
            rows=[g.zeros(n, c, gc.h, g.w + 3) for g, gc in pairs],
            cols=[g.zeros(n, c, gc.h, g.w) for g, gc in pairs],
            odd=[g.zeros(n, c, g.h // 2, g.w) for g, gc in pairs],
            r=fine.zeros(n, c, fine.plane),
            q=fine.zeros(n, c, fine.plane),
            prod=fine.zeros(n, c, fine.plane),  # for the dot products
            # The group's images (then their kept values).
            images=fine.zeros(n, c, h, w),
        )
        # Flat buffers with margins (views of the first images through the grids).
        self.e = [g.buffer(c) for g in self.grids]
        self.x = fine.buffer(c)
        self.p = fine.buffer(c)
        self.h_ws = fine.zeros(n * c * fine.plane + 2 * fine.row + 1)
        self.s_ws = fine.zeros(n * c * fine.plane + 2 * fine.row)
        self._use(n)

    def _use(self, n: int) -> None:
        """Point the per-image arrays at the first ``n`` images."""
        for g in self.grids:
            g.n = n
        for name, value in self._full.items():
            setattr(self, name, [t[:n] for t in value] if isinstance(value, list) else value[:n])
        self.mask_inner = self.grids[0].inner(self.mask)

    def setup(self, removed: Tensor) -> None:
        """Operators of the images' removed sets, removed (n, 1, h, w) bool."""
        self._use(removed.shape[0])
        fine = self.grids[0]
        h, w = fine.h, fine.w
        m = fine.padded(self.mask)
        self.mask_inner.copy_(removed)
        torch.mul(self.mask, self.d12.view(1, 1, -1) + 4, out=self.diag4)
        torch.mul(self.mask, self.d12_inv, out=self.dinv[0])
        maps = fine.inner(self.stencils[0])
        mi = self.mask_inner
        for k, (dy, dx) in enumerate(_OFFSETS):
            if k == 4:
                torch.mul(mi, fine.inner(self.d12), out=maps[:, k : k + 1])
            else:
                shifted = m[:, :, 1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx]
                torch.addcmul(self._zero, mi, shifted, value=-_WEIGHTS12[k], out=maps[:, k : k + 1])
        for level in range(1, len(self.grids)):
            g = self.grids[level]
            st = self.stencils[level]
            st[:, 4:, 1 : g.h + 1, 1 : g.w + 1] = _galerkin(self.stencils[level - 1], self.weight)
            for k in range(4):
                dy, dx = _OFFSETS[k]
                st[:, k, 1 : g.h + 1, 1 : g.w + 1] = st[:, 8 - k, 1 + dy : g.h + 1 + dy, 1 + dx : g.w + 1 + dx]
            l1 = st.abs().sum(dim=1, keepdim=True).view(g.n, 1, -1)
            self.dinv[level].copy_(torch.where(l1 > 0, _COARSE_OMEGA / l1.clamp(min=1e-30), 0.0))
        last = self.grids[-1]
        self.coarsest_inverse = _coarsest_inverse(last.inner(self.stencils[-1]))

    # -- operators -------------------------------------------------------------

    def apply(self, level: int, buf: Tensor, out: Tensor, rhs: Optional[Tensor] = None) -> Tensor:
        """``out = A x`` (or ``rhs - A x``) on a grid; ``buf`` holds x with its margin."""
        grid, c = self.grids[level], self.c
        if level == 0:
            _fine_apply(grid, c, buf, self.diag4, self.mask, self.h_ws, self.s_ws, out, rhs)
            return out
        s = self.stencils[level].view(grid.n, 9, -1)
        if rhs is None:
            torch.mul(s[:, 0:1], grid.shifted(buf, c, 0), out=out)
            for k in range(1, 9):
                out.addcmul_(s[:, k : k + 1], grid.shifted(buf, c, k))
        else:
            torch.addcmul(rhs, s[:, 0:1], grid.shifted(buf, c, 0), value=-1, out=out)
            for k in range(1, 9):
                out.addcmul_(s[:, k : k + 1], grid.shifted(buf, c, k), value=-1)
        return out

    def vcycle(self, level: int, r: Tensor) -> Tensor:
        """Buffer holding ``M^-1 r``: one symmetric cycle from a zero guess.

        Jacobi, coarse correction, Jacobi on every grid; the first coarse grid
        corrects twice in a row (a W-cycle at the top: the first coarse grid still
        carries the shape of the removed set, and solving it better saves fine
        iterations).
        """
        # Measured over a 50-step 224^2 curve at tol 1e-5: 41-43 iterations in all
        # against 41-57 with a single correction.
        grid, c = self.grids[level], self.c
        buf = self.e[level]
        e = grid.planes(buf, c)
        if level == len(self.grids) - 1:
            k = grid.h * grid.w
            sol = torch.matmul(grid.inner(r).reshape(grid.n, c, k), self.coarsest_inverse)
            grid.inner(e).copy_(sol.view(grid.n, c, grid.h, grid.w))
            return buf
        res, dinv = self.res[level], self.dinv[level]
        torch.mul(dinv, r, out=e)
        coarse = self.grids[level + 1]
        rc = self.rhs[level + 1]
        mask = self.mask_inner if level == 0 else None
        for _ in range(2 if level == 1 else 1):  # the first coarse grid corrects twice
            self.apply(level, buf, res, rhs=r)
            _restrict(grid.padded(res), coarse.inner(rc), self.rows[level])
            ec = coarse.planes(self.vcycle(level + 1, rc), c)
            _prolong_add(coarse.inner(ec), grid.inner(e), mask, self.cols[level], self.odd[level])
        self.apply(level, buf, res, rhs=r)
        e.addcmul_(dinv, res)
        return buf


def _fine_apply(
    grid: _Grid,
    c: int,
    buf: Tensor,
    diag4: Tensor,
    mask: Tensor,
    h_ws: Tensor,
    s_ws: Tensor,
    out: Tensor,
    rhs: Optional[Tensor],
) -> None:
    """``out = m * ((12 D + 4) x - S121(x))`` (or ``rhs`` minus it), S121 = [1 2 1] x [1 2 1].

    ``[1 2 1] = [1 1] * [1 1]``: four sums of an array with itself shifted by one
    entry or one row (each reads one stream), through the two workspaces.
    """
    t = grid.n * c * grid.plane
    g, r = grid.margin, grid.row
    a, b = h_ws[: t + 2 * r + 1], s_ws[: t + 2 * r]
    torch.add(buf[g - r - 1 : g + t + r], buf[g - r : g + t + r + 1], out=a)  # x_j + x_j+1
    torch.add(a[:-1], a[1:], out=b)  # rows filtered by [1 2 1], from entry -r on
    u = a[: t + r]
    torch.add(b[: t + r], b[r:], out=u)  # + the row below
    s = b[:t]
    torch.add(u[:t], u[r:], out=s)  # [1 2 1] over rows too
    x3 = grid.planes(buf, c)
    s3 = s.view(grid.n, c, grid.plane)
    if rhs is None:
        torch.mul(diag4, x3, out=out)
        out.addcmul_(mask, s3, value=-1)
    else:
        torch.addcmul(rhs, diag4, x3, value=-1, out=out)
        out.addcmul_(mask, s3)


def _solve_groups(
    x: Tensor, mask: Tensor, solve: Tensor, work: torch.dtype, tol: float, max_iter: int
) -> Iterator[Tuple[Tensor, Tensor, Tensor, int]]:
    """Yield (image indices, solution, kept values, iterations) for ``solve``, by groups.

    The solution is exact on the removed pixels and the kept values on the kept ones
    (zero elsewhere); both are views of the workspace, valid until the next group.

    On the CPU, groups of at most about ``_CPU_GROUP_VALUES`` values per field, of
    sizes that differ by one at most, served by one workspace; on other devices one
    group.
    """
    total = solve.numel()
    if total == 0:
        return
    n, c, h, w = x.shape
    groups = 1
    if x.device.type == "cpu":
        groups = -(-total // max(1, _CPU_GROUP_VALUES // (c * (h + 3) * (w + 3))))
    mg = _Multigrid(-(-total // groups), c, h, w, work, x.device)
    bounds = [total * g // groups for g in range(groups + 1)]  # sizes differ by one at most
    for start, stop in zip(bounds, bounds[1:]):
        idx = solve[start:stop]
        images = mg._full["images"][: idx.numel()]
        if x.dtype == work:
            torch.index_select(x, 0, idx, out=images)
        else:
            images.copy_(x[idx])
        removed = mask[idx]
        sol, iterations = _solve(mg, images, removed, tol, max_iter)
        yield idx, sol, images, iterations


def _solve(mg: _Multigrid, x: Tensor, removed: Tensor, tol: float, max_iter: int) -> Tuple[Tensor, int]:
    """Solve the ROAD systems of n images (x (n, c, h, w), removed (n, 1, h, w) bool).

    ``x`` is overwritten with its kept values (zero on removed pixels). Returns the
    solution on the removed pixels, (n, c, h, w) (a view of the workspace; other
    entries unspecified), and the number of iterations.
    """
    n, c, h, w = x.shape
    mg.setup(removed)
    fine = mg.grids[0]
    kept = x.masked_fill_(removed, 0.0)  # in place; removed pixels may hold anything
    # Solve for the deviation from the mean kept value of each image and channel
    # (constants are reproduced exactly, A 1 = b(1)), from a zero guess: the right-hand
    # side b = m * S121(kept deviations) is a plain weighted sum, so float32 keeps its
    # digits even when the solution is nearly constant over a huge removed region.
    count = h * w - removed.sum(dim=(2, 3), keepdim=True)
    shift = kept.sum(dim=(2, 3), keepdim=True) / count.clamp(min=1)
    r = mg.r
    xs = fine.planes(mg.x, c)
    xs.zero_()
    deviation = fine.inner(xs)
    torch.sub(kept, shift, out=deviation)
    deviation.masked_fill_(removed, 0.0)
    largest = torch.maximum(deviation.amax(dim=(2, 3)), -deviation.amin(dim=(2, 3)))
    threshold = tol * largest.unsqueeze(-1)
    mg.apply(0, mg.x, r)  # = -b: the stencil's diagonal part vanishes off the kept pixels
    r.neg_()
    xs.zero_()
    p = fine.planes(mg.p, c)
    q = mg.q
    z = fine.planes(mg.vcycle(0, r), c)
    err = _max_abs(z)
    iterations = 0
    if not bool((err <= threshold).all()):
        p.copy_(z)
        rz = _dot(r, z, mg.prod)
        tiny = torch.finfo(x.dtype).tiny
        for iterations in range(1, max_iter + 1):  # noqa: B007 - returned: the count reached
            mg.apply(0, mg.p, q)
            pq = _dot(p, q, mg.prod)
            alpha = torch.where(pq > 0, rz / pq.clamp(min=tiny), 0.0)
            xs.addcmul_(alpha, p)
            r.addcmul_(alpha, q, value=-1)
            z = fine.planes(mg.vcycle(0, r), c)
            err = _max_abs(z)
            if bool((err <= threshold).all()):
                break
            rz_new = _dot(r, z, mg.prod)
            beta = torch.where(rz > 0, rz_new / rz.clamp(min=tiny), 0.0)
            rz = rz_new
            torch.addcmul(z, beta, p, out=p)
        else:
            worst = float((err / threshold.clamp(min=tiny)).max()) * tol
            failed = int((err > threshold).sum())
            warnings.warn(
                f"road_impute: {failed} of {n * c} systems did not reach tol={tol} in "
                f"max_iter={max_iter} iterations (largest error estimate {worst:.2e} times "
                "the largest deviation of the kept values from their mean)",
                RuntimeWarning,
                stacklevel=3,
            )
    xs.add_(z)
    return fine.inner(xs).add_(shift), iterations
