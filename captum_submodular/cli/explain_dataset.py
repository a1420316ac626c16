"""``captum-submodular explain-dataset``: a folder of images into Parquet records (see :mod:`..dataset`).

User errors raise ``ValueError`` (printed as ``error: ...``, exit code 2 by the CLI).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from typing import Any

from ._options import (
    Formatter,
    add_metric_options,
    add_model_options,
    add_output_options,
    add_region_options,
    add_search_options,
    deprecated_alias,
    positive_float,
    positive_int,
)

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


def add_explain_dataset_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``explain-dataset`` sub-command to an argparse ``subparsers`` object
    (``func=run_explain_dataset`` is set as its default)."""
    p = subparsers.add_parser(
        "explain-dataset",
        formatter_class=Formatter,
        help="explain a whole folder of images into Parquet records (resumable; optional Ray)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
    p.add_argument("folder", metavar="FOLDER", help="folder of images (searched recursively)")
    g = p.add_argument_group("execution")
    g.add_argument("--ray", action="store_true", help="run on Ray Data (a local Ray unless --ray-address)")
    g.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="Ray cluster address (e.g. 'auto' or 'ray://head:10001'); implies --ray",
    )
    g.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="Ray actors (each loads the model once). Default: as many as the free CPUs "
        "(or GPUs with --num-gpus) allow. Without Ray only 1 is possible",
    )
    g.add_argument(
        "--num-gpus",
        type=positive_float,
        default=None,
        metavar="G",
        help="GPUs per Ray actor (ignored where the cluster has none)",
    )
    g.add_argument(
        "--num-cpus",
        type=positive_float,
        default=None,
        metavar="C",
        help="CPUs per Ray actor (default 1; torch uses that many threads)",
    )
    g.add_argument(
        "--images-per-part",
        type=positive_int,
        default=4,
        metavar="N",
        help="images per batch = per Parquet part file; a crash loses at most the batches in "
        "flight (default: %(default)s)",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        dest="images_per_part",
        metavar="N",
        action=deprecated_alias(
            "--images-per-part", "images per Parquet part; --batch-size now means nothing else anywhere"
        ),
        help=argparse.SUPPRESS,
    )
    g.add_argument("--retry-failed", action="store_true", help="re-run images whose existing record failed")
    add_model_options(p, device_default="auto")
    g = p.add_argument_group("method")
    add_region_options(g, 49)
    add_search_options(g, batch_alias=False)
    g.add_argument(
        "--target",
        default="predicted",
        metavar="predicted|label|INDEX",
        help="class explained: the prediction (default), the file-name label, or a fixed class index",
    )
    add_metric_options(g, old_spellings=("--metric-steps",))
    g.add_argument(
        "--no-metrics",
        action="store_true",
        help="skip the pixel-grid insertion/deletion metrics (saves 2×K model inputs per image)",
    )
    add_output_options(p, None, required=True)
    p.set_defaults(func=run_explain_dataset)
    return p


def run_explain_dataset(args: argparse.Namespace) -> int:
    """Run ``explain-dataset``; prints the summary line; returns 0 (or 1 if every image failed)."""
    import os

    from ..dataset import RegionsConfig, default_model_factory, explain_dataset

    if not os.path.isdir(args.folder):
        raise ValueError(f"{args.folder}: not a folder")
    use_ray = bool(args.ray or args.ray_address)
    if use_ray and importlib.util.find_spec("ray") is None:
        raise ValueError("--ray needs Ray Data: pip install 'captum_submodular[ray]' (or pip install 'ray[data]')")
    if not use_ray and args.workers not in (None, 1):
        raise ValueError(
            f"--workers {args.workers} needs --ray (pip install 'captum_submodular[ray]'); "
            "without Ray the images are explained in this process, one at a time"
        )
    if importlib.util.find_spec("pyarrow") is None:
        raise ValueError(
            "explain-dataset writes Parquet and needs pyarrow: pip install pyarrow "
            "(or pip install 'captum_submodular[ray]')"
        )
    target: Any = args.target
    if target not in ("predicted", "label"):
        try:
            target = int(target)
        except ValueError:
            raise ValueError(f"--target must be 'predicted', 'label' or a class index, got {args.target!r}") from None
    if args.model_factory:
        from ..models import load_model_factory

        load_model_factory(args.model_factory)  # fail early, here, on a bad spec
    from ._options import check_region_count

    check_region_count(args.n_regions, args.search)
    factory = functools.partial(default_model_factory, args.model, args.model_factory)
    summary = explain_dataset(
        args.folder,
        factory,
        out_dir=args.out,
        regions=RegionsConfig(args.regions, args.n_regions, grid=args.grid),
        search=args.search,
        target=target,
        metrics=() if args.no_metrics else ("insertion", "deletion"),
        metric_steps=args.n_steps,
        perturbations_per_eval=args.perturbations_per_eval,
        ray=use_ray,
        ray_address=args.ray_address,
        batch_size=args.images_per_part,
        concurrency=args.workers,
        num_gpus=args.num_gpus,
        num_cpus=args.num_cpus,
        device=args.device,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
    )
    print(summary.line())
    if summary.failed and not summary.done and not summary.skipped:
        print("error: every image failed; see the 'error' column of the records", file=sys.stderr)
        return 1
    return 0
