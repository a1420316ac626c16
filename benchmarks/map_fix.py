"""Issue 20: the gain map before and after the fix, on the same searched orders.

The fix changes only how the map is read off the curves (regions that change neither
curve get exactly 0 and leave the isotonic fit), not the search, so each image is
searched once with the default (``SubmodularAttribution(model)``: the two-sided search,
weights 20 / 5 / 0.01) and both maps are built from the same result's curves: the new
one by the package, the old one by the ``gain_map`` of commit ``OLD`` (read from git).
Protocol of BENCHMARKS.md §1–2: EfficientNet-Lite0, the 20 ImageNet samples and the 4
scikit-image photos, SLIC 49 (``slic_mask(x[0], n_segments=49)``), the predicted class,
pixel-grid insertion (baseline 0), blurred insertion and deletion, 50 steps, softmax.

    python benchmarks/map_fix.py                   # → benchmarks/results/map_fix.jsonl, table on stdout
    python benchmarks/map_fix.py --merge           # the table again from the JSONL
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import types

import numpy as np
import torch

from captum_submodular import SubmodularAttribution
from captum_submodular.data import imagenet_samples, skimage_samples
from captum_submodular.maps import no_effect
from captum_submodular.metrics import deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.regions import slic_mask

OLD = "fda3181"  # the last commit with the previous gain map
OUT = os.path.join("benchmarks", "results", "map_fix.jsonl")


def old_gain_map() -> types.FunctionType:
    source = subprocess.run(["git", "show", f"{OLD}:captum_submodular/maps.py"], check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("old_maps")
    exec(compile(source, "old_maps.py", "exec"), module.__dict__)  # noqa: S102 - our own file, from git
    return module.gain_map


def scores(model: torch.nn.Module, x: torch.Tensor, a: torch.Tensor, target: int) -> dict:
    kw = dict(n_steps=50, perturbations_per_eval=16)
    return dict(ins=float(insertion(model, x, a, target, **kw)),
                ins_blur=float(insertion(model, x, a, target, substrate="blur", **kw)),
                dele=float(deletion(model, x, a, target, **kw)))


def run(path: str) -> None:
    torch.set_num_threads(1)
    old_map = old_gain_map()
    lm = load_model()
    model = lm.model.eval()
    done = {json.loads(line)["image"] for line in open(path)} if os.path.exists(path) else set()
    samples = [("skimage", s) for s in skimage_samples()] + [("imagenet", s) for s in imagenet_samples()]
    for dataset, s in samples:
        if s.name in done:
            continue
        x = lm.preprocess(s.image)[None]
        mask = slic_mask(x[0], n_segments=49)
        with torch.no_grad():
            target = int(model(x).argmax())
        sa = SubmodularAttribution(model)
        (res,) = sa.explain(x, target=target, feature_mask=mask, perturbations_per_eval=16)
        ins, dele = res.insertion_curve, res.deletion_curve
        resolution = 8.0 * float(torch.finfo(torch.float32).eps) * max(1.0, float(ins.abs().max()))
        position = torch.searchsorted(res.region_ids, res.order)
        old_values = torch.empty_like(res.region_values)
        old_values[position] = old_map(ins, dele, resolution)
        region_index = torch.searchsorted(res.region_ids, mask)
        a_old = old_values.float()[region_index].expand_as(x).clone()
        rec = dict(dataset=dataset, image=s.name, m=int(res.region_ids.numel()), target=target,
                   zeros_new=int((res.region_values == 0).sum()), zeros_old=int((old_values == 0).sum()),
                   no_effect=int(no_effect(ins, dele, resolution).sum()),
                   same_map=bool(torch.equal(old_values, res.region_values)),
                   new=scores(model, x, res.attributions, target), old=scores(model, x, a_old, target))
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


def merge(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    for dataset in ("imagenet", "skimage"):
        rs = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["image"])
        if not rs:
            continue
        half = len(rs) // 2
        print(f"\n{dataset}: {len(rs)} images; maps identical on {sum(r['same_map'] for r in rs)}; "
              f"regions without effect in all: {sum(r['no_effect'] for r in rs)} of {sum(r['m'] for r in rs)}")
        print("| metric | old map | new map | new − old (mean) | images better / worse | halves |")
        print("|---|---:|---:|---:|---:|---|")
        for key, label, sign in (("ins", "insertion ↑", 1), ("ins_blur", "blurred insertion ↑", 1),
                                 ("dele", "deletion ↓", -1)):
            old = np.array([r["old"][key] for r in rs])
            new = np.array([r["new"][key] for r in rs])
            d = new - old
            better, worse = int((d * sign > 0).sum()), int((d * sign < 0).sum())
            halves = f"{d[:half].mean():+.4f} / {d[half:].mean():+.4f}"
            print(f"| {label} | {old.mean():.4f} | {new.mean():.4f} | {d.mean():+.4f} | {better} / {worse} | {halves} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merge", action="store_true", help="only print the table from the JSONL")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    if not args.merge:
        run(args.out)
    merge(args.out)
