"""Explain whole image datasets, in this process or on a Ray cluster, into Parquet records.

:func:`explain_dataset` runs :class:`~captum_submodular.SubmodularAttribution` on
every image of a folder, a list of paths or a Ray Dataset and writes **one record per
image** to Parquet part files under ``OUT_DIR/records/``.  It is the engine behind
``captum-submodular explain-dataset``.

Modes
-----
In-process (default)
    One process, one model, batches of ``batch_size`` images one after the other.
    Needs only ``pyarrow`` (for Parquet).
Ray (``ray=True``, ``ray_address=...`` or a Ray Dataset as ``images``)
    Ray Data ``map_batches`` with an actor pool: each actor calls ``model_factory()``
    once and then explains batch after batch; ``num_gpus`` per actor when GPUs exist;
    the pool size is ``concurrency``.  The records come back to the driver, which
    writes them, so the output folder need only be writable by the driver; the image
    files (folder / list input) must be readable by the workers (a shared file
    system on a cluster), or pass a Ray Dataset with a ``bytes`` column (e.g.
    ``ray.data.read_binary_files(..., include_paths=True)``).

Both modes run exactly the same per-image code (:class:`DatasetExplainer`, which runs
:func:`captum_submodular.pipeline.explain_image`, the pipeline of ``explain``), so they
write the same records (up to floating-point rounding when the number of torch
threads differs, and the ``seconds`` column).

Per image
---------
1. Read the image (:func:`captum_submodular.data.load_image` rules: any size or
   colour mode → RGB).  An unreadable file becomes a ``"failed"`` record with the
   reason; the job goes on.
2. ``x = preprocess(image)[None]``; one forward gives the predicted class.
3. Target: ``"predicted"`` (the argmax), ``"label"`` (the image's label, see below)
   or a fixed class index.
4. Regions: :class:`RegionsConfig` (SLIC superpixels, a grid, or Grad-CAM-guided
   cells) or a callable ``regions(x, loaded_model, target) -> feature_mask``.
5. ``SubmodularAttribution(model, search=...).explain(x, target, feature_mask,
   baselines=0, perturbations_per_eval)`` — one image per call.
6. The pixel-grid metrics named in ``metrics`` (curve metrics of
   :data:`captum_submodular.metrics.METRICS`; baseline 0, softmax at the target,
   ``metric_steps`` steps) of the attribution map, reusing the clean output of step 2.

Labels
------
A Ray Dataset's ``label`` column when there is one, else ``label_fn(path)``.  The
default :func:`parse_imagenet_label` reads ImageNet-style file names
``imagenet_<index>_<label>.jpg`` (also ``.jpeg`` / ``.png``, any case), e.g.
``imagenet_03_990.jpg`` → 990, and returns ``None`` for any other name.  With
``target="label"`` an image without a label becomes a failed record.

Records
-------
One row per image; the columns are documented in
:mod:`captum_submodular.dataset.records` (:data:`RECORD_FIELDS`).

Resume and crashes
------------------
Records are written as they are produced, one Parquet part file per batch (written
to a temporary name, then renamed), so a crash loses at most the batches in flight.
At start the ids already present under ``OUT_DIR/records`` are read and skipped
(``retry_failed=True`` re-runs the failed ones; :func:`read_records` keeps the
newest record of an id).  Image ids are the path relative to the folder (folder
input), the path as given (list input), or the ``image_id`` / ``id`` / ``path``
column (Ray Dataset).
"""

from .driver import DatasetSummary, explain_dataset
from .records import RECORD_FIELDS, decode_attribution, read_records, record_fields
from .sources import IMAGE_EXTENSIONS, list_images, parse_imagenet_label
from .worker import DatasetExplainer, RegionsConfig, default_model_factory

__all__ = [
    "IMAGE_EXTENSIONS",
    "RECORD_FIELDS",
    "record_fields",
    "RegionsConfig",
    "DatasetSummary",
    "DatasetExplainer",
    "explain_dataset",
    "list_images",
    "parse_imagenet_label",
    "read_records",
    "decode_attribution",
    "default_model_factory",
]
