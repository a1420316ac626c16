"""Search benchmark: model evaluations, time and faithfulness of the searches and of
Captum baselines, all measured in one run on EfficientNet-Lite0 (CPU).

    python benchmarks/bench_search.py --size quick            # 4 images
    python benchmarks/bench_search.py --size full             # 20 images
    python benchmarks/bench_search.py --size quick --images 2 --exact-max-m 60 --out results.json

Per image and method it records the model evaluations (rows seen by a counting
wrapper around the model's forward, metric evaluations excluded), wall seconds, and
pixel-grid insertion / deletion (captum_submodular.metrics, 50 steps, softmax of the
label, substrate = baseline 0).  Plain greedy and bidirectional are run only where
``m ≤ --exact-max-m`` and on the first ``--exact-images`` images (they cost m(m+1)
evaluations); the tables say on how many images each cell was measured and compare
methods on the images they share.

Side measurements (``--extras``): overhead per composed input against the bare model's
batched forward, peak memory vs m at fixed perturbations_per_eval (small model, fresh
subprocess per setting, peak RSS), and throughput of a batch of examples in one call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Dict, List

import torch
from captum.attr import FeatureAblation, KernelShap, Occlusion

from captum_submodular import SubmodularAttribution
from captum_submodular.data import imagenet_samples
from captum_submodular.metrics import deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.regions import grid_mask, slic_mask

PPE = 64


class Counted(torch.nn.Module):
    """Counts the rows the model sees and the seconds spent inside the model."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0
        self.model_seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        t = time.perf_counter()
        out = self.model(x)
        self.model_seconds += time.perf_counter() - t
        return out


def measure(model: Counted, x, label, fn) -> Dict[str, float]:
    model.rows = 0
    t = time.perf_counter()
    attr = fn()
    sec = time.perf_counter() - t
    evals = model.rows
    with torch.no_grad():
        ins = float(insertion(model, x, attr, target=label, n_steps=50, perturbations_per_eval=PPE)[0])
        dele = float(deletion(model, x, attr, target=label, n_steps=50, perturbations_per_eval=PPE)[0])
    return dict(evals=evals, sec=sec, ins=ins, dele=dele)


def run_main(args, out: Dict) -> None:
    lm = load_model()
    model = Counted(lm.model.eval())
    n_images = args.images or (4 if args.size == "quick" else 20)
    samples = imagenet_samples()[args.skip : args.skip + n_images]
    out["images"] = [s.name for s in samples]
    recs: List[Dict] = out.setdefault("records", [])
    for ii, s in enumerate(samples):
        x = lm.preprocess(s.image)[None]
        label = int(s.label)
        masks = {f"slic{n}": slic_mask(x[0], n_segments=n) for n in args.segments}
        if not args.no_grid:
            masks["grid14"] = grid_mask(224, 224, grid=14)
        for mname, mask in masks.items():
            m = int(mask.max()) + 1
            for search in args.searches:
                exact = search in ("greedy", "bidirectional")
                if exact and (m > args.exact_max_m or ii >= args.exact_images):
                    continue
                attributor = SubmodularAttribution(model, search=search)
                r = measure(
                    model,
                    x,
                    label,
                    lambda: attributor.attribute(x, target=label, feature_mask=mask, perturbations_per_eval=PPE),
                )
                recs.append(dict(image=s.name, mask=mname, m=m, method=search, **r))
                print(json.dumps(recs[-1]), flush=True)
        if not args.no_baselines:
            occ = Occlusion(model)
            r = measure(
                model,
                x,
                label,
                lambda: occ.attribute(
                    x,
                    target=label,
                    sliding_window_shapes=(3, 15, 15),
                    strides=8,
                    baselines=0,
                    perturbations_per_eval=PPE,
                ),
            )
            recs.append(dict(image=s.name, mask="window15s8", m=0, method="occlusion", **r))
            print(json.dumps(recs[-1]), flush=True)
            mask = masks.get("slic49", next(iter(masks.values())))
            m = int(mask.max()) + 1
            fa = FeatureAblation(model)
            r = measure(
                model,
                x,
                label,
                lambda: fa.attribute(x, target=label, feature_mask=mask, baselines=0, perturbations_per_eval=PPE),
            )
            recs.append(dict(image=s.name, mask="slic49", m=m, method="feature_ablation", **r))
            print(json.dumps(recs[-1]), flush=True)
            ks = KernelShap(model)
            r = measure(
                model,
                x,
                label,
                lambda: ks.attribute(
                    x,
                    target=label,
                    feature_mask=mask,
                    baselines=0,
                    n_samples=args.shap_samples,
                    perturbations_per_eval=PPE,
                ),
            )
            recs.append(dict(image=s.name, mask="slic49", m=m, method="kernel_shap", **r))
            print(json.dumps(recs[-1]), flush=True)
        json.dump(out, open(args.out, "w"), indent=1)


def run_extras(args, out: Dict) -> None:
    lm = load_model()
    model = Counted(lm.model.eval())
    samples = imagenet_samples()[: args.batch_images]
    xs = torch.stack([lm.preprocess(s.image) for s in samples])
    labels = [int(s.label) for s in samples]
    # 1. Overhead: everything outside the model's own forward calls (composition, scoring,
    #    caching, the search) relative to the time inside them, in the same run and with
    #    the same batches the search produced.
    x = xs[:1]
    mask = slic_mask(x[0], n_segments=49)
    overhead = {}
    for search in ("accelerated", "greedy"):
        attributor = SubmodularAttribution(model, search=search)
        model.rows, model.model_seconds = 0, 0.0
        t = time.perf_counter()
        attributor.explain(x, target=labels[0], feature_mask=mask, perturbations_per_eval=PPE)
        total = time.perf_counter() - t
        overhead[search] = dict(
            evals=model.rows,
            total_sec=total,
            model_sec=model.model_seconds,
            overhead=(total - model.model_seconds) / model.model_seconds,
            m=int(mask.max()) + 1,
        )
    out["overhead"] = overhead
    print(json.dumps(out["overhead"]), flush=True)
    # 2. Batch of examples in one call vs one call per example.
    masks = torch.cat([slic_mask(xi, n_segments=25) for xi in xs])
    t = time.perf_counter()
    model.rows = 0
    attributor = SubmodularAttribution(model, search="accelerated")
    attributor.explain(xs, target=labels, feature_mask=masks, perturbations_per_eval=PPE)
    batched = time.perf_counter() - t
    rows_b = model.rows
    t = time.perf_counter()
    model.rows = 0
    for i in range(len(xs)):
        attributor.explain(xs[i : i + 1], target=labels[i], feature_mask=masks[i : i + 1], perturbations_per_eval=PPE)
    single = time.perf_counter() - t
    out["batching"] = dict(
        n=len(xs),
        sec_one_call=batched,
        sec_single_calls=single,
        speedup=single / batched,
        evals_one_call=rows_b,
        evals_single=model.rows,
    )
    print(json.dumps(out["batching"]), flush=True)
    # 3. Peak memory vs m, fixed perturbations_per_eval (fresh process per setting).
    mem = []
    for grid, ppe in ((10, 16), (20, 16), (20, 64)):
        res = subprocess.run(
            [sys.executable, __file__, "--memory-probe", f"{grid},{ppe}"], capture_output=True, text=True, check=True
        )
        mem.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(mem[-1]), flush=True)
    out["memory"] = mem


def memory_probe(spec: str) -> None:
    """Small conv model on a 3×160×160 input, grid×grid regions; prints peak RSS growth."""
    grid, ppe = (int(v) for v in spec.split(","))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(128, 10),
    ).eval()
    x = torch.randn(1, 3, 160, 160)
    mask = grid_mask(160, 160, grid=grid)
    with torch.no_grad():
        model(x.repeat(ppe, 1, 1, 1))  # warm the allocator with one batch of the same size
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    res = SubmodularAttribution(model, search="accelerated").explain(
        x, target=0, feature_mask=mask, perturbations_per_eval=ppe
    )[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            dict(
                m=grid * grid,
                perturbations_per_eval=ppe,
                evals=res.n_evaluations,
                sec=time.perf_counter() - t,
                peak_rss_growth_mib=(peak - base) / 1024,
                input_mib=x.numel() * 4 / 2**20,
            )
        )
    )


def main() -> None:
    global PPE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("quick", "full"), default="quick")
    ap.add_argument("--images", type=int, default=0, help="override the image count of --size")
    ap.add_argument("--skip", type=int, default=0, help="start after this many images (to split a run)")
    ap.add_argument("--segments", type=int, nargs="+", default=[25, 49, 100])
    ap.add_argument("--searches", nargs="+", default=["accelerated", "greedy", "bidirectional"])
    ap.add_argument(
        "--exact-max-m",
        type=int,
        default=60,
        help="run greedy/bidirectional only on masks with at most this many regions",
    )
    ap.add_argument(
        "--exact-images", type=int, default=1000, help="run greedy/bidirectional only on the first N images"
    )
    ap.add_argument("--shap-samples", type=int, default=1000)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--no-grid", action="store_true", help="skip the 14×14 grid (196 regions)")
    ap.add_argument("--extras", action="store_true", help="overhead, memory and batching measurements")
    ap.add_argument("--no-main", action="store_true")
    ap.add_argument("--batch-images", type=int, default=8)
    ap.add_argument(
        "--ppe",
        type=int,
        default=PPE,
        help="perturbations_per_eval of every method (16 is fastest per image on a 2-core CPU)",
    )
    ap.add_argument("--out", default="bench_search.json")
    ap.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe)
        return
    PPE = args.ppe
    out: Dict = dict(
        args=vars(args),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        nproc=os.cpu_count(),
        platform=platform.platform(),
    )
    if not args.no_main:
        run_main(args, out)
    if args.extras:
        run_extras(args, out)
    json.dump(out, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
