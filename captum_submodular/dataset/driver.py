"""The driver of :func:`explain_dataset`: in this process or on Ray, resumable, one part file per batch."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..pipeline import check_curve_metrics
from ..search import DEFAULT_SEARCH
from .records import _RECORDS_DIR, PartWriter, _require_pyarrow, existing_status
from .sources import IMAGE_EXTENSIONS, NotDone, is_ray_dataset, items_from, parse_imagenet_label
from .worker import DatasetExplainer, RegionsConfig, RegionsSpec, _Config, default_model_factory

__all__ = ["DatasetSummary", "explain_dataset"]

_CONFIG_FILE = "config.json"


def _regions_name(regions: RegionsSpec) -> str:
    if isinstance(regions, RegionsConfig):
        return regions.describe()
    name = getattr(regions, "__name__", None) or type(regions).__name__
    return f"callable:{name}"


def _check_config_file(out_dir: str, cfg: _Config) -> None:
    desc = {
        "regions": _regions_name(cfg.regions),
        "search": cfg.search if isinstance(cfg.search, str) else type(cfg.search).__name__,
        "weights": None if cfg.weights is None else repr(cfg.weights),
        "target": cfg.target,
        "metrics": list(cfg.metrics),
        "metric_steps": cfg.metric_steps,
    }
    path = os.path.join(out_dir, _CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path) as fh:
                old = json.load(fh)
        except (OSError, ValueError):
            old = None
        if old != desc:
            warnings.warn(
                f"{out_dir} holds records made with another configuration ({old} vs {desc}); existing "
                "records are kept and their images skipped",
                stacklevel=3,
            )
        return
    with open(path, "w") as fh:
        json.dump(desc, fh, indent=2)


@dataclass
class DatasetSummary:
    """What :func:`explain_dataset` did.

    ``done`` / ``failed``: records written by this run; ``skipped``: images that
    already had a record (``None`` for a Ray Dataset input, whose rows are filtered
    lazily); ``images_per_minute`` counts done + failed over the wall time of the call
    (model loading and Ray start-up included).
    """

    out_dir: str
    mode: str
    workers: int
    total: Optional[int]
    done: int
    failed: int
    skipped: Optional[int]
    seconds: float
    parts: List[str] = dataclasses.field(default_factory=list)

    @property
    def images_per_minute(self) -> float:
        n = self.done + self.failed
        return 60.0 * n / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        skipped = "?" if self.skipped is None else str(self.skipped)
        return (
            f"done {self.done}, failed {self.failed}, skipped {skipped} in {self.seconds:.1f} s "
            f"({self.images_per_minute:.1f} images/min, {self.mode}, {self.workers} worker(s)); "
            f"records in {os.path.join(self.out_dir, _RECORDS_DIR)}"
        )

    __str__ = line


def _progress_bar(total: Optional[int], enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="explain-dataset", file=sys.stderr)


def explain_dataset(
    images: Any,
    model_factory: Optional[Callable[[], Any]] = None,
    *,
    out_dir: Union[str, os.PathLike],
    regions: RegionsSpec = RegionsConfig(),
    search: Any = DEFAULT_SEARCH,
    weights: Any = None,
    target: Union[str, int] = "predicted",
    label_fn: Optional[Callable[[str], Optional[int]]] = parse_imagenet_label,
    metrics: Sequence[str] = ("insertion", "deletion"),
    metric_steps: int = 50,
    perturbations_per_eval: Optional[int] = None,
    ray: bool = False,
    ray_address: Optional[str] = None,
    batch_size: int = 4,
    concurrency: Union[int, Tuple[int, int], None] = None,
    num_gpus: Optional[float] = None,
    num_cpus: Optional[float] = None,
    device: str = "auto",
    retry_failed: bool = False,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    progress: bool = True,
    on_batch: Optional[Callable[[Any], None]] = None,
) -> DatasetSummary:
    """Explain every image of a dataset and write one Parquet record per image.

    Parameters
    ----------
    images:
        A folder (searched recursively for :data:`IMAGE_EXTENSIONS`), one image file, a
        list of paths, or a Ray Dataset with a ``path`` and/or ``bytes`` column
        (optional ``image_id`` / ``id`` and ``label`` columns).
    model_factory:
        A picklable callable (top-level function, class or ``functools.partial``) that
        takes no arguments and returns a LoadedModel-like object (``.model``,
        ``.preprocess``: PIL image → ``C×H×W`` tensor, optional ``.name``).  Called
        once per worker.  Default: :func:`default_model_factory` (EfficientNet-Lite0).
    out_dir:
        Output folder; records go to ``out_dir/records/part-*.parquet`` and the
        configuration to ``out_dir/config.json``.
    regions:
        A :class:`RegionsConfig` or a callable ``regions(x, loaded_model, target)``
        returning a feature mask for ``x`` (``1×C×H×W``).
    search, weights:
        Passed to :class:`~captum_submodular.SubmodularAttribution`.
    target:
        ``"predicted"`` (default), ``"label"`` or a class index.
    label_fn:
        ``path → label or None``; default :func:`parse_imagenet_label`.
    metrics:
        Pixel-grid metrics to record: curve metrics of
        :data:`captum_submodular.metrics.METRICS` (``"insertion"``, ``"deletion"``,
        ``"insertion_blur"``, …)
        (``()`` for none; each costs ``metric_steps + 1`` model inputs per image).
    metric_steps:
        Steps of the metric curves.
    perturbations_per_eval:
        Most perturbed inputs per model call; ``None`` (default): automatic on each
        worker's device (:func:`captum_submodular.attribution.auto_perturbations_per_eval`).
    ray, ray_address:
        Use Ray Data (``ray_address`` implies ``ray=True``; ``None`` → a local Ray, or
        the one already initialised).  A Ray Dataset as ``images`` also uses Ray.
    batch_size:
        Images per batch = per part file (a crash loses at most the batches in flight).
        Capped at ``⌈n / workers⌉`` so every worker gets work.
    concurrency:
        Ray actor-pool size: an int, or ``(min, max)`` for an autoscaling pool.  Default:
        as many actors as the cluster's free CPUs (``num_cpus`` each) or GPUs
        (``num_gpus`` each) allow.  In-process mode has one worker.
    num_gpus, num_cpus:
        Resources per Ray actor (``num_gpus`` only where GPUs exist).
    device:
        ``"auto"`` (CUDA when the worker sees a GPU, else CPU), ``"cpu"``, ``"cuda"``…
    retry_failed:
        Re-run the images whose existing record failed.
    progress:
        Show a tqdm bar on stderr.
    on_batch:
        Called with each ``pyarrow.Table`` of records after it is written.

    Returns
    -------
    DatasetSummary
    """
    _require_pyarrow()
    start = time.perf_counter()
    if model_factory is None:
        model_factory = default_model_factory
    if not callable(model_factory):
        raise TypeError("model_factory must be a callable returning a LoadedModel-like object")
    if not (isinstance(regions, RegionsConfig) or callable(regions)):
        raise TypeError("regions must be a RegionsConfig or a callable (x, loaded_model, target) -> mask")
    if not (target in ("predicted", "label") or (isinstance(target, int) and not isinstance(target, bool))):
        raise ValueError(f"target must be 'predicted', 'label' or a class index, got {target!r}")
    metrics = check_curve_metrics(tuple(metrics))
    for name, value in (
        ("batch_size", batch_size),
        ("metric_steps", metric_steps),
        ("perturbations_per_eval", perturbations_per_eval),
    ):
        if value is None and name == "perturbations_per_eval":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
    from ..search import get_search

    get_search(search)  # validate early (raises ValueError)
    cfg = _Config(
        regions=regions,
        search=search,
        weights=weights,
        target=target,
        label_fn=label_fn,
        metrics=metrics,
        metric_steps=metric_steps,
        perturbations_per_eval=perturbations_per_eval,
        device=device,
    )

    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    _check_config_file(out, cfg)
    existing = existing_status(out)
    done_ids = {i for i, s in existing.items() if s == "ok" or not retry_failed}

    use_ray = bool(ray) or ray_address is not None or is_ray_dataset(images)
    if is_ray_dataset(images):
        todo_items: Optional[List[Dict[str, Any]]] = None
        total, skipped = None, None
    else:
        items = items_from(images, extensions)
        todo_items = [it for it in items if it["image_id"] not in done_ids]
        total, skipped = len(items), len(items) - len(todo_items)

    writer = PartWriter(out)
    counts = {"ok": 0, "failed": 0}

    def consume(table: Any, bar: Any) -> None:
        writer.write(table)
        statuses = table.column("status").to_pylist()
        counts["ok"] += sum(s == "ok" for s in statuses)
        counts["failed"] += sum(s != "ok" for s in statuses)
        if bar is not None:
            bar.update(table.num_rows)
            bar.set_postfix(failed=counts["failed"], refresh=False)
        if on_batch is not None:
            on_batch(table)

    if not use_ray:
        workers = 1
        if device != "auto":
            from ..models import resolve_device

            resolve_device(device)
        bar = _progress_bar(len(todo_items), progress and bool(todo_items)) if todo_items else None
        try:
            if todo_items:
                worker = DatasetExplainer(model_factory, cfg)
                for s in range(0, len(todo_items), batch_size):
                    consume(worker(todo_items[s : s + batch_size]), bar)
        finally:
            if bar is not None:
                bar.close()
        mode = "in-process"
    else:
        workers = _run_ray(
            images,
            todo_items,
            model_factory,
            cfg,
            consume,
            done_ids,
            ray_address=ray_address,
            batch_size=batch_size,
            concurrency=concurrency,
            num_gpus=num_gpus,
            num_cpus=num_cpus,
            progress=progress,
        )
        mode = "ray"
    return DatasetSummary(
        out_dir=out,
        mode=mode,
        workers=workers,
        total=total,
        done=counts["ok"],
        failed=counts["failed"],
        skipped=skipped,
        seconds=time.perf_counter() - start,
        parts=list(writer.files),
    )


def _run_ray(
    images: Any,
    todo_items: Optional[List[Dict[str, Any]]],
    model_factory: Callable[[], Any],
    cfg: _Config,
    consume: Callable[[Any, Any], None],
    done_ids: set,
    *,
    ray_address: Optional[str],
    batch_size: int,
    concurrency: Union[int, Tuple[int, int], None],
    num_gpus: Optional[float],
    num_cpus: Optional[float],
    progress: bool,
) -> int:
    try:
        import ray as ray_mod
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "ray=True needs Ray Data: pip install 'captum_submodular[ray]' (or pip install 'ray[data]'); "
            "without Ray, explain_dataset runs in-process"
        ) from exc

    if todo_items is not None and not todo_items:
        return 0
    started = False
    if not ray_mod.is_initialized():
        init_kwargs: Dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
        if ray_address is not None:
            init_kwargs["address"] = ray_address
        ray_mod.init(**init_kwargs)
        started = True
    try:
        resources = ray_mod.cluster_resources()
        gpus_here = float(resources.get("GPU", 0.0))
        actor_gpus = num_gpus if (num_gpus and gpus_here > 0) else None
        if num_gpus and gpus_here == 0:
            warnings.warn("num_gpus was given but the Ray cluster has no GPU; the actors run on CPUs", stacklevel=3)
        if concurrency is None:
            if actor_gpus:
                n_workers = max(1, int(gpus_here // actor_gpus))
            else:
                n_workers = max(1, int(float(resources.get("CPU", 1.0)) // (num_cpus or 1.0)))
        else:
            n_workers = concurrency if isinstance(concurrency, int) else int(concurrency[1])
        if todo_items is not None:
            n = len(todo_items)
            if isinstance(concurrency, int) or concurrency is None:
                n_workers = max(1, min(n_workers, n))
            batch_size = max(1, min(batch_size, math.ceil(n / n_workers)))
            n_blocks = math.ceil(n / batch_size)
            try:
                ds = ray_mod.data.from_items(todo_items, override_num_blocks=n_blocks)
            except TypeError:  # Ray < 2.10
                ds = ray_mod.data.from_items(todo_items, parallelism=n_blocks)
            total = n
        else:
            ds = images.filter(NotDone(done_ids)) if done_ids else images
            total = None
        if isinstance(concurrency, tuple):
            compute = ray_mod.data.ActorPoolStrategy(min_size=int(concurrency[0]), max_size=int(concurrency[1]))
        else:
            compute = ray_mod.data.ActorPoolStrategy(size=n_workers)
        remote: Dict[str, Any] = {}
        if actor_gpus:
            remote["num_gpus"] = actor_gpus
        if num_cpus:
            remote["num_cpus"] = num_cpus
        out = ds.map_batches(
            DatasetExplainer,
            fn_constructor_args=(model_factory, cfg),
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=compute,
            **remote,
        )
        # Our own tqdm bar replaces Ray Data's progress bars and its periodic progress logs.
        ctx = ray_mod.data.DataContext.get_current()
        old_bars = ctx.enable_progress_bars
        ctx.enable_progress_bars = False
        data_logger = logging.getLogger("ray.data")
        old_level = data_logger.level
        data_logger.setLevel(logging.WARNING)
        bar = _progress_bar(total, progress)
        try:
            for table in out.iter_batches(batch_size=None, batch_format="pyarrow"):
                consume(table, bar)
        finally:
            ctx.enable_progress_bars = old_bars
            data_logger.setLevel(old_level)
            if bar is not None:
                bar.close()
        return n_workers
    finally:
        if started:
            ray_mod.shutdown()
