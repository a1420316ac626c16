"""Issue 21, blurred insertion: where does the anytime search lose it to the two-sided search?

For every image of ``--records`` (one model, one dataset) both searches ran on, the two
orders are scored again as rank maps (sorting a rank map reproduces the order, as sorting
the gain map does) with pixel-grid insertion from the baseline and from the blurred
input, 50 steps.  Per image:

* the blurred-insertion difference ``a − b`` and its share of the mean;
* the *saturation step*: the first step where the baseline insertion curve reaches 90 % of
  the score of the full input (the later of the two orders), and the difference of the
  blurred-insertion area split at it: before (where the objective's own insertion curve
  still decides the order) and after (where it is flat, so the order of the remaining
  regions is chosen by the deletion side of the objective alone).

The image with the largest loss gets a figure of its four curves.

    python benchmarks/blur_why.py --records 'benchmarks/results/issue21-part0of1.jsonl'
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
import torch

from captum_submodular.data import imagenet_samples, skimage_samples
from captum_submodular.maps import rank_map
from captum_submodular.metrics import insertion
from captum_submodular.models import load_model
from captum_submodular.regions import slic_mask


def order_attribution(order: list, mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The package's rank map (:func:`captum_submodular.maps.rank_map`) of ``order`` painted on
    ``mask`` (1×1×H×W, region ``c`` = the ``c``-th smallest id), expanded like the input."""
    ids = torch.unique(mask)
    values = torch.empty(len(order), dtype=torch.float64)
    values[torch.as_tensor(order)] = rank_map(len(order))
    return values.float()[torch.searchsorted(ids, mask)].reshape(1, 1, *like.shape[-2:]).expand_as(like).contiguous()


def split_area(fractions: np.ndarray, scores: np.ndarray, step: int) -> tuple:
    """Trapezoid area of a curve on ``[0, fractions[step]]`` and on the rest."""
    return float(np.trapezoid(scores[: step + 1], fractions[: step + 1])), float(
        np.trapezoid(scores[step:], fractions[step:])
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default="benchmarks/results/issue21-part0of1.jsonl")
    ap.add_argument("--a", default="anytime")
    ap.add_argument("--b", default="bidirectional")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--dataset", default="imagenet")
    ap.add_argument("--saturation", type=float, default=0.9)
    ap.add_argument("--out", default="benchmarks/results/blur_why")
    args = ap.parse_args()
    torch.set_num_threads(1)
    recs = [json.loads(line) for p in sorted(glob.glob(args.records)) for line in open(p, encoding="utf-8")]
    recs = [
        r
        for r in recs
        if r["budget"] is None and r.get("model", "efficientnet_lite0") == args.model and r["dataset"] == args.dataset
    ]
    by = {(r["image"], r["search"]): r for r in recs}
    images = sorted(i for i, s in by if s == args.a and (i, args.b) in by)
    lm = load_model(args.model)
    model = lm.model.eval()
    samples = {s.name: s for s in list(skimage_samples()) + list(imagenet_samples())}
    rows, curves = [], {}
    for name in images:
        x = lm.preprocess(samples[name].image)[None]
        mask = slic_mask(x[0], n_segments=49)
        target = by[name, args.a]["target"]
        res = {}
        for s in (args.a, args.b):
            a = order_attribution(by[name, s]["order"], mask, x)
            res[s] = {
                sub: insertion(model, x, a, target, n_steps=50, substrate=sub, return_curves=True)
                for sub in ("baseline", "blur")
            }
        steps = []
        for s in (args.a, args.b):
            base = res[s]["baseline"].scores[0].numpy()
            steps.append(int(np.argmax(base >= args.saturation * base[-1])))
        step = max(steps)
        parts = {}
        for s in (args.a, args.b):
            c = res[s]["blur"]
            parts[s] = split_area(c.fractions[0].numpy(), c.scores[0].numpy(), step)
        row = dict(
            image=name,
            blur_a=float(res[args.a]["blur"].area),
            blur_b=float(res[args.b]["blur"].area),
            blur_record_a=by[name, args.a]["ins_blur"],
            blur_record_b=by[name, args.b]["ins_blur"],
            ins_a=float(res[args.a]["baseline"].area),
            ins_b=float(res[args.b]["baseline"].area),
            saturation_fraction=float(res[args.a]["baseline"].fractions[0, step]),
            before=parts[args.a][0] - parts[args.b][0],
            after=parts[args.a][1] - parts[args.b][1],
        )
        row["blur_diff"] = row["blur_a"] - row["blur_b"]
        rows.append(row)
        curves[name] = {s: {k: (v.fractions[0].tolist(), v.scores[0].tolist()) for k, v in res[s].items()} for s in res}
        print(json.dumps(row), flush=True)
    d = np.array([r["blur_diff"] for r in rows])
    worst = int(np.argmin(d))
    rest = np.delete(d, worst)
    before = np.array([r["before"] for r in rows])
    after = np.array([r["after"] for r in rows])
    sat = np.array([r["saturation_fraction"] for r in rows])
    summary = dict(
        images=len(rows),
        mean=float(d.mean()),
        median=float(np.median(d)),
        worst_image=rows[worst]["image"],
        worst=float(d[worst]),
        mean_without_worst=float(rest.mean()),
        before_saturation=float(before.mean()),
        after_saturation=float(after.mean()),
        saturation_fraction_median=float(np.median(sat)),
        largest_record_mismatch=float(
            max(abs(r["blur_a"] - r["blur_record_a"]) + abs(r["blur_b"] - r["blur_record_b"]) for r in rows)
        ),
    )
    print(json.dumps(summary, indent=1))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w", encoding="utf-8") as fh:
        json.dump(dict(summary=summary, rows=rows), fh, indent=1)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = rows[worst]["image"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, sub in zip(axes, ("baseline", "blur")):
        for s in (args.a, args.b):
            f, sc = curves[name][s][sub]
            ax.plot(f, sc, label=f"{s} (area {np.trapezoid(sc, f):.3f})")
        ax.axvline(rows[worst]["saturation_fraction"], color="grey", ls=":", label="baseline curve at 90 %")
        ax.set_xlabel("fraction of pixels inserted")
        ax.set_ylabel("softmax score of the class")
        ax.set_title(f"{name}: insertion from the {sub}", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=100)


if __name__ == "__main__":
    main()
