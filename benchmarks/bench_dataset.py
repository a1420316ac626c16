"""Throughput of ``explain_dataset``: in-process vs Ray Data with 1 and 2 actors.

Real model (EfficientNet-Lite0 via ``load_model``, CPU), the first ``--images``
bundled ImageNet samples (``imagenet_samples()``, copied to a temporary folder),
SLIC regions (``--n-regions``, default 25), the bidirectional search, and by default
no pixel-grid metrics (``--metrics`` adds them: 2 × 51 more model inputs per image).

Runs, each into a fresh output folder:

* ``in-process``   — one process, torch's default threads;
* ``ray, 1 actor`` — Ray Data actor pool of 1 actor with ``num_cpus = os.cpu_count()``
  (so torch gets the same number of threads as in-process: the difference is Ray's
  overhead);
* ``ray, 2 actors`` — 2 actors, ``num_cpus = cpu_count / 2`` each.

For each run: wall time of the ``explain_dataset`` call (model loading and actor start
included), images per minute, the sum of per-image ``seconds`` (the work itself) and
the fixed overhead = wall − per-image time / workers.  ``ray.init`` is timed apart.

    python benchmarks/bench_dataset.py                      # 4 images, 25 SLIC regions
    python benchmarks/bench_dataset.py --images 2 --no-ray  # in-process only
    python benchmarks/bench_dataset.py --runs ray1 in-process ray2 in-process   # other orders, repeats
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time

import torch

from captum_submodular.data import imagenet_samples
from captum_submodular.dataset import RegionsConfig, default_model_factory, explain_dataset, read_records


def _loadavg() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def _run(label: str, folder: str, workdir: str, args: argparse.Namespace, **kw) -> dict:
    out = os.path.join(workdir, label.replace(" ", "_").replace(",", ""))
    factory = functools.partial(default_model_factory, "efficientnet_lite0")
    summary = explain_dataset(
        folder,
        factory,
        out_dir=out,
        regions=RegionsConfig("slic", args.n_regions),
        search=args.search,
        metrics=("insertion", "deletion") if args.metrics else (),
        perturbations_per_eval=64,
        batch_size=1,
        progress=False,
        **kw,
    )
    recs = read_records(out, columns=["seconds", "n_evaluations", "metric_evaluations", "n_regions"]).to_pylist()
    per_image = sum(r["seconds"] for r in recs)
    evals = sum((r["n_evaluations"] or 0) + (r["metric_evaluations"] or 0) for r in recs)
    row = {
        "run": label,
        "workers": summary.workers,
        "images": summary.done + summary.failed,
        "failed": summary.failed,
        "wall_s": summary.seconds,
        "images_per_min": summary.images_per_minute,
        "per_image_s_sum": per_image,
        "overhead_s": summary.seconds - per_image / max(1, summary.workers),
        "evals": evals,
        "regions": sorted({r["n_regions"] for r in recs if r["n_regions"]}),
        "loadavg_after": _loadavg(),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=4, help="bundled ImageNet samples to explain")
    p.add_argument("--n-regions", type=int, default=25, help="SLIC regions asked for")
    p.add_argument("--search", default="bidirectional")
    p.add_argument("--metrics", action="store_true", help="also compute the pixel-grid insertion/deletion")
    p.add_argument(
        "--runs",
        nargs="+",
        default=["in-process", "ray1", "ray2"],
        choices=["in-process", "ray1", "ray2"],
        help="runs, in this order (repeats allowed)",
    )
    p.add_argument("--no-ray", action="store_true", help="only the in-process run")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    cpus = os.cpu_count() or 1
    workdir = tempfile.mkdtemp(prefix="bench_dataset_")
    folder = os.path.join(workdir, "images")
    os.makedirs(folder)
    for s in imagenet_samples(limit=args.images):
        shutil.copy(s.path, folder)
    print(
        f"# {args.images} images, slic:{args.n_regions}, search={args.search}, metrics={args.metrics}, "
        f"{cpus} CPUs, torch threads {torch.get_num_threads()}, load average before {_loadavg()}",
        flush=True,
    )
    runs = ["in-process"] if args.no_ray else list(args.runs)
    if cpus < 2:
        runs = [r for r in runs if r != "ray2"]
    rows, ray_init_s, ray_up = [], None, False
    try:
        for i, name in enumerate(runs):
            if name == "in-process":
                rows.append(_run(f"in-process #{i + 1}", folder, workdir, args))
                continue
            if not ray_up:
                import ray

                t = time.perf_counter()
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                ray_init_s, ray_up = time.perf_counter() - t, True
            if name == "ray1":
                rows.append(
                    _run(f"ray, 1 actor #{i + 1}", folder, workdir, args, ray=True, concurrency=1, num_cpus=cpus)
                )
            else:
                rows.append(
                    _run(f"ray, 2 actors #{i + 1}", folder, workdir, args, ray=True, concurrency=2, num_cpus=cpus // 2)
                )
    finally:
        if ray_up:
            import ray

            ray.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)

    print()
    print("| run | workers | images | wall s | images/min | Σ per-image s | fixed overhead s | model inputs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['run']} | {r['workers']} | {r['images']} | {r['wall_s']:.1f} | {r['images_per_min']:.2f} | "
            f"{r['per_image_s_sum']:.1f} | {r['overhead_s']:.1f} | {r['evals']} |"
        )
    if ray_init_s is not None:
        print(f"\nray.init(num_cpus={cpus}): {ray_init_s:.1f} s (not included above)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "ray_init_s": ray_init_s}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
