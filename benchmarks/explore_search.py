"""Quick exploration of search variants on a cheap proxy (not the benchmark).

Proxy: EfficientNet-Lite0 on the ImageNet samples downscaled to ``--res`` pixels
(default 112, ~4x cheaper than 224), SLIC regions.  Greedy results are cached in
``--cache`` so variants can be compared without re-running it.

    python benchmarks/explore_search.py --images 4 --segments 49 --variants 'accelerated' 'accelerated:n_candidates=3'
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from captum_submodular import SubmodularAttribution
from captum_submodular.data import imagenet_samples
from captum_submodular.metrics import deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.regions import grid_mask, slic_mask
from captum_submodular.search import SEARCHES


class Counted(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)


def make_search(spec: str):
    name, _, args = spec.partition(":")
    kwargs = {}
    for part in filter(None, args.split(",")):
        k, v = part.split("=")
        kwargs[k] = float(v) if "." in v or "e" in v else int(v)
    return SEARCHES[name](**kwargs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--segments", type=int, default=49)
    ap.add_argument("--grid", type=int, default=0)
    ap.add_argument("--res", type=int, default=112)
    ap.add_argument("--variants", nargs="+", default=["accelerated"])
    ap.add_argument("--cache", default="/tmp/explore_cache.json")
    a = ap.parse_args()
    torch.manual_seed(0)
    lm = load_model()
    model = Counted(lm.model.eval())
    samples = imagenet_samples()[a.start : a.start + a.images]
    cache = json.load(open(a.cache)) if os.path.exists(a.cache) else {}
    rows = {}
    for s in samples:
        x = lm.preprocess(s.image)[None]
        if a.res != 224:
            x = F.interpolate(x, size=(a.res, a.res), mode="bilinear", antialias=True, align_corners=False)
        mask = grid_mask(a.res, a.res, grid=a.grid) if a.grid else slic_mask(x[0], n_segments=a.segments)
        m = int(mask.max()) + 1
        for spec in a.variants:
            key = f"{s.name}|{a.res}|{a.grid or a.segments}|{spec}"
            if key not in cache:
                model.rows = 0
                t = time.perf_counter()
                res = SubmodularAttribution(model, search=make_search(spec)).explain(
                    x, target=s.label, feature_mask=mask, perturbations_per_eval=64
                )[0]
                sec = time.perf_counter() - t
                ev = model.rows
                ins = float(insertion(model, x, res.attributions, target=s.label, n_steps=50)[0])
                dele = float(deletion(model, x, res.attributions, target=s.label, n_steps=50)[0])
                cache[key] = dict(m=m, evals=ev, sec=sec, ins=ins, dele=dele, order=res.order.tolist())
                json.dump(cache, open(a.cache, "w"))
            r = cache[key]
            rows.setdefault(spec, []).append(r)
            print(
                f"{s.name} m={m} {spec:40s} evals={r['evals']:6d} sec={r['sec']:6.1f} "
                f"ins={r['ins']:.3f} del={r['dele']:.3f}",
                flush=True,
            )
    print("---- means")
    for spec, rs in rows.items():
        n = len(rs)
        print(
            f"{spec:40s} n={n} evals={sum(r['evals'] for r in rs) / n:7.0f} "
            f"ins={sum(r['ins'] for r in rs) / n:.4f} del={sum(r['dele'] for r in rs) / n:.4f}"
        )


if __name__ == "__main__":
    main()
