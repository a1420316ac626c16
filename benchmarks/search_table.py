"""Issue 12: the searches side by side on the evaluation sets, and quality against budget.

Searches: plain greedy, the two-sided search (``bidirectional``, LiMA), PhaseWin (its
published objective 1 / 1), the accelerated search, and the refined search; all with the
package's defaults otherwise (weights 20 / 5 / 0.01 except PhaseWin's, the gain map).
EfficientNet-Lite0, the 20 ImageNet samples and the 4 scikit-image photos, SLIC 49 masks
(``slic_mask(x[0], n_segments=49)``), the predicted class, pixel-grid insertion (baseline
0), blurred insertion and deletion, 50 steps, softmax.  Evaluations are the searches'
own ``n_evaluations``.  Model outputs are cached by the bytes of the composed input within
one image (the searches and metrics of an image share what they ask twice), so the
seconds are not comparable between searches; the evaluation counts are.

    python benchmarks/search_table.py --shard 0/2 & python benchmarks/search_table.py --shard 1/2
    python benchmarks/search_table.py --merge          # table, CSV, half-split check, budget plot

``--budget-images`` names the images that also get the quality-against-budget runs
(``--budgets``); ``--grid 14`` runs the 14×14 grid (196 regions) instead of SLIC.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dev_search import Cached  # noqa: E402

from captum_submodular import SubmodularAttribution  # noqa: E402
from captum_submodular.data import imagenet_samples, skimage_samples  # noqa: E402
from captum_submodular.metrics import deletion, insertion  # noqa: E402
from captum_submodular.models import load_model  # noqa: E402
from captum_submodular.regions import grid_mask, slic_mask  # noqa: E402

SEARCHES = ("anytime", "anytime-v2", "refined", "bidirectional", "phasewin", "accelerated", "greedy")
BUDGET_SEARCHES = ("greedy", "bidirectional", "phasewin", "refined", "accelerated", "anytime")
OUT = os.path.join("benchmarks", "results")


def run_shard(args: argparse.Namespace) -> None:
    index, count = (int(v) for v in args.shard.split("/"))
    torch.set_num_threads(1)
    lm = load_model(args.model)
    samples = [("skimage", s) for s in skimage_samples()] + [("imagenet", s) for s in imagenet_samples()]
    if args.only:
        samples = [p for p in samples if p[1].name in args.only]
    samples = samples[index::count]
    path = os.path.join(args.out, f"{args.tag}-part{index}of{count}.jsonl")
    done = set()
    if os.path.exists(path):
        done = {(r["image"], r["search"], r["budget"]) for r in map(json.loads, open(path))}
    for dataset, s in samples:
        model = Cached(lm.model.eval())
        x = lm.preprocess(s.image)[None]
        mask = grid_mask(x.shape[-2], x.shape[-1], grid=args.grid) if args.grid else slic_mask(x[0], n_segments=49)
        with torch.no_grad():
            target = int(model(x).argmax())
        plan = [(name, None) for name in args.searches]
        if s.name in args.budget_images:
            plan += [(name, b) for b in args.budgets for name in args.budget_searches]
        for name, budget in plan:
            if (s.name, name, budget) in done:
                continue
            t = time.perf_counter()
            sa = SubmodularAttribution(model, search=name, max_evaluations=budget)
            (res,) = sa.explain(x, target=target, feature_mask=mask, perturbations_per_eval=16)
            sec = time.perf_counter() - t
            a = res.attributions
            road = (
                {
                    k: float(
                        deletion(model, x, a, target, n_steps=50, substrate="road", order=o, perturbations_per_eval=16)
                    )
                    for k, o in (("road_morf", "morf"), ("road_lerf", "lerf"))
                }
                if args.road and (not args.road_searches or name in args.road_searches) and budget is None
                else {}
            )
            rec = dict(
                model=args.model,
                dataset=dataset,
                image=s.name,
                m=int(res.region_ids.numel()),
                search=name,
                budget=budget,
                target=target,
                evals=res.n_evaluations,
                rounds=res.n_rounds,
                sec=round(sec, 1),
                ins=float(insertion(model, x, a, target, n_steps=50, perturbations_per_eval=16)),
                ins_blur=float(insertion(model, x, a, target, n_steps=50, substrate="blur", perturbations_per_eval=16)),
                dele=float(deletion(model, x, a, target, n_steps=50, perturbations_per_eval=16)),
                order=res.order.tolist(),
                **road,
            )
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(json.dumps({k: v for k, v in rec.items() if k != "order"}), flush=True)


def _load(args: argparse.Namespace) -> list:
    rows = []
    paths = sorted(glob.glob(os.path.join(args.out, f"{args.tag}-part*of*.jsonl")))
    for pattern in args.include:
        paths += sorted(glob.glob(pattern))
    for p in paths:
        rows += [json.loads(line) for line in open(p, encoding="utf-8")]
    return rows


def _metrics(rows: list) -> list:
    out = [("ins", "insertion ↑", 1), ("ins_blur", "blur insertion ↑", 1), ("dele", "deletion ↓", -1)]
    if any("road_morf" in r for r in rows):
        for r in rows:
            if "road_morf" in r:
                r["road"] = r["road_lerf"] - r["road_morf"]
        out.append(("road", "ROAD combined ↑", 1))
    return out


def merge(args: argparse.Namespace) -> None:
    rows = _load(args)
    main_rows = [r for r in rows if r["budget"] is None]
    lines = []
    versus = args.versus
    for model in sorted({r.get("model", "efficientnet_lite0") for r in main_rows}):
        for dataset in ("imagenet", "skimage"):
            rs = [r for r in main_rows if r["dataset"] == dataset and r.get("model", "efficientnet_lite0") == model]
            by = {(r["image"], r["search"]): r for r in rs}
            core = [n for n in (versus, "bidirectional") if any(k[1] == n for k in by)]
            images = sorted(i for i in {r["image"] for r in rs} if all((i, n) in by for n in core))
            if not images:
                continue
            metrics = _metrics([by[i, n] for i in images for n in SEARCHES if (i, n) in by])
            lines += [
                f"### {model}, {dataset}: {len(images)} images",
                "",
                "| search | images | evaluations (mean, max) | rounds (mean, max) | "
                + " | ".join(lbl for _, lbl, _ in metrics)
                + " |",
                "|---|---:|---:|---:|" + "---:|" * len(metrics),
            ]
            for n in SEARCHES:
                imgs = [i for i in images if (i, n) in by]
                if not imgs:
                    continue
                e = [by[i, n]["evals"] for i in imgs]
                rd = [by[i, n]["rounds"] for i in imgs if "rounds" in by[i, n]]
                rounds = f"{np.mean(rd):.0f}, {max(rd)}" if len(rd) == len(imgs) else "–"
                cells = [
                    f"{np.mean([by[i, n][k] for i in imgs]):.3f}" if all(k in by[i, n] for i in imgs) else "–"
                    for k, _, _ in metrics
                ]
                lines.append(
                    f"| {n} | {len(imgs)} | {np.mean(e):.0f}, {max(e)} | {rounds} | " + " | ".join(cells) + " |"
                )
            lines += [
                "",
                f"{versus} against each other search ({model}, {dataset}, on the images both ran): mean "
                f"difference ({versus} better on / images; sign of the mean difference on the first and the "
                "second half of those images, sorted by name)",
                "",
                "| against | images | " + " | ".join(lbl for _, lbl, _ in metrics) + " |",
                "|---|---:|" + "---|" * len(metrics),
            ]
            for n in SEARCHES:
                imgs = [i for i in images if (i, n) in by]
                if n == versus or not imgs or (imgs[0], versus) not in by:
                    continue
                cells = []
                for k, _, sign in metrics:
                    if not all(k in by[i, versus] and k in by[i, n] for i in imgs):
                        cells.append("–")
                        continue
                    cells.append(_paired([by[i, versus][k] - by[i, n][k] for i in imgs], sign))
                lines.append(f"| {n} | {len(imgs)} | " + " | ".join(cells) + " |")
            lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, f"{args.tag}-table.md"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    cols = [
        "model",
        "dataset",
        "image",
        "m",
        "search",
        "budget",
        "target",
        "evals",
        "rounds",
        "ins",
        "ins_blur",
        "dele",
    ]
    cols += ["road_morf", "road_lerf"]
    with open(os.path.join(args.out, f"{args.tag}-per-image.csv"), "w", encoding="utf-8") as fh:
        fh.write(",".join(cols) + "\n")
        for r in rows:
            fh.write(",".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + "\n")
    budget_plot(args, rows)


def _paired(diffs: list, sign: int) -> str:
    """Mean difference (images better / images; sign of the mean on each half, in the given order).
    Differences below 1e-6 count as ties."""
    d = np.asarray(diffs, dtype=float)
    d[np.abs(d) < 1e-6] = 0.0  # the same order scored twice: a tie, not a float-noise win
    half = len(d) // 2
    wins = int(((d * sign) > 0).sum())
    h1, h2 = np.sign(d[:half].mean()) if half else 0.0, np.sign(d[half:].mean())
    flag = "" if h1 == h2 else ", flips"
    return f"{d.mean():+.3f} ({wins}/{len(d)}; {h1:+.0f}/{h2:+.0f}{flag})"


def _budget_records(rows: list, model: str) -> Tuple[list, dict]:
    """The budgets run with ``model`` and its records by ``(image, search, budget)`` (the last
    record of a key wins, as the merge's include order intends)."""
    mine = [r for r in rows if r.get("model", "efficientnet_lite0") == model]
    budgets = sorted({r["budget"] for r in mine if r["budget"] is not None})
    return budgets, {(r["image"], r["search"], r["budget"]): r for r in mine}


def _complete_images(by: dict, name: str, budgets: list) -> list:
    """The images where ``name`` ran at every budget and unbudgeted."""
    return sorted(set.intersection(*({i for (i, n, b) in by if n == name and b == bb} for bb in budgets + [None])))


def budget_table(rows: list, model: str, versus: str) -> list:
    """Markdown lines: each search's mean at each budget on the images where all its budgets ran,
    then ``versus`` against each search at each budget, paired on the images both ran."""
    budgets, by = _budget_records(rows, model)
    keys = (("ins", 1), ("ins_blur", 1), ("dele", -1))
    lines = [
        f"### {model}: mean at each max_evaluations (insertion ↑ / blurred insertion ↑ / deletion ↓; evaluations)",
        "",
        "| search | images | " + " | ".join(str(b) if b else "none" for b in budgets + [None]) + " |",
        "|---|---:|" + "---|" * (len(budgets) + 1),
    ]
    paired = []
    for name in BUDGET_SEARCHES:
        images = _complete_images(by, name, budgets)
        if not images:
            continue
        cells = []
        for b in budgets + [None]:
            rs = [by[i, name, b] for i in images]
            cells.append(
                " / ".join(f"{np.mean([r[k] for r in rs]):.3f}" for k, _ in keys)
                + f" ({np.mean([r['evals'] for r in rs]):.0f})"
            )
        lines.append(f"| {name} | {len(images)} | " + " | ".join(cells) + " |")
        if name == versus:
            continue
        for b in budgets + [None]:
            common = [i for i in images if (i, versus, b) in by]
            if common:
                diffs = [_paired([by[i, versus, b][k] - by[i, name, b][k] for i in common], sign) for k, sign in keys]
                paired.append(f"| {name} | {b or 'none'} | {len(common)} | " + " | ".join(diffs) + " |")
    if paired:
        lines += [
            "",
            f"{versus} against each search at the same max_evaluations ({model}), paired on the images both "
            f"ran: mean difference ({versus} better on / images; sign on the first / second half by name)",
            "",
            "| against | max_evaluations | images | insertion ↑ | blurred insertion ↑ | deletion ↓ |",
            "|---|---|---:|---|---|---|",
        ] + paired
    return lines + [""]


def budget_plot(args: argparse.Namespace, rows: list) -> None:
    """One row of panels per model: each search's mean quality against its mean evaluations, on
    the images where every budget of that search ran (the unbudgeted run is the last point);
    and the same records as tables (``budget_table``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    models = sorted({r.get("model", "efficientnet_lite0") for r in rows if r["budget"] is not None})
    if not models:
        return
    fig, grid = plt.subplots(len(models), 3, figsize=(15, 4.2 * len(models)), squeeze=False)
    summary: dict = {}
    for axes, model in zip(grid, models):
        budgets, by = _budget_records(rows, model)
        summary[model] = {}
        for name in BUDGET_SEARCHES:
            images = _complete_images(by, name, budgets)
            if not images:
                continue
            pts = []
            for budget in budgets + [None]:
                rs = [by[i, name, budget] for i in images]
                pts.append(
                    (np.mean([r["evals"] for r in rs]),)
                    + tuple(np.mean([r[k] for r in rs]) for k in ("ins", "ins_blur", "dele"))
                )
            pts_a = np.array(sorted(pts))
            summary[model][name] = dict(images=images, points=pts_a.tolist())
            for ax, j in zip(axes, (1, 2, 3)):
                ax.plot(pts_a[:, 0], pts_a[:, j], marker="o", label=f"{name} ({len(images)} images)")
        for ax, label in zip(axes, ("insertion ↑", "blur insertion ↑", "deletion ↓")):
            ax.set_xscale("log")
            ax.set_xticks(budgets + [2000])
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("model evaluations per image (mean)")
            ax.set_title(f"{model}: {label}", fontsize=10)
        axes[0].legend(fontsize=8)
    fig.suptitle(f"Quality against budget (max_evaluations {budgets} and none), SLIC 49", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, f"{args.tag}-budget.png"), dpi=100)
    with open(os.path.join(args.out, f"{args.tag}-budget.json"), "w", encoding="utf-8") as fh:
        json.dump(dict(columns=["evals", "ins", "ins_blur", "dele"], models=summary), fh, indent=1)
    lines = [line for model in models for line in budget_table(rows, model, args.versus)]
    with open(os.path.join(args.out, f"{args.tag}-budget.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shard", default=None)
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--searches", nargs="*", default=list(SEARCHES))
    ap.add_argument("--budget-images", nargs="*", default=["imagenet_00", "imagenet_01", "imagenet_02", "imagenet_03"])
    ap.add_argument("--budgets", type=int, nargs="*", default=[150, 300, 550, 1000])
    ap.add_argument("--budget-searches", nargs="*", default=list(BUDGET_SEARCHES))
    ap.add_argument("--only", nargs="*", default=None, help="run only these images")
    ap.add_argument("--grid", type=int, default=0, help="n×n grid instead of SLIC 49")
    ap.add_argument("--tag", default="search_table")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--model", default="efficientnet_lite0", help="a load_model name (efficientnet_lite1 …)")
    ap.add_argument("--road", action="store_true", help="also ROAD MoRF / LeRF (combined = LeRF − MoRF)")
    ap.add_argument("--road-searches", nargs="*", default=None, help="only these searches get ROAD (default: all)")
    ap.add_argument("--include", nargs="*", default=[], help="more record files (globs) for --merge")
    ap.add_argument("--versus", default="anytime", help="the search the paired table compares with the others")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.merge:
        merge(args)
    elif args.shard:
        run_shard(args)
    else:
        ap.error("give --shard I/N or --merge")


if __name__ == "__main__":
    main()
