"""explain_dataset: records, resume, bad files, Ray vs in-process, the CLI entry point.

A tiny deterministic CNN (defined here) stands in for the real model so that the
whole module runs in seconds; images are small PNGs written to ``tmp_path``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from captum_submodular import SubmodularAttribution, metrics
from captum_submodular.data import load_image
from captum_submodular.models import LoadedModel
from captum_submodular.regions import grid_mask
from captum_submodular.search import DEFAULT_SEARCH

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
needs_pyarrow = pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow is not installed (pip install pyarrow)")

if HAS_PYARROW:
    from captum_submodular.dataset import (
        RECORD_FIELDS,
        DatasetSummary,
        RegionsConfig,
        decode_attribution,
        explain_dataset,
        parse_imagenet_label,
        read_records,
    )

SIZE = 32
N_CLASSES = 5
REGIONS = None if not HAS_PYARROW else RegionsConfig("grid", 16)


# --------------------------------------------------------------------------- the tiny model


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 5, stride=2, padding=2)
        self.fc = nn.Linear(6 * 4 * 4, N_CLASSES)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        h = nn.functional.adaptive_avg_pool2d(h, 4).flatten(1)
        return self.fc(h)


def tiny_preprocess(image: Image.Image) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def tiny_model() -> LoadedModel:
    """The model factory (top-level, picklable; also used by the CLI test as FILE:tiny_model)."""
    return LoadedModel(
        model=TinyNet().eval(),
        preprocess=tiny_preprocess,
        class_names=[f"c{i}" for i in range(N_CLASSES)],
        name="tiny",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


def write_images(folder, names=("a.png", "imagenet_07_3.png", "sub/c.jpg")):
    rng = np.random.default_rng(0)
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = 40 + 8 * i, 48 + 4 * i
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * (3 + i)) % 256, (yy * (5 + 2 * i)) % 256, (xx * yy) % 256], -1)
        img = (img + rng.integers(0, 40, img.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def run(folder, out, **kw):
    kw.setdefault("regions", REGIONS)
    kw.setdefault("progress", False)
    kw.setdefault("metric_steps", 10)
    return explain_dataset(folder, tiny_model, out_dir=out, **kw)


def records_by_id(out):
    return {r["image_id"]: r for r in read_records(out).to_pylist()}


# --------------------------------------------------------------------------- in-process


@needs_pyarrow
def test_in_process_records_equal_direct_explain(tmp_path):
    paths = write_images(tmp_path / "imgs")
    out = tmp_path / "out"
    summary = run(tmp_path / "imgs", out, batch_size=2)
    assert isinstance(summary, DatasetSummary)
    assert (summary.done, summary.failed, summary.skipped, summary.total) == (3, 0, 0, 3)
    assert summary.mode == "in-process" and len(summary.parts) == 2  # one part file per batch
    assert "done 3, failed 0, skipped 0" in summary.line() and "images/min" in summary.line()

    recs = records_by_id(out)
    assert sorted(recs) == ["a.png", "imagenet_07_3.png", "sub/c.jpg"]
    lm = tiny_model()
    sa = SubmodularAttribution(lm.model)
    for path in paths:
        rec = recs[path.relative_to(tmp_path / "imgs").as_posix()]
        assert rec["status"] == "ok" and rec["error"] is None
        assert set(rec) == set(RECORD_FIELDS)
        assert all(rec[k] is not None for k in RECORD_FIELDS if k != "error" and k != "label")
        x = tiny_preprocess(load_image(path).image)[None]
        with torch.no_grad():
            logits = lm.model(x)
        target = int(logits.argmax())
        assert rec["target"] == rec["predicted"] == target
        assert rec["target_source"] == "predicted" and rec["model"] == "tiny"
        assert rec["predicted_score"] == pytest.approx(float(torch.softmax(logits.double(), -1)[0, target]))
        mask = grid_mask(SIZE, SIZE, grid=4)
        (res,) = sa.explain(x, baselines=0.0, target=target, feature_mask=mask, perturbations_per_eval=64)
        assert rec["order"] == res.order.tolist()
        assert rec["region_ids"] == res.region_ids.tolist() == list(range(16))
        assert rec["n_regions"] == 16 and rec["regions"] == "grid:16"
        assert rec["search"] == DEFAULT_SEARCH == "bidirectional"
        np.testing.assert_array_equal(rec["region_values"], res.region_values.numpy())
        np.testing.assert_array_equal(rec["search_insertion_curve"], res.insertion_curve.numpy())
        np.testing.assert_array_equal(rec["search_deletion_curve"], res.deletion_curve.numpy())
        assert rec["search_insertion_area"] == pytest.approx(
            float(np.trapezoid(res.insertion_curve.numpy(), dx=1 / 16))
        )
        assert rec["search_deletion_area"] == pytest.approx(float(np.trapezoid(res.deletion_curve.numpy(), dx=1 / 16)))
        assert rec["minimal_subset"] == res.minimal_subset.tolist()
        assert rec["minimal_subset_size"] == res.minimal_subset_size
        assert rec["n_evaluations"] == res.n_evaluations
        assert rec["input_height"] == rec["input_width"] == SIZE
        assert rec["seconds"] > 0
        # the stored map is the attribution map (region-constant, same on every channel)
        amap, stored_mask = decode_attribution(rec["attribution"], with_mask=True)
        np.testing.assert_array_equal(stored_mask, mask[0, 0].numpy())
        np.testing.assert_array_equal(amap, res.region_values[mask[0, 0]].numpy())  # float64 values
        np.testing.assert_array_equal(amap.astype(np.float32), res.attributions[0, 0].numpy())
        # pixel-grid metric curves and areas are those of the metric functions
        for kind, fn in (("insertion", metrics.insertion), ("deletion", metrics.deletion)):
            curves = fn(lm.model, x, res.attributions, target=target, baselines=0.0, n_steps=10, return_curves=True)
            assert rec[f"{kind}_area"] == pytest.approx(float(curves.area[0]), abs=1e-12)
            np.testing.assert_allclose(rec[f"{kind}_scores"], curves.scores[0].numpy(), atol=1e-12)
            np.testing.assert_array_equal(rec[f"{kind}_fractions"], curves.fractions[0].numpy())
        assert rec["metric_evaluations"] == 2 * 11
    assert recs["imagenet_07_3.png"]["label"] == 3 and recs["a.png"]["label"] is None


@needs_pyarrow
def test_target_label_and_list_input(tmp_path):
    paths = write_images(tmp_path / "imgs", names=("imagenet_00_4.png", "plain.png"))
    out = tmp_path / "out"
    summary = run([str(p) for p in paths], out, target="label", metrics=())
    assert (summary.done, summary.failed) == (1, 1)
    recs = records_by_id(out)
    ok = recs[os.path.normpath(str(paths[0]))]
    assert ok["status"] == "ok" and ok["target"] == ok["label"] == 4 and ok["target_source"] == "label"
    assert ok["insertion_area"] is None and ok["metric_evaluations"] == 0
    bad = recs[os.path.normpath(str(paths[1]))]
    assert bad["status"] == "failed" and "no label" in bad["error"]


def test_parse_imagenet_label():
    if not HAS_PYARROW:
        pytest.skip("pyarrow is not installed")
    assert parse_imagenet_label("/x/imagenet_03_990.jpg") == 990
    assert parse_imagenet_label("IMAGENET_3_7.JPEG") == 7
    assert parse_imagenet_label("imagenet_03.jpg") is None
    assert parse_imagenet_label("cat.jpg") is None and parse_imagenet_label(None) is None


# --------------------------------------------------------------------------- resume and bad files


@needs_pyarrow
def test_resume_writes_nothing_new(tmp_path):
    write_images(tmp_path / "imgs")
    out = tmp_path / "out"
    first = run(tmp_path / "imgs", out, batch_size=1, metrics=())
    assert first.done == 3 and len(first.parts) == 3
    before = sorted(os.listdir(out / "records"))
    second = run(tmp_path / "imgs", out, batch_size=1, metrics=())
    assert (second.done, second.failed, second.skipped, second.parts) == (0, 0, 3, [])
    assert sorted(os.listdir(out / "records")) == before
    # a crash that lost one batch: only that image is redone
    os.remove(first.parts[1])
    third = run(tmp_path / "imgs", out, batch_size=1, metrics=())
    assert (third.done, third.skipped) == (1, 2)
    assert len(read_records(out)) == 3


@needs_pyarrow
def test_corrupt_files_fail_with_reason_and_the_rest_completes(tmp_path):
    folder = tmp_path / "imgs"
    write_images(folder)
    out = tmp_path / "out"
    run(folder, out, metrics=())
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    good = Image.new("RGB", (40, 40), (200, 30, 30))
    good.save(folder / "truncated.png")
    data = (folder / "truncated.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not an image extension: ignored")
    (folder / "z_last.png").write_bytes((folder / "a.png").read_bytes())
    summary = run(folder, out, batch_size=8, metrics=())
    assert (summary.done, summary.failed, summary.skipped) == (1, 2, 3)
    recs = records_by_id(out)
    assert len(recs) == 6  # nothing already written is lost
    for name in ("broken.jpg", "truncated.png"):
        assert recs[name]["status"] == "failed"
        assert recs[name]["error"].startswith("ImageLoadError: ")
        assert recs[name]["order"] is None and recs[name]["seconds"] >= 0
    assert "not a recognised image" in recs["broken.jpg"]["error"]
    assert recs["z_last.png"]["status"] == "ok" and recs["a.png"]["status"] == "ok"
    # failed images are skipped on resume unless retry_failed
    again = run(folder, out, metrics=())
    assert (again.done, again.failed, again.skipped) == (0, 0, 6)
    retry = run(folder, out, metrics=(), retry_failed=True)
    assert (retry.failed, retry.skipped) == (2, 4)
    assert len(read_records(out)) == 6 and len(read_records(out, latest_only=False)) == 8


@needs_pyarrow
def test_rows_with_bytes_like_ray_read_binary_files(tmp_path):
    """Rows of a Ray Dataset from ``ray.data.read_binary_files(..., include_paths=True)``
    carry ``bytes`` and ``path``; the worker decodes the bytes (no file access)."""
    from captum_submodular.dataset import DatasetExplainer
    from captum_submodular.dataset.worker import _Config

    (path,) = write_images(tmp_path / "imgs", names=("imagenet_01_2.png",))
    cfg = _Config(
        regions=REGIONS,
        search="bidirectional",
        weights=None,
        target="predicted",
        label_fn=parse_imagenet_label,
        metrics=(),
        metric_steps=10,
        perturbations_per_eval=64,
        device="cpu",
    )
    worker = DatasetExplainer(tiny_model, cfg)
    table = worker(
        [
            {"bytes": path.read_bytes(), "path": "remote/imagenet_01_2.png"},
            {"bytes": b"\x89PNG broken", "path": "remote/bad.png", "label": 1},
        ]
    )
    ok, bad = table.to_pylist()
    assert ok["status"] == "ok" and ok["image_id"] == "remote/imagenet_01_2.png" and ok["label"] == 2
    direct = worker.explain_row({"image_id": "x", "path": str(path)})
    assert ok["order"] == direct["order"] and ok["region_values"] == direct["region_values"]
    assert bad["status"] == "failed" and bad["error"].startswith("ImageLoadError") and bad["label"] == 1


@needs_pyarrow
def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="target"):
        explain_dataset(tmp_path, tiny_model, out_dir=tmp_path / "o", target="nope")
    with pytest.raises(ValueError, match="metrics"):
        explain_dataset(tmp_path, tiny_model, out_dir=tmp_path / "o", metrics=("auc",))
    with pytest.raises(ValueError, match="no such folder"):
        explain_dataset(tmp_path / "missing", tiny_model, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="RegionsConfig.kind"):
        RegionsConfig("hexagons")


def test_missing_pyarrow_gives_a_clear_error(monkeypatch, tmp_path):
    from captum_submodular import dataset

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'captum_submodular\[dataset\]'"):
        dataset.explain_dataset(tmp_path, tiny_model, out_dir=tmp_path / "o")


# --------------------------------------------------------------------------- the CLI entry point


@needs_pyarrow
def test_cli_entry_point(tmp_path, capsys):
    from captum_submodular.cli.explain_dataset import add_explain_dataset_parser, run_explain_dataset

    write_images(tmp_path / "imgs")
    parser = argparse.ArgumentParser(prog="captum-submodular")
    add_explain_dataset_parser(parser.add_subparsers(dest="command"))
    argv = [
        "explain-dataset",
        str(tmp_path / "imgs"),
        "--out",
        str(tmp_path / "out"),
        "--model-factory",
        f"{__file__}:tiny_model",
        "--regions",
        "grid",
        "--n-regions",
        "9",
        "--metric-steps",
        "5",
        "--no-progress",
    ]
    args = parser.parse_args(argv)
    assert args.func is run_explain_dataset
    assert run_explain_dataset(args) == 0
    assert "done 3, failed 0, skipped 0" in capsys.readouterr().out
    assert run_explain_dataset(parser.parse_args(argv)) == 0
    assert "done 0, failed 0, skipped 3" in capsys.readouterr().out
    assert {r["regions"] for r in read_records(tmp_path / "out").to_pylist()} == {"grid:9"}
    with pytest.raises(ValueError, match="--workers 2 needs --ray"):
        run_explain_dataset(parser.parse_args(argv + ["--workers", "2"]))


# --------------------------------------------------------------------------- Ray


@needs_pyarrow
def test_ray_local_mode_equals_in_process(tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.skip(
            "Ray is not installed (pip install 'captum_submodular[ray]'); the in-process tests cover "
            "the same per-image code"
        )
    import ray
    import ray.cloudpickle

    folder = tmp_path / "imgs"
    write_images(folder, names=("a.png", "imagenet_07_3.png", "sub/c.jpg", "d.png"))
    (folder / "broken.jpg").write_bytes(b"garbage")
    local = run(folder, tmp_path / "local", batch_size=2)
    assert (local.done, local.failed) == (4, 1)

    started = time.perf_counter()
    # The factory lives in this test module, which Ray workers cannot import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = run(folder, tmp_path / "ray", ray=True, batch_size=2, concurrency=2)
        resumed = run(folder, tmp_path / "ray", ray=True, batch_size=2, concurrency=2)
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    elapsed = time.perf_counter() - started
    assert (remote.mode, remote.workers, remote.done, remote.failed, remote.skipped) == ("ray", 2, 4, 1, 0)
    assert (resumed.done, resumed.failed, resumed.skipped) == (0, 0, 5)
    a, b = records_by_id(tmp_path / "local"), records_by_id(tmp_path / "ray")
    assert sorted(a) == sorted(b)
    for image_id in a:
        ra, rb = a[image_id], b[image_id]
        for key in RECORD_FIELDS:
            if key == "seconds":
                continue
            va, vb = ra[key], rb[key]
            if isinstance(va, float) or (isinstance(va, list) and va and isinstance(va[0], float)):
                # the actors run torch on 1 thread, this process on several: allow rounding
                np.testing.assert_allclose(vb, va, rtol=1e-9, atol=1e-12, err_msg=f"{image_id} {key}")
            elif key == "attribution" and va is not None:
                np.testing.assert_allclose(decode_attribution(vb), decode_attribution(va), rtol=1e-9, atol=1e-12)
            else:
                assert va == vb, (image_id, key)
    print(f"Ray part of the test: {elapsed:.1f} s")
