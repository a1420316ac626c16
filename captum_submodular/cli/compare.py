"""``captum-submodular compare``: the standard line-up side by side on bundled ImageNet samples."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional

from ._common import log, prepare_out
from ._options import Formatter, add_metric_options, add_model_options, add_output_options, check_region_count, \
    positive_int, region_count, region_limits, wrap

_EPILOG = """\
methods (--methods):
  ours                 SubmodularAttribution with --search and the default weights, on the shared mask
  published            the published method's stand-in: LiMA's two-sided search with the published
                       weights 20/5/0.01/0 on its own SLIC mask of 49 regions
  Occlusion            Captum's Occlusion, window 3×15×15, stride 3×8×8 (its tutorial settings)
  FeatureAblation, KernelShap (500 samples), Lime (500 samples)
                       on the same mask as ours
  IntegratedGradients  32 steps;  LayerGradCam: the last conv layer, upsampled

examples:
  captum-submodular compare --images 4
  captum-submodular compare --images 8 --methods ours,published,Lime --metrics insertion,deletion
  captum-submodular compare --regions grid --n-regions 49 --search accelerated --out runs/grid
"""


class _RegionsOrCount(argparse.Action):
    """``--regions KIND``; the old ``--regions N`` (a count) still works, with a deprecation message."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        from ..regions import REGION_BUILDERS

        if str(values).isdigit():
            print("warning: 'compare --regions N' is deprecated and will be removed in the next release; use "
                  "--n-regions N (--regions now names the region kind, as in the other commands)", file=sys.stderr)
            namespace.n_regions = region_count(values)
            return
        if values not in REGION_BUILDERS:
            parser.error(f"argument --regions: invalid choice: {values!r} (choose from "
                         f"{', '.join(sorted(REGION_BUILDERS))})")
        namespace.regions = values


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ..compare import DEFAULT_LINEUP, STANDARD_METHODS
    from ..metrics import METRICS
    from ..search import DEFAULT_SEARCH, SEARCHES

    p = sub.add_parser(
        "compare", formatter_class=Formatter,
        help="compare attribution methods side by side (comparison harness)",
        description=wrap("Compare SubmodularAttribution with Captum's methods on the first bundled ImageNet "
                         "samples: every method explains every image, every map is scored with the same "
                         "pixel-grid protocol, and the table (mean ± std over images), results.json, "
                         "results.csv and figure.png are written to --out."),
        epilog=_EPILOG)
    p.add_argument("--images", type=positive_int, default=4, metavar="N",
                   help="number of bundled ImageNet samples, the first ones (default: %(default)s)")
    add_model_options(p)
    g = p.add_argument_group("methods")
    g.add_argument("--methods", default=",".join(DEFAULT_LINEUP), metavar="LIST",
                   help=f"comma-separated subset of {','.join(STANDARD_METHODS)} (default: %(default)s)")
    g.add_argument("--regions", action=_RegionsOrCount, default="slic", metavar="KIND",
                   help="regions of the shared mask of ours, FeatureAblation, KernelShap and Lime: slic or grid "
                        "(default: %(default)s)")
    g.add_argument("--n-regions", type=region_count, default=49, metavar="R",
                   help=f"about how many regions: at least 2, {region_limits()} (default: %(default)s)")
    g.add_argument("--search", choices=sorted(SEARCHES), default=DEFAULT_SEARCH,
                   help="search of 'ours' (default: %(default)s)")
    g = p.add_argument_group("metrics")
    g.add_argument("--metrics", default="insertion,deletion,insertion_blur", metavar="LIST",
                   help=f"comma-separated subset of {','.join(METRICS)} (default: %(default)s)")
    add_metric_options(g, old_spellings=("--steps",))
    g.add_argument("--no-labels", action="store_true",
                   help="do not pass the true labels (no highest confidence on misclassified images)")
    g.add_argument("--threads", type=positive_int, default=None, metavar="T",
                   help="torch intra-op threads (default: torch's)")
    add_output_options(p, os.path.join("outputs", "compare"))
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from ..compare import STANDARD_METHODS, compare, standard_methods
    from ..data import imagenet_samples
    from ..metrics import resolve_metrics
    from ..models import resolve_device
    from ._common import load

    resolve_device(args.device)
    check_region_count(args.n_regions, args.search)
    metrics = [m.name for m in resolve_metrics(args.metrics, "--metrics")]
    include = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in include if m not in STANDARD_METHODS]
    if unknown or not include:
        raise ValueError(f"--methods: unknown method(s) {unknown or include}; choose from {list(STANDARD_METHODS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = prepare_out(args.out)
    lm = load(args)
    methods = standard_methods(lm.model, include=include, n_segments=args.n_regions, search=args.search,
                               regions=args.regions)
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
    result.figure(os.path.join(out, "figure.png"), to_display=lm.to_display, class_names=lm.class_names,
                  title=f"{lm.name}, {len(samples)} images, {args.regions} {args.n_regions} regions")
    log(f"wrote {out}/table.md, results.json, results.csv, figure.png")
    return 0
