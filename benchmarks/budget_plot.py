"""Quality against budget: one plot of insertion, blurred insertion and deletion against the
mean model evaluations, one line per search, from JSON-lines records with the fields
``image, search, budget, evals, ins, ins_blur, dele`` (as written by ``dev_search.py`` with
``--budget`` and by ``search_table.py``).

    python benchmarks/budget_plot.py benchmarks/results/budget_cifar.jsonl \\
        --title "CIFAR-10 tutorial net, 8 images, 8×8 grid" --out benchmarks/results/budget_cifar.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+")
    ap.add_argument("--title", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for path in args.records for line in open(path, encoding="utf-8")]
    images = sorted({r["image"] for r in rows})
    groups = defaultdict(list)
    for r in rows:
        groups[(r["search"], r["budget"])].append(r)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    table = []
    for search in dict.fromkeys(r["search"] for r in rows):
        pts = []
        for (s, budget), rs in groups.items():
            if s != search or len({r["image"] for r in rs}) != len(images):
                continue
            pts.append(
                [np.mean([r["evals"] for r in rs])]
                + [np.mean([r[k] for r in rs]) for k in ("ins", "ins_blur", "dele")]
                + [budget]
            )
        pts.sort(key=lambda p: p[0])
        for p in pts:
            cap = p[4] if p[4] is not None else "none"
            table.append(f"| {search} | {cap} | {p[0]:.0f} | {p[1]:.3f} | {p[2]:.3f} | {p[3]:.3f} |")
        arr = np.array([p[:4] for p in pts], dtype=float)
        for ax, j, label in zip(axes, (1, 2, 3), ("insertion ↑", "blur insertion ↑", "deletion ↓")):
            ax.plot(arr[:, 0], arr[:, j], marker="o", label=search)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.set_xticks([150, 250, 400, 640, 1000, 1600, 2600, 4000])
            ax.tick_params(axis="x", labelsize=7)
            ax.set_xlabel("model evaluations per image (mean)")
            ax.set_title(label)
    axes[0].legend()
    fig.suptitle(args.title or f"Quality against max_evaluations, {len(images)} images", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("| search | max_evaluations | evaluations | insertion ↑ | blur insertion ↑ | deletion ↓ |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(table))


if __name__ == "__main__":
    main()
