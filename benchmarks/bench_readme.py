"""The README's usage example, timed with the old defaults and with the new ones, side by side.

Old defaults (the first release): ``perturbations_per_eval=1`` and ``search="bidirectional"``.
New defaults: ``perturbations_per_eval=None`` (automatic) and the package's ``DEFAULT_SEARCH``.
Both run the README's two calls (Occlusion-style ``attribute`` with 32-pixel windows, then
``explain`` on SLIC-49) on the same image, alternating, ``--repeats`` times each.

    OMP_NUM_THREADS=2 python benchmarks/bench_readme.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from captum_submodular import SubmodularAttribution
from captum_submodular.data import bundled_images
from captum_submodular.models import load_model
from captum_submodular.regions import build_regions
from captum_submodular.search import DEFAULT_SEARCH


def run(loaded, x, target, mask, search, ppe):
    sa = SubmodularAttribution(loaded.model, search=search)
    start = time.perf_counter()
    sa.attribute(x, target=target, sliding_window_shapes=(3, 32, 32), perturbations_per_eval=ppe, show_progress=False)
    (result,) = sa.explain(x, target=target, feature_mask=mask, perturbations_per_eval=ppe, show_progress=False)
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--image", default="imagenet_00")
    args = ap.parse_args()
    loaded = load_model()
    x = loaded.preprocess(bundled_images([args.image])[0].image).unsqueeze(0)
    with torch.no_grad():
        target = int(loaded.model(x).argmax())
    mask = build_regions("slic", x, n=49)
    configs = {
        "old defaults (bidirectional, ppe=1)": ("bidirectional", 1),
        f"new defaults ({DEFAULT_SEARCH}, ppe=auto)": (DEFAULT_SEARCH, None),
    }
    times = {name: [] for name in configs}
    evals = {}
    for _ in range(args.repeats):
        for name, (search, ppe) in configs.items():
            seconds, result = run(loaded, x, target, mask, search, ppe)
            times[name].append(seconds)
            evals[name] = int(result.n_evaluations)
    print(f"| configuration | seconds (min of {args.repeats}) | explain evaluations |")
    print("|---|---:|---:|")
    for name in configs:
        print(f"| {name} | {min(times[name]):.1f} | {evals[name]:,} |")
    print(json.dumps({"threads": torch.get_num_threads(), "times": times, "evaluations": evals}))


if __name__ == "__main__":
    main()
