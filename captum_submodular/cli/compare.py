"""``captum-submodular compare``: the standard line-up side by side on bundled ImageNet samples."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ._common import log, prepare_out
from ._options import (
    ALIASES_REMOVED_IN,
    Formatter,
    add_metric_options,
    add_model_options,
    add_output_options,
    check_region_count,
    positive_int,
    region_count,
    region_limits,
    wrap,
)

_EPILOG = """\
methods (--methods):
  ours                 SubmodularAttribution with --search and the default weights, on the shared mask
  published            the published method's stand-in: LiMA's two-sided search with the published
                       weights 20/5/0.01/0 on its own SLIC mask of 49 regions
  Occlusion            Captum's Occlusion, window 3×15×15, stride 3×8×8 (its tutorial settings)
  FeatureAblation, KernelShap (500 samples), Lime (500 samples)
                       on the same mask as ours
  IntegratedGradients  32 steps;  LayerGradCam: the last conv layer, upsampled

settings (--setting):
  images               the methods explain the first --images bundled ImageNet samples; insertion,
                       deletion … of every map (the default)
  difull               DiFull: 2×2 mosaics of bundled images, the model applied to every cell on its
                       own (per-cell log-softmax concatenated), so the target's score depends on its
                       cell alone: any attribution outside the cell is provably wrong
  gridpg               GridPG: the same mosaics, the model applied to the whole mosaic; the class of
                       one cell is explained
  Both grid settings score every map by its localisation (share of the positive attribution inside
  the target's cell) and draw AggAtt (maps binned by localisation percentile, averaged). Their
  line-up: Occlusion, FeatureAblation, KernelShap, Lime, IntegratedGradients, LayerGradCam and
  ours:<search> for every search, on tiles aligned with the cells.

examples:
  captum-submodular compare --images 4
  captum-submodular compare --setting difull --grids 8 --cell-size 96 --methods FeatureAblation,ours:bidirectional
  captum-submodular compare --images 8 --methods ours,published,Lime --metrics insertion,deletion
  captum-submodular compare --regions grid --n-regions 49 --search accelerated --out runs/grid
"""


class _RegionsOrCount(argparse.Action):
    """``--regions KIND``; the old ``--regions N`` (a count) still works, with a deprecation message."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from ..regions import REGION_BUILDERS

        if str(values).isdigit():
            print(
                f"warning: 'compare --regions N' is deprecated and will be removed in {ALIASES_REMOVED_IN}; use "
                "--n-regions N (--regions now names the region kind, as in the other commands)",
                file=sys.stderr,
            )
            namespace.n_regions = region_count(values)
            return
        if values not in REGION_BUILDERS:
            parser.error(
                f"argument --regions: invalid choice: {values!r} (choose from {', '.join(sorted(REGION_BUILDERS))})"
            )
        namespace.regions = values


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ..compare import DEFAULT_LINEUP, GRID_SETTINGS, STANDARD_METHODS, grid_lineup
    from ..metrics import METRICS
    from ..search import DEFAULT_SEARCH, SEARCHES

    p = sub.add_parser(
        "compare",
        formatter_class=Formatter,
        help="compare attribution methods side by side (comparison harness)",
        description=wrap(
            "Compare SubmodularAttribution with Captum's methods on the first bundled ImageNet "
            "samples: every method explains every image, every map is scored with the same "
            "pixel-grid protocol, and the table (mean ± std over images), results.json, "
            "results.csv and figure.png are written to --out. With --setting difull or gridpg, "
            "the methods explain cells of 2×2 mosaics of bundled images instead, every map is "
            "scored by its localisation in the target's cell, and table.md, results.json and "
            "aggatt.png are written."
        ),
        epilog=_EPILOG,
    )
    p.add_argument(
        "--images",
        type=positive_int,
        default=4,
        metavar="N",
        help="number of bundled ImageNet samples, the first ones (default: %(default)s)",
    )
    add_model_options(p)
    p.add_argument(
        "--setting",
        choices=("images",) + GRID_SETTINGS,
        default="images",
        help="what to compare on: bundled images with faithfulness metrics, or DiFull / GridPG "
        "mosaics with localisation and AggAtt (default: %(default)s)",
    )
    g = p.add_argument_group("methods")
    g.add_argument(
        "--methods",
        default=None,
        metavar="LIST",
        help=f"comma-separated subset of {', '.join(STANDARD_METHODS)} (default: "
        f"{', '.join(DEFAULT_LINEUP)}); with --setting difull or gridpg, of "
        f"{', '.join(grid_lineup())} (default: all)",
    )
    g.add_argument(
        "--regions",
        action=_RegionsOrCount,
        default="slic",
        metavar="KIND",
        help="regions of the shared mask of ours, FeatureAblation, KernelShap and Lime: slic or grid "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--n-regions",
        type=region_count,
        default=49,
        metavar="R",
        help=f"about how many regions: at least 2, {region_limits()} (default: %(default)s)",
    )
    g.add_argument(
        "--search", choices=sorted(SEARCHES), default=DEFAULT_SEARCH, help="search of 'ours' (default: %(default)s)"
    )
    g = p.add_argument_group("grids (--setting difull or gridpg)")
    g.add_argument(
        "--grids", type=positive_int, default=8, metavar="G", help="number of 2×2 mosaics (default: %(default)s)"
    )
    g.add_argument(
        "--cell-size",
        type=positive_int,
        default=None,
        metavar="S",
        help="side of a cell in pixels: each preprocessed image is resized to S×S (default: the "
        "model's input size, e.g. 224, so mosaics are 448²)",
    )
    g.add_argument(
        "--tiles-per-cell",
        type=positive_int,
        default=2,
        metavar="T",
        help="regions of the region methods: T×T tiles per cell, aligned with the cells (default: %(default)s)",
    )
    g.add_argument(
        "--explain",
        choices=("rotate", "all"),
        default="rotate",
        help="cells explained: 'rotate' (cell g mod 4 of mosaic g) or 'all' (default: %(default)s)",
    )
    g.add_argument(
        "--min-confidence",
        type=float,
        default=0.5,
        metavar="P",
        help="only images the model classifies with softmax ≥ P enter the mosaics, four different "
        "predicted classes per mosaic (default: %(default)s)",
    )
    g.add_argument(
        "--samples",
        type=positive_int,
        default=64,
        metavar="K",
        help="samples of KernelShap and Lime (default: %(default)s)",
    )
    g.add_argument(
        "--ig-steps",
        type=positive_int,
        default=16,
        metavar="K",
        help="steps of IntegratedGradients (default: %(default)s)",
    )
    g = p.add_argument_group("metrics")
    g.add_argument(
        "--metrics",
        default="insertion,deletion,insertion_blur",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(METRICS)} (default: %(default)s)",
    )
    add_metric_options(g, old_spellings=("--steps",))
    g.add_argument(
        "--no-labels",
        action="store_true",
        help="do not pass the true labels (no highest confidence on misclassified images)",
    )
    g.add_argument(
        "--threads", type=positive_int, default=None, metavar="T", help="torch intra-op threads (default: torch's)"
    )
    add_output_options(p, os.path.join("outputs", "compare"))
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from ..compare import DEFAULT_LINEUP, STANDARD_METHODS, compare, standard_methods
    from ..data import imagenet_samples
    from ..metrics import resolve_metrics
    from ..models import resolve_device
    from ._common import load

    resolve_device(args.device)
    if args.setting != "images":
        return run_grids(args)
    check_region_count(args.n_regions, args.search)
    metrics = [m.name for m in resolve_metrics(args.metrics, "--metrics")]
    include = [m.strip() for m in (args.methods or ",".join(DEFAULT_LINEUP)).split(",") if m.strip()]
    unknown = [m for m in include if m not in STANDARD_METHODS]
    if unknown or not include:
        raise ValueError(f"--methods: unknown method(s) {unknown or include}; choose from {list(STANDARD_METHODS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = prepare_out(args.out)
    lm = load(args)
    methods = standard_methods(
        lm.model, include=include, n_segments=args.n_regions, search=args.search, regions=args.regions
    )
    samples = imagenet_samples(limit=args.images)
    x = torch.stack([lm.preprocess(s.image) for s in samples]).to(lm.device)
    labels = None if args.no_labels else [int(s.label) for s in samples]  # type: ignore[arg-type]
    result = compare(
        lm.model, x, None, methods, metrics=metrics, n_steps=args.n_steps, labels=labels,
        names=[s.name for s in samples], show_progress=not args.no_progress,
    )  # fmt: skip
    table = result.table()
    print(table)
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    result.to_json(os.path.join(out, "results.json"))
    result.to_csv(os.path.join(out, "results.csv"))
    result.figure(
        os.path.join(out, "figure.png"),
        to_display=lm.to_display,
        class_names=lm.class_names,
        title=f"{lm.name}, {len(samples)} images, {args.regions} {args.n_regions} regions",
    )
    log(f"wrote {out}/table.md, results.json, results.csv, figure.png")
    return 0


def run_grids(args: argparse.Namespace) -> int:
    """``--setting difull|gridpg``: the grid line-up on mosaics of the bundled images."""
    import torch
    import torch.nn.functional as F

    from ..compare import compare_grids, grid_lineup, pick_grid_cells
    from ..data import DataUnavailableError, imagenet_samples, skimage_samples
    from ._common import load

    known = grid_lineup()
    include = [m.strip() for m in (args.methods or ",".join(known)).split(",") if m.strip()]
    unknown = [m for m in include if m not in known]
    if unknown or not include:
        raise ValueError(
            f"--methods: unknown method(s) {unknown or include} for --setting {args.setting}; choose from {list(known)}"
        )
    if not 0.0 <= args.min_confidence <= 1.0:
        raise ValueError(f"--min-confidence: expected a probability in [0, 1], got {args.min_confidence}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = prepare_out(args.out)
    lm = load(args)
    samples = []
    for source in (imagenet_samples, skimage_samples):
        try:
            samples += source()
        except (DataUnavailableError, ImportError):
            continue
    if not samples:
        raise ValueError("--setting: no bundled images are installed (pip install 'captum_submodular[demo]')")
    x = torch.stack([lm.preprocess(s.image) for s in samples])
    if args.cell_size is not None and tuple(x.shape[-2:]) != (args.cell_size, args.cell_size):
        x = F.interpolate(
            x, size=(args.cell_size, args.cell_size), mode="bilinear", antialias=True, align_corners=False
        )
    if args.tiles_per_cell > min(x.shape[-2:]):
        raise ValueError(f"--tiles-per-cell {args.tiles_per_cell} is more than the cell side {min(x.shape[-2:])}")
    try:
        chosen = pick_grid_cells(lm.model, x.to(lm.device), args.grids, 2, args.min_confidence)
    except ValueError as exc:
        raise ValueError(f"--min-confidence: {exc}") from None
    flat = [i for grid in chosen for i in grid]
    result = compare_grids(
        lm.model,
        x[flat].to(lm.device),
        setting=args.setting,
        methods=include,
        explain=args.explain,
        names=[samples[i].name for i in flat],
        show_progress=not args.no_progress,
        tiles_per_cell=args.tiles_per_cell,
        shap_samples=args.samples,
        lime_samples=args.samples,
        ig_steps=args.ig_steps,
    )
    table = result.table()
    print(table)
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    result.to_json(os.path.join(out, "results.json"))
    result.figure(os.path.join(out, "aggatt.png"))
    log(f"wrote {out}/table.md, results.json, aggatt.png")
    return 0
