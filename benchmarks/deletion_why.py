"""Issue 21, deletion: where PhaseWin deletes better than the default, is it its objective or its order?

For every image of ``--records`` where PhaseWin's pixel-grid deletion is lower than the
default search's, run the default search again with PhaseWin's objective (weights 1 / 1 / 0
/ 0) and compare three orders on the region-level areas (``reference_search.region_curves``):

* PhaseWin (its search, its objective);
* the default search with the package objective (20 / 5 / 0.01);
* the default search with PhaseWin's objective.

If the third deletes as well as PhaseWin, the objective explains the gap; if it does not,
PhaseWin's order does (its search finds better deletion orders for the same objective).
Both curves are reported, so no insertion is traded silently.

    python benchmarks/deletion_why.py --records 'benchmarks/results/issue21-part*.jsonl'
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dev_search import Cached  # noqa: E402
from reference_search import BALANCED, region_curves  # noqa: E402

from captum_submodular import SubmodularAttribution  # noqa: E402
from captum_submodular.data import imagenet_samples, skimage_samples  # noqa: E402
from captum_submodular.metrics import deletion, insertion  # noqa: E402
from captum_submodular.models import load_model  # noqa: E402
from captum_submodular.regions import slic_mask  # noqa: E402
from captum_submodular.search import DEFAULT_SEARCH  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default="benchmarks/results/issue21-part*.jsonl")
    ap.add_argument("--search", default=DEFAULT_SEARCH)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--out", default="benchmarks/results/deletion_why.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    recs = [json.loads(line) for p in sorted(glob.glob(args.records)) for line in open(p, encoding="utf-8")]
    recs = [r for r in recs if r["budget"] is None and r.get("model", "efficientnet_lite0") == args.model]
    by = {(r["image"], r["search"]): r for r in recs}
    images = sorted(
        i for i, s in by if s == "phasewin" and (i, args.search) in by and by[i, s]["dele"] < by[i, args.search]["dele"]
    )
    lm = load_model(args.model)
    samples = {s.name: s for s in list(skimage_samples()) + list(imagenet_samples())}
    done = set()
    if os.path.exists(args.out):
        done = {json.loads(line)["image"] for line in open(args.out, encoding="utf-8")}
    for name in images:
        if name in done:
            continue
        model = Cached(lm.model.eval())
        x = lm.preprocess(samples[name].image)[None]
        mask = slic_mask(x[0], n_segments=49)
        target = by[name, "phasewin"]["target"]
        (res,) = SubmodularAttribution(model, search=args.search, weights=BALANCED).explain(
            x, target=target, feature_mask=mask, perturbations_per_eval=16
        )
        a = res.attributions
        rec = dict(
            image=name,
            pixel={
                "phasewin": (by[name, "phasewin"]["ins"], by[name, "phasewin"]["dele"]),
                args.search: (by[name, args.search]["ins"], by[name, args.search]["dele"]),
                f"{args.search} 1/1": (
                    float(insertion(model, x, a, target, n_steps=50, perturbations_per_eval=16)),
                    float(deletion(model, x, a, target, n_steps=50, perturbations_per_eval=16)),
                ),
            },
            region={
                "phasewin": region_curves(model, x, mask, target, by[name, "phasewin"]["order"]),
                args.search: region_curves(model, x, mask, target, by[name, args.search]["order"]),
                f"{args.search} 1/1": region_curves(model, x, mask, target, res.order.tolist()),
            },
            evals=res.n_evaluations,
        )
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
    rows = [json.loads(line) for line in open(args.out, encoding="utf-8")] if os.path.exists(args.out) else []
    if not rows:
        return
    print(f"{len(rows)} images where PhaseWin deletes better than {args.search}")
    print("| order | pixel insertion ↑ | pixel deletion ↓ | region ins − del (PhaseWin's objective) ↑ |")
    print("|---|---:|---:|---:|")
    for k in rows[0]["pixel"]:
        pi = np.mean([r["pixel"][k][0] for r in rows])
        pd = np.mean([r["pixel"][k][1] for r in rows])
        obj = np.mean([r["region"][k][0] - r["region"][k][1] for r in rows])
        print(f"| {k} | {pi:.3f} | {pd:.3f} | {obj:.3f} |")


if __name__ == "__main__":
    main()
