"""Sphinx configuration of the captum_submodular reference.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (``.ci/run`` does it).
The tutorials are the executed notebooks of ``tutorials/``, copied here at build time and
rendered as they are, never executed (``nb_execution_mode = "off"``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import captum_submodular  # noqa: E402

project = "captum_submodular"
author = "captum_submodular contributors"
release = captum_submodular.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
]

# Docstrings are numpy style; type hints are shown in the signatures.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Our own section titles (rendered as rubrics, so a later section is not read as a parameter list).
napoleon_custom_sections = [
    "Cost",
    "Protocol",
    "Algorithm",
    "The registry",
    "Resume and crashes",
    "Records",
    "Per image",
    "Modes",
    "Main entry points",
    "Localisation",
    "Labels",
    "Grids",
    "GridPG (connected)",
    "DiFull (disconnected)",
    "Conventions",
    "Builders",
    "AggAtt",
    "Commands (one module each; the shared options live in :mod:`._options`)",
    "Algorithm (budget ``B``; ties within the context's resolution go to the lower index)",
    "Attributes (besides Captum's ``seq_attr``, ``input_tokens``, ``output_tokens``, ``inp``)",
]
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# Markdown pages (MyST) and the executed notebooks, rendered without running them.
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_merge_streams = True

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "alabaster"
html_theme_options = {"description": "Submodular subset-selection attribution for Captum", "fixed_sidebar": True}
html_title = f"captum_submodular {release}"

# The tutorials live in tutorials/ (the tests execute them there); copy them in.
_TUTORIALS = HERE / "_tutorials"
if _TUTORIALS.exists():
    shutil.rmtree(_TUTORIALS)
_TUTORIALS.mkdir()
for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
    shutil.copy2(notebook, _TUTORIALS / notebook.name)
os.environ.setdefault("MPLBACKEND", "Agg")
