r"""ROAD imputation: noisy linear imputation of removed pixels.

Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and Efficient
Evaluation Strategy for Attribution Methods" (ICML 2022, arXiv 2202.00449)
replace every removed pixel by the weighted mean of its 8 neighbours, where
removed neighbours are themselves unknowns, and then add Gaussian noise. This
module solves that linear system for a whole batch at once on the input's
device (see :func:`road_impute`).
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from .._inputs import broadcasts_to
from ._multigrid import _solve_groups

__all__ = ["road_impute", "ROAD_NOISE_STD"]

#: Standard deviation of the noise ROAD adds to imputed pixels (the paper's default).
ROAD_NOISE_STD = 0.01

# --------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------


def road_impute(
    inputs: Tensor,
    removed: Tensor,
    *,
    noise_std: float = ROAD_NOISE_STD,
    generator: Optional[torch.Generator] = None,
    fill: Union[float, Tensor] = 0.0,
    tol: float = 1e-4,
    max_iter: int = 50,
) -> Tensor:
    r"""Impute removed pixels by ROAD's noisy linear imputation, for a whole batch.

    Every removed pixel ``i`` takes the weighted mean of its in-bounds
    neighbours ``N(i)`` (the 8 around it, fewer at the image border), with
    weight ``w = 1/6`` for the 4 edge neighbours and ``w = 1/12`` for the 4
    diagonal ones, renormalised over the neighbours that exist; removed
    neighbours are unknowns too. Per image and channel this is the sparse
    linear system, for every removed ``i``::

        (sum_{j in N(i)} w_ij) x_i - sum_{j in N(i), removed} w_ij x_j
                                   = sum_{j in N(i), kept} w_ij x_j

    (ROAD, Rong et al., ICML 2022, "noisy linear imputation"). Its matrix is
    symmetric positive definite on every 8-connected component of removed
    pixels, since each such component has a kept neighbour unless it is the
    whole image (a proper subset of the connected pixel grid always has a
    neighbour outside it, and that neighbour is not removed, or it would be in
    the component). The solution is a convex combination of the kept values
    (discrete maximum principle). Then Gaussian noise of standard deviation
    ``noise_std`` is added to the removed pixels; kept pixels are returned
    unchanged, bit for bit.

    Parameters
    ----------
    inputs : Tensor, shape (N, C, H, W)
        Floating-point images, in the model's input space, on any device. The
        result has the same dtype and device (float16 / bfloat16 are solved in
        float32 and rounded back).
    removed : Tensor of bool
        ``True`` where a pixel is removed; all channels of a pixel go together.
        Shape ``(N, 1, H, W)``, ``(N, H, W)``, ``(H, W)``, or any of these with
        size-1 axes that broadcast to ``(N, 1, H, W)``.
    noise_std : float
        Standard deviation of the Gaussian noise added to every removed pixel
        (in the units of ``inputs``); ROAD uses 0.01 (the default). ``0``
        gives a deterministic result and draws no random numbers.
    generator : torch.Generator, optional
        Source of the noise. The noise is one standard-normal tensor of the
        inputs' shape, drawn on the generator's device and moved to the inputs'
        device (so a CPU generator gives the same noise for CPU and GPU
        inputs), scaled by ``noise_std`` and used on the removed entries only.
        ``None`` (the default) draws from torch's global RNG on the inputs'
        device, as ``torch.randn`` does: seed it with ``torch.manual_seed``, or
        pass ``torch.Generator().manual_seed(seed)`` for a result that does not
        depend on, or disturb, the global RNG state.
    fill : float or Tensor
        Value of the removed pixels of an image in which *every* pixel is
        removed: such an image has no kept pixel, its system is singular (any
        per-channel constant solves it) and nothing in the image determines the
        constant. A scalar, or a tensor broadcastable to ``inputs`` (for
        example the per-channel baseline, shape ``(1, C, 1, 1)``, or a baseline
        image). Noise is added as for any removed pixel.
    tol : float
        Stopping tolerance, relative to the largest deviation of the kept
        values from their mean, per image and channel (so adding a constant to
        the images changes nothing): iterate until the preconditioned residual,
        an estimate of the remaining error at every pixel, is at most ``tol``
        times that deviation, then apply it as a last correction. The largest
        error is then typically a third of ``tol`` times the deviation: with
        the default, errors of a few ``1e-5`` on images in ``[-1, 1]``, far
        below ROAD's noise. Smaller values cost about one iteration per factor
        10; float32 bottoms out between ``1e-6`` and ``1e-5`` of the deviation
        (use float64 inputs for more).
    max_iter : int
        Maximum number of conjugate-gradient iterations (one multigrid cycle
        each). A ``RuntimeWarning`` is issued if some system has not met
        ``tol`` then; typical masks need 2 to 5 iterations at the default
        ``tol``, whatever the image size.

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``inputs`` (a new tensor, detached).

    Raises
    ------
    ValueError
        Before any work, for inputs that are not a floating-point ``N x C x H x W``
        tensor with non-empty axes, a ``removed`` that is not a bool tensor
        broadcastable to ``(N, 1, H, W)``, a ``fill`` that does not broadcast to
        ``inputs``, a negative or non-finite ``noise_std``, a ``generator`` that
        is not a ``torch.Generator``, ``tol <= 0``, ``max_iter < 1``, or a
        non-finite kept pixel (removed pixels may hold anything, NaN included).

    Notes
    -----
    Solver: conjugate gradients on all ``N * C`` systems at once (one matrix per
    image serves all of its channels), preconditioned by one geometric multigrid
    cycle. Vectors live on the full pixel grid, zero on kept pixels; the
    matrix-vector product is a separable ``[1 2 1] x [1 2 1]`` stencil of shifted
    adds with masks (the system is scaled by 12 so that its stencil is integer and
    exact in floating point). Coarse grids halve each side (bilinear interpolation
    ``P``, restriction ``P^T``) down to at most 64 points; their operators are the
    Galerkin products ``P^T A P`` (one strided convolution per grid), which follow
    the shape of the removed set exactly; the coarsest grid is solved densely
    (Cholesky, regularised by ``1e-5`` of its largest diagonal entry because the
    Galerkin operator is only semi-definite when few pixels are removed). Each
    grid smooths with one Jacobi sweep before and one after its coarse correction
    (Jacobi damped by 0.85 on the pixel grid, l1-Jacobi damped by 1.5 on coarse
    grids: both convergent, so the cycle is symmetric positive definite, a valid
    preconditioner); the first coarse grid corrects twice. The unknowns are the
    deviations from the mean kept value of each image and channel, starting from
    zero, so that float32 keeps its digits where the solution is nearly constant
    over a large removed region. The iteration count hardly depends on the image
    size or on the size of the removed blobs.

    Images whose every pixel is removed take ``fill`` and images with nothing
    removed are copied; the others are solved together on GPUs, and on the CPU
    in groups of at most about ``2**20`` values per array (a few 224 x 224 RGB
    images; sizes differ by one at most), which keeps the working arrays in the
    cache; one workspace serves all groups.

    Cost: ``O(N C H W)`` per iteration: about 80 passes over a group's
    ``N x C x H x W`` array on the pixel grid (three stencil products, the grid
    transfers, the vector updates), and about as much time again on the coarse
    grids; the setup costs about one iteration. Memory: about 25 such arrays.

    Examples
    --------
    >>> x = torch.rand(2, 3, 32, 32)
    >>> removed = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    >>> removed[:, :, 8:24, 8:24] = True
    >>> y = road_impute(x, removed, generator=torch.Generator().manual_seed(0))
    >>> bool((y[~removed.expand_as(x)] == x[~removed.expand_as(x)]).all())
    True
    """
    x, mask, fill_t = _check_arguments(inputs, removed, noise_std, generator, fill, tol, max_iter)
    with torch.no_grad():
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        n, c = x.shape[:2]
        counts = mask.flatten(1).sum(dim=1)
        full = counts == mask[0].numel()  # every pixel removed: no kept pixel
        solve = ((counts > 0) & ~full).nonzero().flatten()
        noise = None
        if noise_std > 0:
            device = generator.device if generator is not None else x.device
            noise = torch.randn(x.shape, generator=generator, dtype=work, device=device)
            noise = noise.to(x.device).mul_(float(noise_std))
        out = torch.empty_like(x)
        copied = (counts == 0).nonzero().flatten()  # nothing removed: the input as it is
        if copied.numel() > 0:
            out.index_copy_(0, copied, x.index_select(0, copied))
        for idx, sol, kept, _ in _solve_groups(x, mask, solve, work, tol, max_iter):
            if noise is not None:
                sol.add_(noise[idx])
            # The kept values are an exact copy of the inputs' ones: torch.where keeps
            # them bit for bit.
            torch.where(mask[idx], sol, kept, out=kept)
            out.index_copy_(0, idx, kept.to(x.dtype))
        if bool(full.any()):
            idx = full.nonzero().flatten()
            values = fill_t.to(work).expand_as(x)[idx]
            if noise is not None:
                values = values + noise[idx]
            out[idx] = values.to(x.dtype)
        return out


# --------------------------------------------------------------------------
# Validation (no work before it)
# --------------------------------------------------------------------------


def _check_arguments(
    inputs: object,
    removed: object,
    noise_std: object,
    generator: object,
    fill: object,
    tol: object,
    max_iter: object,
) -> Tuple[Tensor, Tensor, Tensor]:
    if not isinstance(inputs, Tensor) or inputs.dim() != 4:
        raise ValueError(
            "inputs must be a tensor of shape N x C x H x W; got "
            + (f"shape {tuple(inputs.shape)}" if isinstance(inputs, Tensor)
               else type(inputs).__name__)
        )  # fmt: skip
    if not inputs.is_floating_point():
        raise ValueError(f"inputs must be a floating-point tensor; got dtype {inputs.dtype}")
    if inputs.numel() == 0:
        raise ValueError(f"inputs must have non-empty axes; got shape {tuple(inputs.shape)}")
    n, _, h, w = inputs.shape
    if not isinstance(removed, Tensor) or removed.dtype != torch.bool:
        raise ValueError(
            "removed must be a bool tensor (True = removed pixel); got "
            + (f"dtype {removed.dtype}" if isinstance(removed, Tensor) else type(removed).__name__)
        )
    target = (n, 1, h, w)
    shape = tuple(removed.shape)
    if removed.dim() == 2:
        mask = removed[None, None]
    elif removed.dim() == 3:
        mask = removed[:, None]
    elif removed.dim() == 4:
        mask = removed
    else:
        mask = None
    if mask is None or not broadcasts_to(tuple(mask.shape), target):
        raise ValueError(
            f"removed must have shape (N, 1, H, W) = {target}, (N, H, W) or (H, W), or "
            f"broadcast to it (all channels of a pixel are removed together); got {shape}"
        )
    if (
        isinstance(noise_std, bool)
        or not isinstance(noise_std, numbers.Real)
        or not math.isfinite(float(noise_std))
        or noise_std < 0
    ):
        raise ValueError(f"noise_std must be a finite number >= 0; got {noise_std!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if isinstance(fill, Tensor):
        if not broadcasts_to(tuple(fill.shape), tuple(inputs.shape)):
            raise ValueError(
                f"fill must be a number or a tensor broadcastable to inputs "
                f"{tuple(inputs.shape)}; got shape {tuple(fill.shape)}"
            )
        fill_t = fill.detach().to(inputs.device)
    elif isinstance(fill, numbers.Real) and not isinstance(fill, bool):
        fill_t = torch.tensor(float(fill), device=inputs.device)
    else:
        raise ValueError(f"fill must be a number or a tensor; got {type(fill).__name__}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(float(tol)) or tol <= 0:
        raise ValueError(f"tol must be a finite number > 0; got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1; got {max_iter!r}")
    x = inputs.detach()
    mask = mask.to(x.device).expand(target)
    # One reduction decides in the usual case; the exact test only if it is not finite
    # (which removed pixels holding NaN or inf also cause).
    if not bool(torch.isfinite(x.sum())) and not bool((torch.isfinite(x) | mask).all()):
        raise ValueError("inputs must be finite on the kept pixels (removed ones may hold anything)")
    return x, mask, fill_t
