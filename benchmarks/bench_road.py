"""ROAD imputation: our batched solver against a per-step scipy ``spsolve`` loop.

One deletion curve = the 51 masks of a 50-step curve on a 224 x 224 RGB image: the
top ``floor(k E / 50 + 1/2)`` pixels (k = 0..50, E = 224^2) of an attribution are
removed (stable sort of -attribution, as in ``captum_submodular.metrics``). For each
image, both solvers impute the same 51 masks, side by side in one run:

* ours: one ``road_impute`` call on the 51 x 3 x 224 x 224 batch (noise on, seeded);
* reference: as the ROAD reference implementation does, one sparse system per removal
  set on the CPU, all channels as right-hand sides of one ``scipy.sparse.linalg.spsolve``
  (SuperLU) call; the system is built with vectorised NumPy, which is faster than the
  reference code's ``lil_matrix`` assembly (``--lil`` times that one as well), so the
  ratio is conservative.

Steps with nothing removed need no solve in either; the fully removed last step has no
unique solution (the reference code would fail on it), so the reference skips it and
ours fills it.  Times per curve, best of ``--repeats``: wall seconds and CPU seconds of
the process (on a shared machine the CPU time of a single-threaded run is the steadier
figure).  "max abs diff" is the largest difference to spsolve over all pixels and steps
(ours with noise off, default tolerance).

Images: the ImageNet samples bundled with foolbox, in EfficientNet-Lite0's input space
(resize 256, centre crop 224, ``(x - 127) / 128``, values in [-1, 1]).  Attributions:
``random`` (i.i.d. uniform, scattered masks) and ``smooth`` (Gaussian-blurred noise,
sigma 16 px: large blobs, like a real saliency map).

    OMP_NUM_THREADS=1 python benchmarks/bench_road.py --images 5 --threads 1
    python benchmarks/bench_road.py --images 5 --device cuda      # GPU column
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Dict, List

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from torchvision import transforms as T
from torchvision.transforms.functional import gaussian_blur

from captum_submodular.data import imagenet_samples
from captum_submodular.imputation import _solve_groups, road_impute

STEPS = 50
_NEIGHBOURS = [(dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]  # fmt: skip


def curve_masks(attribution: torch.Tensor, steps: int = STEPS) -> torch.Tensor:
    """(H, W) attribution -> (steps + 1, H, W) bool: top floor(k E / steps + 1/2) removed."""
    h, w = attribution.shape
    e = h * w
    order = torch.sort(-attribution.flatten(), stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(e)
    counts = (2 * torch.arange(steps + 1) * e + steps) // (2 * steps)
    return rank.view(1, h, w) < counts.view(-1, 1, 1)


def _stencil(img: np.ndarray, removed: np.ndarray):
    """What both reference solvers share: ``(c, flat image, removed pixel indices, neighbours)``.

    ``neighbours`` yields, per offset of the 8-neighbour stencil, ``(weight, eq, q, unknown,
    var)``: the equations (rows) whose neighbour is inside the image, that neighbour's flat
    index, whether it is removed too, and the unknowns' numbering.
    """
    c, h, w = img.shape
    rem = removed.ravel()
    idx = np.flatnonzero(rem)
    var = np.full(h * w, -1, dtype=np.int64)
    var[idx] = np.arange(idx.size)
    py, px = np.divmod(idx, w)

    def neighbours():
        for dy, dx, wt in _NEIGHBOURS:
            qy, qx = py + dy, px + dx
            ok = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
            q = qy[ok] * w + qx[ok]
            yield wt, np.flatnonzero(ok), q, rem[q], var

    return c, img.reshape(c, -1), idx, neighbours()


def _filled(img: np.ndarray, idx: np.ndarray, sol: np.ndarray) -> np.ndarray:
    """``img`` with the solution (one row per removed pixel, one column per channel) put in."""
    c = img.shape[0]
    out = img.reshape(c, -1).copy()
    out[:, idx] = np.asarray(sol).reshape(idx.size, c).T
    return out.reshape(img.shape)


def spsolve_impute(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """One image (C, H, W) float64 and one removal set (H, W): the ROAD system, spsolve."""
    c, flat, idx, neighbours = _stencil(img, removed)
    diag = np.zeros(idx.size)
    rhs = np.zeros((idx.size, c))
    rows, cols, vals = [], [], []
    for wt, eq, q, unknown, var in neighbours:
        diag[eq] += wt
        rows.append(eq[unknown])
        cols.append(var[q[unknown]])
        vals.append(np.full(int(unknown.sum()), -wt))
        rhs[eq[~unknown]] += wt * flat[:, q[~unknown]].T  # eq: one row per equation
    rows.append(np.arange(idx.size))
    cols.append(np.arange(idx.size))
    vals.append(diag)
    a = scipy.sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(idx.size, idx.size),
    )
    return _filled(img, idx, scipy.sparse.linalg.spsolve(a, rhs))


def spsolve_impute_lil(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The same solve with the matrix assembled as the ROAD reference code does it.

    One ``lil_matrix`` filled by fancy-index assignment per neighbour offset and the
    diagonal set last, then ``spsolve(csc_matrix(A), b)``.
    """
    c, flat, idx, neighbours = _stencil(img, removed)
    a = scipy.sparse.lil_matrix((idx.size, idx.size))
    rhs = np.zeros((idx.size, c))
    diag = np.zeros(idx.size)
    for wt, eq, q, unknown, var in neighbours:
        diag[eq] += wt
        a[eq[unknown], var[q[unknown]]] = -wt
        rhs[eq[~unknown]] += wt * flat[:, q[~unknown]].T
    a[np.arange(idx.size), np.arange(idx.size)] = diag
    return _filled(img, idx, scipy.sparse.linalg.spsolve(scipy.sparse.csc_matrix(a), rhs))


def reference_curve(img: np.ndarray, masks: np.ndarray, lil: bool = False) -> Dict[int, np.ndarray]:
    solve = spsolve_impute_lil if lil else spsolve_impute
    return {k: solve(img, masks[k]) for k in range(len(masks)) if 0 < masks[k].sum() < masks[k].size}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attributions", nargs="+", default=["random", "smooth"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--lil", action="store_true", help="also time the reference code's lil_matrix assembly (one run)"
    )
    parser.add_argument(
        "--skip-reference", action="store_true", help="time ours only (e.g. on a GPU machine without time to spare)"
    )
    parser.add_argument("--out", default="benchmarks/results/road_benchmark.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    prep = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
                      T.CenterCrop(224), T.PILToTensor()])  # fmt: skip
    samples = imagenet_samples(args.images)
    rows: List[Dict[str, object]] = []
    for kind in args.attributions:
        for i, sample in enumerate(samples):
            x = (prep(sample.image).double() - 127.0) / 128.0  # (3, 224, 224)
            g = torch.Generator().manual_seed(1000 + i)
            att = torch.rand(224, 224, generator=g, dtype=torch.float64)
            if kind == "smooth":
                att = gaussian_blur(att[None, None], [97, 97], [16.0, 16.0])[0, 0]
            masks = curve_masks(att)
            batch = x.float().expand(len(masks), -1, -1, -1).contiguous().to(device)
            removed = masks[:, None].to(device)
            road_impute(batch[:2], removed[:2])  # warm-up (allocator, kernels)
            ours, ours_cpu = [], []
            for _ in range(args.repeats):
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                road_impute(batch, removed, generator=torch.Generator(device).manual_seed(0))
                _sync(device)
                ours.append(time.perf_counter() - t0)
                ours_cpu.append(time.process_time() - c0)
            clean = road_impute(batch, removed, noise_std=0).double().cpu()
            solvable = (masks.flatten(1).any(1) & ~masks.flatten(1).all(1)).nonzero().flatten()
            groups = _solve_groups(batch, removed, solvable.to(device), torch.float32, 1e-4, 50)
            iterations = [it for _, _, _, it in groups]  # per group of images solved together
            row: Dict[str, object] = dict(
                attribution=kind,
                image=sample.name,
                ours_s=min(ours),
                ours_cpu_s=min(ours_cpu),
                iterations=iterations,
            )
            if not args.skip_reference:
                ref_t, ref_cpu = [], []
                img, mk = x.numpy(), masks.numpy()
                for _ in range(args.repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    ref = reference_curve(img, mk)
                    ref_t.append(time.perf_counter() - t0)
                    ref_cpu.append(time.process_time() - c0)
                diff = max(float(np.abs(clean[k].numpy() - v).max()) for k, v in ref.items())
                if args.lil:
                    c0 = time.process_time()
                    reference_curve(img, mk, lil=True)
                    row.update(spsolve_lil_cpu_s=time.process_time() - c0)
                row.update(
                    spsolve_s=min(ref_t),
                    spsolve_cpu_s=min(ref_cpu),
                    ratio=min(ref_t) / min(ours),
                    ratio_cpu=min(ref_cpu) / min(ours_cpu),
                    max_abs_diff=diff,
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = dict(
        torch=torch.__version__, threads=torch.get_num_threads(), device=str(device),
        cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"), repeats=args.repeats,
    )  # fmt: skip
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    with open(args.out, "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    print(json.dumps(meta))
    print()
    print(
        "| attribution | image | spsolve s/curve (CPU s) | ours s/curve (CPU s) | ratio (CPU) "
        "| spsolve, reference assembly (CPU s) | CG iterations per group | max abs diff |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    nan = float("nan")
    for r in rows:
        print(
            f"| {r['attribution']} | {r['image']} | {r.get('spsolve_s', nan):.2f} "
            f"({r.get('spsolve_cpu_s', nan):.2f}) | {r['ours_s']:.3f} ({r['ours_cpu_s']:.3f}) | "
            f"{r.get('ratio', nan):.1f}x ({r.get('ratio_cpu', nan):.1f}x) | "
            f"{r.get('spsolve_lil_cpu_s', nan):.2f} | "
            f"{'/'.join(map(str, r['iterations']))} | {r.get('max_abs_diff', nan):.1e} |"
        )


if __name__ == "__main__":
    main()
