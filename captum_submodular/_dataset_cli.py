"""``captum-submodular explain-dataset``: argument parsing and the run (see :mod:`.dataset`).

Wired into :mod:`captum_submodular.cli` with::

    from ._dataset_cli import add_explain_dataset_parser, run_explain_dataset
    add_explain_dataset_parser(sub)                      # in build_parser()
    _COMMANDS["explain-dataset"] = run_explain_dataset   # the dispatch table

User errors raise ``ValueError`` (printed as ``error: ...``, exit code 2 by the CLI).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from typing import Any

from .cli import _positive_int
from .search import DEFAULT_SEARCH, SEARCHES

__all__ = ["add_explain_dataset_parser", "run_explain_dataset"]

_DESCRIPTION = """\
Explain every image of FOLDER (recursively: .jpg .jpeg .png .bmp .gif .tif .tiff .webp)
with SubmodularAttribution and write one Parquet record per image to DIR/records/
(ordered regions, search and pixel-grid insertion/deletion curves and areas, minimal
subset size, model evaluations, seconds, the compressed attribution map, status and
error). Records are written batch by batch: re-running the same command skips the
images that already have a record (resume after a crash). An unreadable image becomes
a failed record with its reason and the job goes on.

Labels for --target label come from ImageNet-style file names
imagenet_<index>_<label>.jpg (e.g. imagenet_03_990.jpg -> class 990).

With --ray the images are spread over a Ray Data actor pool (one model per actor,
--workers actors), locally or on the cluster at --ray-address (image files must be
readable by the workers). Needs: pip install 'captum_submodular[ray]'.
"""

_EPILOG = """\
examples:
  captum-submodular explain-dataset photos/ --out runs/photos
  captum-submodular explain-dataset photos/ --out runs/photos --ray --workers 2
  captum-submodular explain-dataset /shared/val --out /shared/runs/val --ray-address auto --num-gpus 1
  captum-submodular explain-dataset photos/ --out runs/p --regions grid --n-regions 16 --no-metrics

read the records with:
  python -c "from captum_submodular.dataset import read_records; print(read_records('runs/photos').to_pandas())"
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_explain_dataset_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``explain-dataset`` sub-command to an argparse ``subparsers`` object.

    Sets ``func=run_explain_dataset`` as a default too, for CLIs that dispatch on it.
    """
    p = subparsers.add_parser(
        "explain-dataset", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="explain a whole folder of images into Parquet records (resumable; optional Ray)",
        description=_DESCRIPTION, epilog=_EPILOG)
    p.add_argument("folder", metavar="FOLDER", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (records in DIR/records/)")
    g = p.add_argument_group("execution")
    g.add_argument("--ray", action="store_true", help="run on Ray Data (a local Ray unless --ray-address)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster address (e.g. 'auto' or 'ray://head:10001'); implies --ray")
    g.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="Ray actors (each loads the model once). Default: as many as the free CPUs "
                        "(or GPUs with --num-gpus) allow. Without Ray only 1 is possible")
    g.add_argument("--num-gpus", type=_positive_float, default=None, metavar="G",
                   help="GPUs per Ray actor (ignored where the cluster has none)")
    g.add_argument("--num-cpus", type=_positive_float, default=None, metavar="C",
                   help="CPUs per Ray actor (default 1; torch uses that many threads)")
    g.add_argument("--batch-size", type=_positive_int, default=4, metavar="B",
                   help="images per batch = per Parquet part file (a crash loses at most the batches in flight)")
    g.add_argument("--device", default="auto", help="'auto' (CUDA when a worker has a GPU), 'cpu' or 'cuda'")
    g.add_argument("--retry-failed", action="store_true", help="re-run images whose existing record failed")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="efficientnet_lite0", metavar="NAME",
                   help="efficientnet_lite0 (default, offline) or a torchvision model in the local torch hub cache")
    g.add_argument("--model-factory", default=None, metavar="MODULE:FUNC",
                   help="a callable 'package.module:function' or 'path/to/file.py:function' that takes no "
                        "arguments and returns an object with .model, .preprocess and optionally .name "
                        "(imported on every worker)")
    g = p.add_argument_group("method")
    g.add_argument("--regions", choices=("slic", "grid", "prior"), default="slic",
                   help="SLIC superpixels, a square grid, or Grad-CAM-guided cells")
    g.add_argument("--n-regions", type=_positive_int, default=49, metavar="N", help="regions asked for per image")
    g.add_argument("--search", default=DEFAULT_SEARCH, choices=tuple(SEARCHES),
                   help=f"search strategy (default: {DEFAULT_SEARCH})")
    g.add_argument("--target", default="predicted", metavar="predicted|label|INDEX",
                   help="class explained: the prediction, the file-name label, or a fixed class index")
    g.add_argument("--perturbations-per-eval", type=_positive_int, default=64, metavar="B",
                   help="perturbed images per model call")
    g.add_argument("--metric-steps", type=_positive_int, default=50, metavar="K",
                   help="steps of the pixel-grid insertion/deletion curves")
    g.add_argument("--no-metrics", action="store_true",
                   help="skip the pixel-grid insertion/deletion metrics (saves 2×(K+1) model inputs per image)")
    p.set_defaults(func=run_explain_dataset)
    return p


def run_explain_dataset(args: argparse.Namespace) -> int:
    """Run ``explain-dataset``; prints the summary line; returns 0 (or 1 if every image failed)."""
    import os

    from .dataset import RegionsConfig, default_model_factory, explain_dataset

    if not os.path.isdir(args.folder):
        raise ValueError(f"{args.folder}: not a folder")
    use_ray = bool(args.ray or args.ray_address)
    if use_ray and importlib.util.find_spec("ray") is None:
        raise ValueError("--ray needs Ray Data: pip install 'captum_submodular[ray]' (or pip install 'ray[data]')")
    if not use_ray and args.workers not in (None, 1):
        raise ValueError(f"--workers {args.workers} needs --ray (pip install 'captum_submodular[ray]'); "
                         "without Ray the images are explained in this process, one at a time")
    if importlib.util.find_spec("pyarrow") is None:
        raise ValueError("explain-dataset writes Parquet and needs pyarrow: pip install pyarrow "
                         "(or pip install 'captum_submodular[ray]')")
    target: Any = args.target
    if target not in ("predicted", "label"):
        try:
            target = int(target)
        except ValueError:
            raise ValueError(f"--target must be 'predicted', 'label' or a class index, got {args.target!r}") from None
    if args.model_factory:
        from .demo import load_model_factory

        load_model_factory(args.model_factory)  # fail early, here, on a bad spec
    if args.n_regions < 2:
        raise ValueError(f"--n-regions must be at least 2, got {args.n_regions}")
    factory = functools.partial(default_model_factory, args.model, args.model_factory)
    summary = explain_dataset(
        args.folder, factory, out_dir=args.out,
        regions=RegionsConfig(args.regions, args.n_regions), search=args.search, target=target,
        metrics=() if args.no_metrics else ("insertion", "deletion"), metric_steps=args.metric_steps,
        perturbations_per_eval=args.perturbations_per_eval, ray=use_ray, ray_address=args.ray_address,
        batch_size=args.batch_size, concurrency=args.workers, num_gpus=args.num_gpus, num_cpus=args.num_cpus,
        device=args.device, retry_failed=args.retry_failed, progress=not args.no_progress,
    )
    print(summary.line())
    if summary.failed and not summary.done and not summary.skipped:
        print("error: every image failed; see the 'error' column of the records", file=sys.stderr)
        return 1
    return 0
