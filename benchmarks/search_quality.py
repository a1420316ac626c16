"""Search quality on the real model: evaluations, seconds, pixel-grid insertion / deletion.

One JSON line per (image, search).  Searches are given as names or as
``accelerated:HEAD:STALE_SHARE`` for AcceleratedSearch variants.

    python benchmarks/search_quality.py --images 0 1 4 --searches greedy accelerated
    python benchmarks/search_quality.py --images 0 --searches accelerated:0:0 accelerated:0.5:0.5
"""

from __future__ import annotations

import argparse
import json
import time

from captum_submodular import SubmodularAttribution
from captum_submodular.data import imagenet_samples
from captum_submodular.metrics import deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.regions import slic_mask
from captum_submodular.search import AcceleratedSearch


def make_search(spec: str):
    if spec.startswith("accelerated:"):
        _, head, share = spec.split(":")
        return AcceleratedSearch(head=float(head), stale_share=float(share))
    return spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[0, 1, 4])
    ap.add_argument("--searches", nargs="+", default=["greedy", "accelerated"])
    ap.add_argument("--segments", type=int, default=49)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    loaded = load_model()
    samples = imagenet_samples()
    for i in args.images:
        sample = samples[i]
        x = loaded.preprocess(sample.image)[None]
        mask = slic_mask(x[0], n_segments=args.segments)
        for spec in args.searches:
            attributor = SubmodularAttribution(loaded.model, search=make_search(spec))
            start = time.perf_counter()
            (res,) = attributor.explain(x, target=sample.label, feature_mask=mask, perturbations_per_eval=args.batch)
            seconds = time.perf_counter() - start
            ins = insertion(
                loaded.model, x, res.attributions, target=sample.label, perturbations_per_eval=args.batch
            ).item()
            dele = deletion(
                loaded.model, x, res.attributions, target=sample.label, perturbations_per_eval=args.batch
            ).item()
            print(
                json.dumps(
                    dict(
                        image=sample.name,
                        m=int(res.region_ids.numel()),
                        search=spec,
                        evals=res.n_evaluations,
                        sec=round(seconds, 1),
                        ins=round(ins, 4),
                        dele=round(dele, 4),
                    )
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
