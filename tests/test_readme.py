"""The Python blocks of README.md run, as written and in order, on the bundled model.

They share one namespace, as in a session that copies them one after the other, so the
README cannot drift from the code.
"""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    assert BLOCKS, "README.md has no python example"
    monkeypatch.chdir(tmp_path)  # anything a block writes stays out of the repository
    n_threads = torch.get_num_threads()
    namespace = {"__name__": "__readme__"}
    try:
        for index, block in enumerate(BLOCKS):
            exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    finally:
        torch.set_num_threads(n_threads)
