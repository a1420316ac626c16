"""The side-by-side table of issue 8: our defaults against Captum's methods and the
published method's stand-in, on the 20 labelled ImageNet images and the real model.

Line-up (``captum_submodular.compare.standard_methods``, ``include=STANDARD_METHODS``):

* ``ours``: ``SubmodularAttribution(model, search=--search)`` (default ``accelerated``,
  the fast search) with the default weights, on a SLIC mask of ``--regions`` regions;
* ``published``: ``search="bidirectional"`` with the published weights 20/5/0.01/0, on
  its own SLIC mask of 49 regions (the published setting: about 45 superpixels).  With
  ``--regions 49`` this is exactly the package's default configuration;
* ``Occlusion`` (window 3×15×15, stride 8, the tutorial settings);
* ``FeatureAblation``, ``KernelShap`` (500 samples) and ``Lime`` (500 samples) on the
  same SLIC mask as ``ours``;
* ``IntegratedGradients`` (32 steps) and ``LayerGradCam`` (timm's ``conv_head``,
  upsampled bilinearly).

Metrics (:data:`METRICS`): pixel-grid insertion from the baseline (0), insertion from a
blurred start, deletion (MoRF) and deletion least relevant first (LeRF) to the baseline,
and ROAD's MoRF, LeRF and combined score (noisy linear imputation, σ = 0.01, seed 0);
50 steps; softmax of the predicted class.  The search's own region-level curves (region
mode of the metrics on each method's mask, as the papers report) are added for ``ours``
and ``published``.  The merge also ranks the methods under every metric and reports how
well the MoRF and LeRF rankings agree (Spearman's ρ) with each substrate.

The 20 images are split into shards so that two processes can share the two cores::

    python benchmarks/side_by_side.py --shard 0/2 &  python benchmarks/side_by_side.py --shard 1/2
    python benchmarks/side_by_side.py --merge        # table.md, results.json/csv, figure.png

``--dataset skimage`` runs the same line-up on scikit-image's four photos (no labels;
the predicted class is explained).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch

from captum_submodular.compare import STANDARD_METHODS, Comparison, compare, standard_methods
from captum_submodular.data import imagenet_samples, skimage_samples
from captum_submodular.metrics import METRICS, deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.search import DEFAULT_SEARCH

#: The columns of the table.
TABLE_METRICS = ("insertion", "insertion_blur", "deletion", "deletion_lerf", "road_morf", "road_lerf", "road_combined")

FIGURE_IMAGES = ("imagenet_00", "imagenet_04", "imagenet_17")


def _samples(dataset: str):
    return imagenet_samples() if dataset == "imagenet" else skimage_samples()


def run_shard(args: argparse.Namespace) -> None:
    index, count = (int(v) for v in args.shard.split("/"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(index)  # KernelShap and Lime sample coalitions at random
    lm = load_model()
    model = lm.model
    samples = _samples(args.dataset)[index::count][: args.limit]
    x = torch.stack([lm.preprocess(s.image) for s in samples])
    include = [m for m in STANDARD_METHODS if m not in args.skip]
    methods = standard_methods(
        model, include=include, n_segments=args.regions, search=args.search, perturbations_per_eval=args.ppe
    )
    t0 = time.time()
    result = compare(
        model,
        x,
        None,
        methods,
        metrics=TABLE_METRICS,
        n_steps=50,
        names=[s.name for s in samples],
        show_progress=not args.no_progress,
    )
    # The searches' own curves: region mode on each submodular method's mask.
    region = {}
    for m in methods:
        if m.name not in ("ours", "published", "refined", "phasewin"):
            continue
        rows = []
        for i in range(len(samples)):
            xi = x[i : i + 1]
            mask = m.call_kwargs(i, xi)["feature_mask"]
            a = result.maps[m.name][i : i + 1]
            t = result.targets[i]
            rows.append(
                {
                    "regions": int(torch.unique(mask).numel()),
                    "insertion": float(insertion(model, xi, a, t, feature_mask=mask)),
                    "deletion": float(deletion(model, xi, a, t, feature_mask=mask)),
                }
            )
        region[m.name] = rows
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"{args.dataset}-part{index}of{count}")
    result.to_json(stem + ".json")
    torch.save({"maps": result.maps, "inputs": result.inputs}, stem + ".pt")
    with open(stem + "-region.json", "w", encoding="utf-8") as fh:
        json.dump(region, fh, indent=1)
    print(f"shard {args.shard}: {len(samples)} images in {time.time() - t0:.0f} s -> {stem}.json", file=sys.stderr)


def merge(args: argparse.Namespace) -> None:
    lm = load_model()
    stems = sorted(
        p[: -len(".json")]
        for p in glob.glob(os.path.join(args.out, f"{args.dataset}-part*of*.json"))
        if not p.endswith("-region.json")
    )
    if not stems:
        raise SystemExit(f"no shards under {args.out}; run with --shard first")
    parts = []
    region: dict = {}
    for stem in stems:
        part = Comparison.from_json(stem + ".json")
        saved = torch.load(stem + ".pt")
        part.maps, part.inputs = saved["maps"], saved["inputs"]
        parts.append(part)
        with open(stem + "-region.json", encoding="utf-8") as fh:
            for name, rows in json.load(fh).items():
                region.setdefault(name, []).extend(rows)
    result = Comparison.concat(parts)
    table = result.table()
    lines = [
        table,
        "",
        "Search's own region-level curves (region mode, each method's mask):",
        "",
        "| method | regions | region insertion ↑ | region deletion ↓ |",
        "|---|---:|---:|---:|",
    ]
    for name, rows in region.items():
        r = np.array([[row["regions"], row["insertion"], row["deletion"]] for row in rows])
        lines.append(
            f"| {name} | {r[:, 0].mean():.1f} | {r[:, 1].mean():.3f} ± {r[:, 1].std(ddof=1):.3f} | "
            f"{r[:, 2].mean():.3f} ± {r[:, 2].std(ddof=1):.3f} |"
        )
    # Rank of every method per metric (1 = best) and margins of ours.
    lines += [
        "",
        "Rank of each method under each metric (1 = best mean):",
        "",
        "| method | " + " | ".join(result.metrics) + " |",
        "|---|" + "---:|" * len(result.metrics),
    ]
    ranks = {}
    for metric in result.metrics:
        higher = METRICS[metric].higher_is_better
        means = {n: float(np.mean(result.values[n][metric])) for n in result.methods}
        ordered = sorted(means, key=lambda n: -means[n] if higher else means[n])
        ranks[metric] = {n: ordered.index(n) + 1 for n in result.methods}
    for n in result.methods:
        lines.append(f"| {n} | " + " | ".join(str(ranks[m][n]) for m in result.metrics) + " |")

    def spearman(a: str, b: str) -> float:
        ra = np.array([ranks[a][n] for n in result.methods], dtype=float)
        rb = np.array([ranks[b][n] for n in result.methods], dtype=float)
        return float(np.corrcoef(ra, rb)[0, 1])

    lines += ["", "Agreement of the MoRF and LeRF rankings (Spearman's ρ of the method ranks):", ""]
    for name, morf, lerf in (("constant baseline", "deletion", "deletion_lerf"), ("ROAD", "road_morf", "road_lerf")):
        if morf in ranks and lerf in ranks:
            lines.append(f"- {name}: ρ(MoRF, LeRF) = {spearman(morf, lerf):+.2f}")
    lines += ["", "Margin of `ours` over the best other method (positive = ours better):", ""]
    for metric in result.metrics:
        higher = METRICS[metric].higher_is_better
        means = {n: float(np.mean(result.values[n][metric])) for n in result.methods}
        others = {n: v for n, v in means.items() if n != "ours"}
        best = max(others, key=others.get) if higher else min(others, key=others.get)
        margin = (means["ours"] - others[best]) * (1 if higher else -1)
        wins = int(
            sum(
                (result.values["ours"][metric] >= result.values[best][metric])
                if higher
                else (result.values["ours"][metric] <= result.values[best][metric])
            )
        )
        lines.append(
            f"- {metric}: ours {means['ours']:.3f}, best other {best} {others[best]:.3f}, "
            f"margin {margin:+.3f}; ours at least as good on {wins}/{result.n_examples} images"
        )
    # Paired: ours against each other method, per image; the signs on the two halves of the
    # images (sorted by name) tell a difference from noise.
    order = np.argsort(result.names)
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    lines += [
        "",
        "Paired, ours minus each method (sign-corrected: positive = ours better); "
        "images where ours is at least as good; signs on the two halves of the images by name "
        "(`flips` = within noise):",
        "",
        "| against | " + " | ".join(result.metrics) + " |",
        "|---|" + "---|" * len(result.metrics),
    ]
    for n in result.methods:
        if n == "ours":
            continue
        cells = []
        for metric in result.metrics:
            sign = 1.0 if METRICS[metric].higher_is_better else -1.0
            d = sign * (np.asarray(result.values["ours"][metric]) - np.asarray(result.values[n][metric]))
            h = ["+" if d[idx].mean() > 0 else "−" for idx in halves]
            cells.append(
                f"{d.mean():+.3f} ({int((d >= 0).sum())}/{d.size}; {h[0]}/{h[1]}"
                + (", flips" if h[0] != h[1] else "")
                + ")"
            )
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, f"{args.dataset}-table.md"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    result.to_json(os.path.join(args.out, f"{args.dataset}-results.json"))
    result.to_csv(os.path.join(args.out, f"{args.dataset}-results.csv"))
    picks = [i for i, n in enumerate(result.names) if n in FIGURE_IMAGES] or [0, 1, 2][: result.n_examples]
    result.figure(
        os.path.join(args.out, f"{args.dataset}-figure.png"),
        examples=picks,
        to_display=lm.to_display,
        class_names=lm.class_names,
        title=f"EfficientNet-Lite0, {result.n_examples} images: ours = the default search "
        f"({DEFAULT_SEARCH}, LiMA's two-sided search with the published weights)"
        + ("" if "published" in result.methods else "; refined and phasewin = the other searches"),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shard", default=None, help="I/N: run every N-th image starting at I")
    ap.add_argument("--merge", action="store_true", help="join the shards: table, JSON, CSV, figure")
    ap.add_argument("--dataset", choices=("imagenet", "skimage"), default="imagenet")
    ap.add_argument("--regions", type=int, default=49, help="SLIC regions of ours and the region baselines")
    ap.add_argument("--search", default=DEFAULT_SEARCH, help="search of the `ours` row (default: the package's)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many images per shard")
    ap.add_argument(
        "--skip",
        nargs="*",
        default=["published"],
        help="line-up rows to leave out (default: published, which is ours while the default search "
        "is the two-sided one with the published weights on the same 49-region mask)",
    )
    ap.add_argument("--ppe", type=int, default=16, help="perturbations_per_eval (16 is fastest on this CPU)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join("outputs", "side_by_side"))
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    if args.merge:
        merge(args)
    elif args.shard:
        run_shard(args)
    else:
        ap.error("give --shard I/N or --merge")


if __name__ == "__main__":
    main()
