"""``captum-submodular demo``: bundled images, SubmodularAttribution against Occlusion."""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from typing import Any, Dict, List, Sequence

from ._common import (
    CLIError,
    arrows,
    explain_config,
    fmt,
    format_table,
    load,
    log,
    prepare_out,
    summary_line,
    write_json,
)
from ._options import (
    Formatter,
    add_metric_options,
    add_model_options,
    add_output_options,
    add_region_options,
    add_search_options,
    wrap,
)

#: Bundled images the demo explains first (labelled ImageNet validation images that the
#: default model classifies correctly and that show different kinds of objects).
DEMO_IMAGES = ("imagenet_00", "imagenet_04", "imagenet_15", "imagenet_13", "imagenet_17")
DEMO_N_IMAGES = 2
DEMO_N_REGIONS = 25


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        formatter_class=Formatter,
        help="explain a few bundled images, compare with Occlusion, write a figure and a table",
        description=wrap(
            "Explain bundled ImageNet images with SubmodularAttribution and Captum's "
            "Occlusion (window 3×15×15, stride 3×8×8, baseline 0), score both with the "
            "pixel-grid insertion (higher is better) and deletion (lower is better) curves, "
            "print a table and write DIR/demo.png and DIR/demo.json. The defaults take about a "
            "minute on two CPU cores."
        ),
        epilog="examples:\n  captum-submodular demo\n  captum-submodular demo --images 3\n"
        "  captum-submodular demo --images imagenet_13 chelsea --regions prior\n",
    )
    p.add_argument(
        "--images",
        nargs="+",
        default=[str(DEMO_N_IMAGES)],
        metavar="N|NAME",
        help=f"how many bundled images (a number; default {DEMO_N_IMAGES}), or their names: "
        "imagenet_00 .. imagenet_19, astronaut, chelsea, coffee, rocket",
    )
    p.add_argument("--no-occlusion", action="store_true", help="skip the Occlusion comparison")
    add_model_options(p)
    g = p.add_argument_group("attribution")
    add_region_options(g, DEMO_N_REGIONS)
    add_search_options(g)
    add_metric_options(g)
    add_output_options(p, os.path.join("outputs", "demo"))
    p.set_defaults(func=run)
    return p


def _demo_images(spec: Sequence[str]) -> List[Any]:
    from ..data import bundled_images, imagenet_samples

    if len(spec) == 1 and spec[0].strip().isdigit():
        n = int(spec[0])
        if n < 1:
            raise CLIError("--images needs a positive number or image names")
        names = list(DEMO_IMAGES[:n])
        if n > len(names):
            extra = [s.name for s in imagenet_samples() if s.name not in names]
            names += extra[: n - len(names)]
        return bundled_images(names)
    return bundled_images(list(spec))


def run(args: argparse.Namespace) -> int:
    from ..models import resolve_device
    from ..pipeline import explain_image
    from ..plotting import explanation_figure

    started = time.perf_counter()
    resolve_device(args.device)
    cfg = explain_config(args, occlusion=not args.no_occlusion, metrics=True)
    images = _demo_images(args.images)
    out = prepare_out(args.out)
    lm = load(args)
    explanations = []
    for i, li in enumerate(images, 1):
        log(f"[{i}/{len(images)}] {li.name}")
        explanations.append(explain_image(lm, li.image, cfg, name=li.name, label=li.label, log=log))
    records = [e.to_json(lm.class_names, lm.name) for e in explanations]

    methods = ["SubmodularAttribution"] + ([] if args.no_occlusion else ["Occlusion"])
    arrow = arrows()
    header = ["image", "method", f"insertion {arrow['up']}", f"deletion {arrow['down']}", "evaluations", "seconds"]
    rows: List[List[str]] = []
    means: Dict[str, Dict[str, float]] = {}
    for rec in records:
        for m in methods:
            r = rec["methods"][m]
            rows.append(
                [
                    rec["name"],
                    m,
                    fmt(r["insertion_auc"]),
                    fmt(r["deletion_auc"]),
                    f"{r['n_evaluations']:,}",
                    f"{r['seconds']:.1f}",
                ]
            )
    for m in methods:
        recs = [rec["methods"][m] for rec in records]
        mean = {
            k: sum(float(r[k]) for r in recs) / len(recs)
            for k in ("insertion_auc", "deletion_auc", "n_evaluations", "seconds")
        }
        means[m] = mean
        rows.append(
            [
                "mean",
                m,
                fmt(mean["insertion_auc"]),
                fmt(mean["deletion_auc"]),
                f"{mean['n_evaluations']:,.0f}",
                f"{mean['seconds']:.1f}",
            ]
        )
    table = format_table(header, rows, [False, False, True, True, True, True])

    fig_path = os.path.join(out, "demo.png")
    json_path = os.path.join(out, "demo.json")
    title = f"{lm.name}: SubmodularAttribution ({args.search} search, {args.regions} regions) " + (
        "vs Occlusion" if not args.no_occlusion else ""
    )
    explanation_figure(explanations, fig_path, lm.to_display, lm.class_names, title=title.strip())
    counts: Counter = Counter()
    for e in explanations:
        counts.update(e.evaluations)
    seconds = time.perf_counter() - started
    write_json(
        json_path,
        {
            "command": "demo",
            "model": lm.name,
            "device": str(lm.device),
            "config": {
                "search": args.search,
                "regions": args.regions,
                "n_regions": args.n_regions,
                "grid": args.grid,
                "n_steps": args.n_steps,
                "perturbations_per_eval": args.perturbations_per_eval,
                "occlusion": None
                if args.no_occlusion
                else {"sliding_window_shapes": [3, 15, 15], "strides": [3, 8, 8], "baselines": 0.0},
            },
            "images": records,
            "mean": means,
            "n_evaluations": dict(counts),
            "seconds": seconds,
        },
    )
    print()
    print(table)
    print()
    print(
        "insertion/deletion: area under the pixel-grid curves of p(target) "
        f"({args.n_steps} steps, baseline 0); evaluations and seconds: the attribution only "
        "(the summary below adds the metrics' and the classification's evaluations)."
    )
    print(f"Figure: {fig_path}")
    print(f"Numbers: {json_path}")
    print(summary_line([fig_path, json_path], seconds, counts))
    return 0
