"""DiFull, GridPG and AggAtt on the bundled real model: every method of the grid line-up side by side.

Setting (``captum_submodular.grids``, ``captum_submodular.compare.compare_grids``):

* images: the 20 bundled ImageNet samples and scikit-image's 4 photos, preprocessed for
  EfficientNet-Lite0 (224²) and resized to ``--cell-size`` (antialiased bilinear); the
  mosaics take ``n² = 4`` images the model classifies with softmax ≥ ``--min-confidence``
  into 4 different classes (``select_grid_images``), ``--grids`` mosaics;
* explained cells: ``--explain rotate`` (cell ``g mod 4`` of mosaic ``g``, so every cell
  position is explained equally often) or ``all``;
* regions of the region methods: ``--tiles-per-cell``² tiles per cell, aligned with the
  cells; Occlusion: a window of one tile sliding by half a tile;
* KernelShap / Lime: ``--samples`` samples; IntegratedGradients: ``--ig-steps`` steps;
  Grad-CAM: the last conv layer (``conv_head``);
* ours: ``SubmodularAttribution`` with every registered search, default weights and map.

Each (setting, method) is one part file under ``--parts`` (skipped when it exists, so a
run can be resumed or split); the merge writes ``<out>.md`` (tables), ``<out>.json`` (every
number per explained cell) and ``<out>_aggatt_<setting>.png``::

    nice -n 10 python benchmarks/grid_localisation.py            # all parts, then the merge
    python benchmarks/grid_localisation.py --merge-only          # tables and figures from the parts

``--sample-sweep`` instead measures why KernelShap misses 1.0 on DiFull: on a tiny random
conv net (2×2 mosaics of 8² random cells, 2×2 tiles per cell, 8 targets), the share of
``|attribution|`` inside the target's cell against the number of samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from captum_submodular.compare import GRID_SETTINGS, GridComparison, compare_grids, grid_lineup, pick_grid_cells
from captum_submodular.data import imagenet_samples, skimage_samples
from captum_submodular.models import load_model


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", default=",".join(GRID_SETTINGS))
    p.add_argument("--methods", default=",".join(grid_lineup()))
    p.add_argument("--grids", type=int, default=8)
    p.add_argument("--cell-size", type=int, default=64)
    p.add_argument("--tiles-per-cell", type=int, default=2)
    p.add_argument("--explain", choices=("rotate", "all"), default="rotate")
    p.add_argument("--samples", type=int, default=64, help="KernelShap and Lime samples")
    p.add_argument("--ig-steps", type=int, default=16)
    p.add_argument("--min-confidence", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parts", default=os.path.join("outputs", "grid_localisation"))
    p.add_argument("--out", default=os.path.join("benchmarks", "results", "grid_localisation"))
    p.add_argument("--merge-only", action="store_true")
    p.add_argument("--sample-sweep", action="store_true")
    return p.parse_args()


def cells_and_names(args: argparse.Namespace, lm: object) -> tuple[torch.Tensor, list[str]]:
    samples = imagenet_samples() + skimage_samples()
    x = torch.stack([lm.preprocess(s.image) for s in samples])  # type: ignore[attr-defined]
    if x.shape[-1] != args.cell_size:
        x = F.interpolate(
            x, size=(args.cell_size, args.cell_size), mode="bilinear", antialias=True, align_corners=False
        )
    chosen = pick_grid_cells(lm.model, x, args.grids, 2, args.min_confidence)  # type: ignore[attr-defined]
    flat = [i for grid in chosen for i in grid]
    return x[flat], [samples[i].name for i in flat]


def run_parts(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    lm = load_model()
    cells, names = cells_and_names(args, lm)
    os.makedirs(args.parts, exist_ok=True)
    for setting in args.settings.split(","):
        for method in args.methods.split(","):
            path = os.path.join(args.parts, f"{setting}-{method.replace(':', '_')}.pt")
            if os.path.exists(path):
                continue
            start = time.perf_counter()
            res = compare_grids(
                lm.model,
                cells,
                setting=setting,
                methods=[method],
                explain=args.explain,
                names=names,
                keep_inputs=False,
                show_progress=False,
                tiles_per_cell=args.tiles_per_cell,
                shap_samples=args.samples,
                lime_samples=args.samples,
                ig_steps=args.ig_steps,
            )
            res.save(path)
            loc = res.localisation[method]
            print(
                f"{setting:7s} {method:20s} localisation {np.nanmean(loc):.3f} (min {np.nanmin(loc):.3f}) "
                f"{time.perf_counter() - start:7.1f} s",
                flush=True,
            )


def merge(args: argparse.Namespace) -> None:
    sections, dump = [], {}
    for setting in args.settings.split(","):
        parts = []
        for method in args.methods.split(","):
            path = os.path.join(args.parts, f"{setting}-{method.replace(':', '_')}.pt")
            if os.path.exists(path):
                parts.append(GridComparison.load(path))
        if not parts:
            continue
        res = GridComparison.merge(parts)
        sections.append(f"### {setting}\n\n{res.table()}\n")
        res.figure(f"{args.out}_aggatt_{setting}.png")
        dump[setting] = res.to_dict()
    command = "python benchmarks/grid_localisation.py " + " ".join(sys.argv[1:])
    with open(f"{args.out}.md", "w", encoding="utf-8") as fh:
        fh.write(f"<!-- {command.strip()} -->\n\n" + "\n".join(sections))
    with open(f"{args.out}.json", "w", encoding="utf-8") as fh:
        json.dump({"args": {k: v for k, v in vars(args).items() if k != "merge_only"}, "results": dump}, fh, indent=1)
    print("\n".join(sections))


def sample_sweep() -> None:
    from captum.attr import KernelShap
    from torch import nn

    from captum_submodular.grids import DisconnectedModel, cell_tiles_mask, difull_target, localisation, make_grids

    torch.set_num_threads(1)
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()
    dm = DisconnectedModel(net, 2)
    x = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    grids, mask = make_grids(x, 2), cell_tiles_mask(2, 16, 16, 2)
    with torch.no_grad():
        classes = net(x).argmax(1).tolist()
    print("| KernelShap samples | \\|mass\\| inside, mean | worst |\n|---:|---:|---:|")
    for n_samples in (64, 256, 1024, 4096):
        shares = []
        for g in range(2):
            for k in range(4):
                torch.manual_seed(0)
                a = KernelShap(dm).attribute(
                    grids[g : g + 1],
                    target=difull_target(k, classes[4 * g + k], 5),
                    feature_mask=mask,
                    n_samples=n_samples,
                    perturbations_per_eval=64,
                )
                shares.append(localisation(a, k, 2, mass="absolute").item())
        print(f"| {n_samples} | {np.mean(shares):.3f} | {np.min(shares):.3f} |")


def main() -> None:
    args = parse()
    if args.sample_sweep:
        sample_sweep()
        return
    if not args.merge_only:
        run_parts(args)
    merge(args)


if __name__ == "__main__":
    main()
