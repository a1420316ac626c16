"""Dataset records: one schema, built from the pipeline's :class:`ImageExplanation`.

One record per image, one row of a Parquet part file.  Columns (:func:`record_fields`;
:data:`RECORD_FIELDS` for the default metrics, insertion and deletion):

``image_id``, ``path``, ``status`` (``"ok"`` / ``"failed"``), ``error`` (the reason,
``None`` when ok), ``model``, ``target``, ``target_source`` (``"predicted"``,
``"label"``, ``"fixed"``), ``label``, ``predicted``, ``predicted_score``,
``target_score``, ``regions`` (the setting, e.g. ``"slic:49"``), ``n_regions``,
``search``; ``order`` (region ids, most important first), ``region_ids`` and
``region_values`` (aligned with ``region_ids``), ``minimal_subset``,
``minimal_subset_size``; **two kinds of curves**:

* ``search_insertion_curve`` / ``search_deletion_curve`` — the search's own
  region-level curves (``m + 1`` points, ``k = 0..m`` regions of ``order`` inserted /
  deleted), with areas ``search_insertion_area`` / ``search_deletion_area``
  (trapezoid over ``x = k / m``);
* ``<metric>_area``, ``<metric>_fractions``, ``<metric>_scores`` for insertion,
  deletion and every other recorded metric of
  :data:`captum_submodular.metrics.METRICS` (pixel grid, ``n_steps + 1`` points;
  ``None`` when not requested);

``n_evaluations`` (model inputs of the search), ``metric_evaluations`` (of the
metrics),
``classification_evaluations`` (the classification pass), ``seconds`` (whole image:
read, regions, search, metrics), ``input_height``, ``input_width`` and
``attribution``: ``np.savez_compressed`` bytes holding the region mask (``H×W``,
smallest unsigned integer type), ``region_ids`` and ``region_values`` — the map is
region-constant, so :func:`decode_attribution` rebuilds it exactly.
"""

from __future__ import annotations

import io
import os
import time
import uuid
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch import Tensor

__all__ = [
    "RECORD_FIELDS",
    "record_fields",
    "record_schema",
    "record_from_explanation",
    "decode_attribution",
    "read_records",
]

_RECORDS_DIR = "records"

#: Columns before the metric columns, with their Arrow type names.
_HEAD: Tuple[Tuple[str, str], ...] = (
    ("image_id", "string"),
    ("path", "string"),
    ("status", "string"),
    ("error", "string"),
    ("model", "string"),
    ("target", "int64"),
    ("target_source", "string"),
    ("label", "int64"),
    ("predicted", "int64"),
    ("predicted_score", "float64"),
    ("target_score", "float64"),
    ("regions", "string"),
    ("n_regions", "int64"),
    ("search", "string"),
    ("order", "ints"),
    ("region_ids", "ints"),
    ("region_values", "floats"),
    ("minimal_subset", "ints"),
    ("minimal_subset_size", "int64"),
    ("search_insertion_curve", "floats"),
    ("search_deletion_curve", "floats"),
    ("search_insertion_area", "float64"),
    ("search_deletion_area", "float64"),
)
#: Columns after the metric columns.
_TAIL: Tuple[Tuple[str, str], ...] = (
    ("n_evaluations", "int64"),
    ("metric_evaluations", "int64"),
    ("classification_evaluations", "int64"),
    ("seconds", "float64"),
    ("input_height", "int64"),
    ("input_width", "int64"),
    ("attribution", "binary"),
)


#: Metrics whose columns every record has (``None`` when they were not requested).
DEFAULT_METRICS: Tuple[str, ...] = ("insertion", "deletion")


def _columns(metrics: Sequence[str]) -> List[Tuple[str, str]]:
    per_metric = [
        (f"{m}_{part}", kind)
        for m in dict.fromkeys(DEFAULT_METRICS + tuple(metrics))
        for part, kind in (("area", "float64"), ("fractions", "floats"), ("scores", "floats"))
    ]
    return list(_HEAD) + per_metric + list(_TAIL)


def record_fields(metrics: Sequence[str] = DEFAULT_METRICS) -> Tuple[str, ...]:
    """Every column of a record that records ``metrics`` (always with those of
    :data:`DEFAULT_METRICS`), in order."""
    return tuple(name for name, _ in _columns(metrics))


#: Every column of a record with the default metrics (insertion and deletion).
RECORD_FIELDS: Tuple[str, ...] = record_fields()


def _require_pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised with a monkeypatched import
        raise ImportError(
            "explain_dataset writes Parquet records and needs pyarrow: pip install 'captum_submodular[dataset]' "
            "(or 'captum_submodular[ray]', which also brings Ray Data)"
        ) from exc
    import pyarrow

    return pyarrow


def record_schema(metrics: Sequence[str] = DEFAULT_METRICS) -> Any:
    """The Arrow schema of :func:`record_fields`."""
    pa = _require_pyarrow()
    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "binary": pa.binary(),
        "ints": pa.list_(pa.int64()),
        "floats": pa.list_(pa.float64()),
    }
    return pa.schema([(name, types[kind]) for name, kind in _columns(metrics)])


def to_table(records: List[Dict[str, Any]], metrics: Sequence[str] = DEFAULT_METRICS) -> Any:
    """Records (dicts) as a ``pyarrow.Table`` of :func:`record_schema`; missing keys are ``None``."""
    pa = _require_pyarrow()
    rows = [{k: r.get(k) for k in record_fields(metrics)} for r in records]
    return pa.Table.from_pylist(rows, schema=record_schema(metrics))


def encode_attribution(mask: Tensor, region_ids: Tensor, region_values: Tensor) -> bytes:
    m = mask.detach().cpu()
    while m.dim() > 2 and m.shape[0] == 1:
        m = m[0]
    arr = m.numpy()
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0:
        dtype = np.uint8 if hi < 2**8 else np.uint16 if hi < 2**16 else np.uint32 if hi < 2**32 else np.int64
    else:
        dtype = np.int64
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        mask=arr.astype(dtype),
        region_ids=region_ids.detach().cpu().numpy().astype(np.int64),
        region_values=region_values.detach().cpu().numpy().astype(np.float64),
    )
    return buf.getvalue()


def decode_attribution(blob: bytes, with_mask: bool = False) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Rebuild the attribution map of a record from its ``attribution`` bytes.

    Returns the ``H×W`` float64 map (``region_values`` painted on the mask; the map
    :meth:`SubmodularAttribution.explain` returns is this map repeated over channels),
    and also the region mask when ``with_mask=True``.
    """
    with np.load(io.BytesIO(blob)) as data:
        mask = data["mask"].astype(np.int64)
        ids = data["region_ids"]
        values = data["region_values"]
    amap = values[np.searchsorted(ids, mask)]
    return (amap, mask) if with_mask else amap


def _trapezoid(curve: Tensor) -> float:
    m = len(curve) - 1
    if m < 1:
        return float("nan")
    y = curve.double()
    return float(((y[1:] + y[:-1]) / 2).sum() / m)


def _floats(t: Tensor) -> List[float]:
    return [float(v) for v in t.detach().cpu().double().reshape(-1).tolist()]


def _ints(t: Tensor) -> List[int]:
    return [int(v) for v in t.detach().cpu().reshape(-1).tolist()]


def record_from_explanation(e: Any) -> Dict[str, Any]:
    """The record fields of an ``"ok"`` image from its
    :class:`~captum_submodular.pipeline.ImageExplanation` (the caller adds ``image_id``,
    ``path``, ``status``, ``model``, ``label`` and ``seconds``)."""
    res = e.result
    out: Dict[str, Any] = {
        "target": e.target,
        "target_source": e.target_source,
        "predicted": e.predicted,
        "predicted_score": float(e.probabilities[e.predicted]),
        "target_score": float(e.probabilities[e.target]),
        "regions": e.regions,
        "n_regions": int(res.region_ids.numel()),
        "search": e.search,
        "order": _ints(res.order),
        "region_ids": _ints(res.region_ids),
        "region_values": _floats(res.region_values),
        "minimal_subset": _ints(res.minimal_subset),
        "minimal_subset_size": int(res.minimal_subset_size),
        "search_insertion_curve": _floats(res.insertion_curve),
        "search_deletion_curve": _floats(res.deletion_curve),
        "search_insertion_area": _trapezoid(res.insertion_curve),
        "search_deletion_area": _trapezoid(res.deletion_curve),
        "n_evaluations": int(e.evaluations["search"]),
        "metric_evaluations": int(e.evaluations["metrics"]),
        "classification_evaluations": int(e.evaluations["classification"]),
        "input_height": int(e.x.shape[-2]),
        "input_width": int(e.x.shape[-1]),
        "attribution": encode_attribution(e.mask, res.region_ids, res.region_values),
    }
    for metric, curves in e.submodular.curves.items():
        out[f"{metric}_area"] = float(curves.area[0])
        out[f"{metric}_fractions"] = _floats(curves.fractions[0])
        out[f"{metric}_scores"] = _floats(curves.scores[0])
    return out


# --------------------------------------------------------------------------- the folder


def part_files(out_dir: str) -> List[str]:
    rec = os.path.join(out_dir, _RECORDS_DIR)
    if not os.path.isdir(rec):
        return []
    return sorted(os.path.join(rec, f) for f in os.listdir(rec) if f.startswith("part-") and f.endswith(".parquet"))


def existing_status(out_dir: str) -> Dict[str, str]:
    """``image_id → status`` of the newest record of each id already written."""
    import pyarrow.parquet as pq

    status: Dict[str, str] = {}
    for path in part_files(out_dir):
        try:
            table = pq.read_table(path, columns=["image_id", "status"])
        except Exception as exc:  # a damaged part file: its images are simply redone
            warnings.warn(f"{path}: unreadable part file ignored ({exc})", stacklevel=3)
            continue
        for image_id, st in zip(table.column("image_id").to_pylist(), table.column("status").to_pylist()):
            if st == "ok" or status.get(image_id) != "ok":
                status[image_id] = st
    return status


def read_records(
    out_dir: Union[str, os.PathLike], columns: Optional[Sequence[str]] = None, latest_only: bool = True
) -> Any:
    """All records under ``out_dir`` as one ``pyarrow.Table``.

    With ``latest_only`` (default) each ``image_id`` appears once: its newest ``"ok"``
    record, else its newest record.  Unreadable part files are skipped with a warning.
    """
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    cols = list(columns) if columns is not None else None
    if cols is not None:
        cols = list(dict.fromkeys(["image_id", "status"] + cols))
    tables = []
    for path in part_files(os.fspath(out_dir)):
        try:
            tables.append(pq.read_table(path, columns=cols, schema=None))
        except Exception as exc:
            warnings.warn(f"{path}: unreadable part file ignored ({exc})", stacklevel=2)
    if not tables:
        schema = record_schema()
        if cols is not None:
            schema = pa.schema([schema.field(c) for c in cols])
        return schema.empty_table()
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    if not latest_only:
        return table
    ids = table.column("image_id").to_pylist()
    ok = [s == "ok" for s in table.column("status").to_pylist()]
    keep: Dict[str, int] = {}
    for i, (image_id, good) in enumerate(zip(ids, ok)):
        j = keep.get(image_id)
        if j is None or good or not ok[j]:
            keep[image_id] = i
    return table.take(sorted(keep.values()))


class PartWriter:
    """Writes one Parquet part per batch: temp file then an atomic rename."""

    def __init__(self, out_dir: str) -> None:
        self.dir = os.path.join(out_dir, _RECORDS_DIR)
        os.makedirs(self.dir, exist_ok=True)
        self.run = time.strftime("%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:8]}"
        self.seq = 0
        self.files: List[str] = []

    def write(self, table: Any) -> Optional[str]:
        import pyarrow.parquet as pq

        if table.num_rows == 0:
            return None
        name = f"part-{self.run}-{self.seq:06d}.parquet"
        self.seq += 1
        final = os.path.join(self.dir, name)
        tmp = os.path.join(self.dir, f".{name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)
        self.files.append(final)
        return final
