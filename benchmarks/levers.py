"""Levers of issue 8, measured side by side on the same images in one run.

For each image, the accelerated search runs on several region sets and objective
weights; every map is scored by the pixel-grid protocol (insertion from the baseline,
insertion from a blurred start, deletion; 50 steps, softmax, baseline 0), with and
without ``within_region="gradient"`` (one search serves both maps).  Integrated
Gradients (32 steps) is scored alongside as the deletion reference.

    python benchmarks/levers.py --imagenet 0 4 --skimage chelsea coffee

Prints one JSON line per (image, configuration) and writes them to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from captum.attr import IntegratedGradients

from captum_submodular import SubmodularAttribution
from captum_submodular.data import imagenet_samples, skimage_samples
from captum_submodular.metrics import curve_area, deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.objective import ObjectiveWeights
from captum_submodular.regions import grid_mask, slic_mask

CONFIGS = {
    # name: (regions, weights)
    "slic49": ("slic:49", ObjectiveWeights()),
    "slic49_w20_20": ("slic:49", ObjectiveWeights(consistency=20.0, collaboration=20.0)),
    "slic100": ("slic:100", ObjectiveWeights()),
    "slic100_w20_20": ("slic:100", ObjectiveWeights(consistency=20.0, collaboration=20.0)),
    "grid14": ("grid:14", ObjectiveWeights()),
    "grid7": ("grid:7", ObjectiveWeights()),
}


def make_mask(spec: str, x: torch.Tensor) -> torch.Tensor:
    kind, n = spec.split(":")
    if kind == "slic":
        return slic_mask(x[0], n_segments=int(n))
    return grid_mask(x.shape[-2], x.shape[-1], grid=(int(n), int(n)))


def _region_area(curve: torch.Tensor) -> float:
    """Area under the search's own curve: one step per region, equal steps over [0, 1]."""
    c = curve.double()[None]
    return round(float(curve_area(torch.linspace(0.0, 1.0, c.shape[1], dtype=torch.float64)[None], c)), 4)


def scores(model, x, a, target) -> dict:
    return {
        "ins": round(insertion(model, x, a, target=target).item(), 4),
        "blur": round(insertion(model, x, a, target=target, substrate="blur").item(), 4),
        "del": round(deletion(model, x, a, target=target).item(), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imagenet", type=int, nargs="*", default=[0, 4])
    ap.add_argument("--skimage", nargs="*", default=["chelsea", "coffee"])
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--search", default="accelerated")
    ap.add_argument("--out", default=os.path.join("outputs", "levers.jsonl"))
    args = ap.parse_args()
    torch.manual_seed(0)
    loaded = load_model()
    model = loaded.model
    images = [imagenet_samples()[i] for i in args.imagenet]
    images += [s for s in skimage_samples() if s.name in args.skimage]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "a") as fh:
        for s in images:
            x = loaded.preprocess(s.image)[None]
            with torch.no_grad():
                target = int(model(x).argmax()) if s.label is None else s.label
            t0 = time.time()
            ig = IntegratedGradients(model).attribute(x, target=target, n_steps=32, internal_batch_size=32)
            rows = [
                dict(
                    image=s.name,
                    config="IntegratedGradients",
                    seconds=round(time.time() - t0, 1),
                    **scores(model, x, ig, target),
                )
            ]
            for name in args.configs:
                spec, weights = CONFIGS[name]
                mask = make_mask(spec, x)
                sa = SubmodularAttribution(model, search=args.search, weights=weights, within_region="gradient")
                t0 = time.time()
                (res,) = sa.explain(x, target=target, feature_mask=mask, perturbations_per_eval=16)
                sec = round(time.time() - t0, 1)
                plain = res.region_values.float()[torch.searchsorted(res.region_ids, mask)].expand_as(x)
                base = dict(
                    image=s.name,
                    config=name,
                    m=int(res.region_ids.numel()),
                    evaluations=int(res.n_evaluations),
                    seconds=sec,
                    region_ins=_region_area(res.insertion_curve),
                    region_del=_region_area(res.deletion_curve),
                )
                rows.append(dict(base, map="plain", **scores(model, x, plain, target)))
                rows.append(dict(base, map="gradient", **scores(model, x, res.attributions, target)))
            for row in rows:
                print(json.dumps(row), flush=True)
                fh.write(json.dumps(row) + "\n")
            fh.flush()


if __name__ == "__main__":
    main()
