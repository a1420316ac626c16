"""``captum-submodular explain``: the user's own images, a figure and a JSON record per image."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from typing import Any, Dict, List

from ._common import CLIError, explain_config, load, log, prepare_out, summary_line, unique_stem, write_json
from ._options import (
    Formatter,
    add_metric_options,
    add_model_options,
    add_output_options,
    add_region_options,
    add_search_options,
    wrap,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "explain",
        formatter_class=Formatter,
        help="explain your own images (PNG figure + JSON per image)",
        description=wrap(
            "Explain image files with SubmodularAttribution. For each IMAGE writes "
            "DIR/<name>.png (original, attribution map, minimal subset, insertion/deletion "
            "curves) and DIR/<name>.json (order of the regions, curves, minimal subset, "
            "target, class name, model evaluations, seconds)."
        ),
        epilog="examples:\n  captum-submodular explain cat.jpg\n"
        "  captum-submodular explain *.jpg --target tabby --out results/\n"
        "  captum-submodular explain cat.jpg --regions grid --grid 8 --search greedy\n",
    )
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="JPEG/PNG files, any size and colour mode. The model sees its own preprocessing of "
        "each photo (for the default model: the shorter side resized to 256, then the centre "
        "224×224 crop); the figure shows that crop and its title gives the original size. A file "
        "that cannot be read or explained is reported and skipped (exit code 1)",
    )
    p.add_argument(
        "--target",
        default=None,
        metavar="CLASS",
        help="class to explain: an index, or a class name (case-insensitive, exact or a unique "
        "part of a name). Default: the predicted class of each image",
    )
    p.add_argument(
        "--no-metrics",
        action="store_true",
        help="skip the pixel-grid insertion/deletion scores (2×K model calls per image)",
    )
    add_model_options(p)
    g = p.add_argument_group("attribution")
    add_region_options(g, 49)
    add_search_options(g)
    add_metric_options(g)
    add_output_options(p, os.path.join("outputs", "explain"))
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Explain every readable image; a file that cannot be read or explained is reported with its
    reason and the others are still written.  Exit code 0 when all succeeded, 1 when some
    failed, 2 (a usage error, before the model loads) when none could be read."""
    from ..attribution import NonFiniteOutputError
    from ..data import load_images
    from ..models import resolve_device, resolve_target
    from ..pipeline import RegionCountError, explain_image
    from ..plotting import explanation_figure
    from . import flag_message

    started = time.perf_counter()
    resolve_device(args.device)
    cfg = explain_config(args, occlusion=False, metrics=not args.no_metrics)
    images, errors = load_images(args.images)
    if not images:
        raise CLIError("cannot read " + "; ".join(f"{p}: {why}" for p, why in errors))
    failures = [(str(p), str(why)) for p, why in errors]
    for path, why in failures:
        log(f"error: {path}: {why} (skipped)")
    out = prepare_out(args.out)
    lm = load(args)
    target = resolve_target(args.target, lm.class_names)
    if target is not None:
        cfg = explain_config(args, occlusion=False, metrics=not args.no_metrics, target=target)
    files: List[str] = []
    counts: Counter = Counter()
    used: Dict[str, int] = {}
    explained = 0
    for i, li in enumerate(images, 1):
        log(f"[{i}/{len(images)}] {li.path}")
        try:
            e = explain_image(lm, li.image, cfg, name=li.name, log=log)
        except (RegionCountError, NonFiniteOutputError, ValueError) as exc:
            failures.append((str(li.path), flag_message(exc)))
            log(f"error: {li.path}: {flag_message(exc)} (skipped)")
            continue
        stem = unique_stem(li.name, used)
        png = os.path.join(out, f"{stem}.png")
        js = os.path.join(out, f"{stem}.json")
        explanation_figure([e], png, lm.to_display, lm.class_names, title=f"{lm.name}, {args.search} search: {li.name}")
        record = dict(
            e.to_json(lm.class_names, lm.name), image=os.path.abspath(li.path) if li.path else None, command="explain"
        )
        write_json(js, record)
        files += [png, js]
        explained += 1
        counts.update(e.evaluations)
        sub = record["methods"]["SubmodularAttribution"]
        scores = (
            f"; insertion {sub['insertion_auc']:.3f}, deletion {sub['deletion_auc']:.3f}"
            if "insertion_auc" in sub
            else ""
        )
        print(
            f"{li.path}: {record['class_name']} (class {record['target']}, p = {record['probability']:.3f}); "
            f"minimal subset {sub['minimal_subset_size']}/{record['regions']['n_regions']} regions{scores}; "
            f"{sub['n_evaluations']:,} search evaluations, {sub['seconds']:.1f} s -> {png}, {js}"
        )
    print(summary_line(files, time.perf_counter() - started, counts))
    if failures:
        print(
            f"{len(failures)} of {len(failures) + explained} image(s) failed: "
            + "; ".join(f"{p}: {why}" for p, why in failures),
            file=sys.stderr,
        )
        return 1
    return 0
