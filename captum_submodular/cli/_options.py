"""Option groups and types shared by the commands, so a flag means the same everywhere.

=========================  ================================================================
flag                       meaning (every command that has it)
=========================  ================================================================
``--model``                classifier name (offline default or a cached torchvision model)
``--model-factory``        a Python callable returning the model, its preprocessing, names
``--device``               ``cpu``, ``cuda``, ``cuda:N`` (``auto``: CUDA when available)
``--regions``              how to split an image: a region kind (``slic``, ``grid``, ``prior``)
``--n-regions``            about how many regions
``--grid``                 cells per side for ``grid`` / ``prior`` regions
``--search``               the subset search strategy
``--perturbations-per-eval``  perturbed inputs per model call (Captum's name)
``--n-steps``              steps of the pixel-grid metric curves
``--out``                  the output folder
``--no-progress``          no progress bars
=========================  ================================================================

Old spellings (``--batch-size`` for ``--perturbations-per-eval``, ``--metric-steps`` and
``--steps`` for ``--n-steps``, ``compare --regions N`` for ``--n-regions N``,
``explain-dataset --batch-size`` for ``--images-per-part``) still work in 0.2 and print a
deprecation message; they are removed in :data:`ALIASES_REMOVED_IN` (0.3.0).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any, Optional, Sequence

__all__ = [
    "Formatter",
    "region_count",
    "region_limits",
    "check_region_count",
    "wrap",
    "positive_int",
    "positive_float",
    "add_model_options",
    "add_region_options",
    "add_search_options",
    "add_metric_options",
    "add_output_options",
    "deprecated_alias",
    "ALIASES_REMOVED_IN",
]

FACTORY_HELP = (
    "use the model returned by a Python callable instead of --model: 'package.module:function' "
    "or 'path/to/file.py:function'. The callable takes no arguments (or a 'device' keyword) and "
    "returns an object with .model (the nn.Module), .preprocess (PIL image -> C×H×W tensor), "
    ".class_names, and optionally .name, .mean, .std (normalisation in 0..1 units, for display) "
    "— e.g. a captum_submodular.models.LoadedModel. Meant for tests and custom models."
)

SEARCH_NOTES = {
    "greedy": "SMDL's exact plain greedy, about R² model calls",
    "bidirectional": "LiMA's two-sided greedy, about 0.65·R² calls",
    "anytime": "budgeted: at most 16 calls per region, screened two-sided greedy and exact batched moves",
    "refined": "budgeted: at most 10 calls per region, screened greedy steps and exact swaps",
    "accelerated": "greedy screened by a surrogate, about 10 calls per region",
    "phasewin": "PhaseWin's phased windows with its own 1/1 objective, calls depend on the image",
}


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; descriptions are wrapped with :func:`wrap`."""


def wrap(text: str) -> str:
    return "\n\n".join(textwrap.fill(p, width=88) for p in text.split("\n\n"))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


#: The release that removes the deprecated flag spellings (named in their warnings and the changelog).
ALIASES_REMOVED_IN = "0.3.0"


def deprecated_alias(new: str, note: str = "same meaning") -> type:
    """An argparse action for an old flag: stores into the new flag's destination and prints
    ``warning: OLD is deprecated and will be removed in 0.3.0; use NEW (note)`` once."""

    class _Deprecated(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: Optional[str] = None,
        ) -> None:
            print(
                f"warning: {option_string} is deprecated and will be removed in {ALIASES_REMOVED_IN}; "
                f"use {new} ({note})",
                file=sys.stderr,
            )
            setattr(namespace, self.dest, values)

    return _Deprecated


def add_model_options(p: argparse.ArgumentParser, device_default: str = "cpu") -> argparse._ArgumentGroup:
    from ..models import DEFAULT_MODEL

    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"classifier: {DEFAULT_MODEL} (default; works offline), efficientnet_lite1 or "
        "efficientnet_lite2 (offline with the [models] extra) or a torchvision model "
        "name such as resnet50 (only if its weights are already in the torch hub cache; "
        "nothing is downloaded)",
    )
    g.add_argument("--model-factory", default=None, metavar="MODULE:FUNCTION", help=FACTORY_HELP)
    g.add_argument(
        "--device",
        default=device_default,
        metavar="DEVICE",
        help=f"cpu, cuda, cuda:N or auto (CUDA when available). Default: {device_default}",
    )
    return g


def region_count(text: str) -> int:
    """``--n-regions``: an integer ≥ 2 (a subset search needs two regions)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a subset search needs at least 2 regions, got {value}")
    return value


def region_limits() -> str:
    """``"at most 256 regions with greedy, …"``: each search's cap, for help texts and errors."""
    from ..search import SEARCHES

    caps: dict = {}
    for name, cls in sorted(SEARCHES.items()):
        caps.setdefault(cls.max_regions, []).append(name)
    return "; ".join(f"at most {cap:,} with {', '.join(names)}" for cap, names in sorted(caps.items()))


def check_region_count(n_regions: int, search: str) -> None:
    """Refuse, in the flags' words and before any model is loaded, more regions than ``--search`` takes."""
    from ..search import get_search

    cap = get_search(search).max_regions
    if n_regions > cap:
        raise ValueError(
            f"--n-regions {n_regions} is more than the {cap:,} regions --search {search} takes "
            f"({region_limits()}); ask for fewer regions or pick another --search"
        )


def add_region_options(g: Any, n_regions: int) -> None:
    from ..regions import REGION_BUILDERS

    kinds = "; ".join(f"{name}: {b.help}" for name, b in REGION_BUILDERS.items())
    g.add_argument(
        "--regions",
        choices=sorted(REGION_BUILDERS),
        default="slic",
        metavar="KIND",
        help=f"how to split each image into regions ({kinds}). Default: %(default)s",
    )
    g.add_argument(
        "--n-regions",
        type=region_count,
        default=n_regions,
        metavar="R",
        help=f"approximate number of regions: at least 2, {region_limits()}; model calls grow "
        "about as 10·R with the accelerated search, R² with the exact ones (default: %(default)s)",
    )
    g.add_argument(
        "--grid",
        type=positive_int,
        default=None,
        metavar="N",
        help="grid regions: N×N tiles (default: √R); prior regions: N×N cells (default 10)",
    )


def auto_or_positive_int(text: str) -> Optional[int]:
    """``auto`` (``None``: the library's automatic choice) or an integer ≥ 1."""
    return None if str(text).strip().lower() == "auto" else positive_int(text)


def add_search_options(g: Any, ppe_default: Optional[int] = None, batch_alias: bool = True) -> None:
    from ..search import DEFAULT_SEARCH, SEARCHES

    notes = "; ".join(f"{name}: {SEARCH_NOTES[name]}" for name in sorted(SEARCHES) if name in SEARCH_NOTES)
    g.add_argument(
        "--search",
        choices=sorted(SEARCHES),
        default=DEFAULT_SEARCH,
        help=f"subset search strategy ({notes}). Default: %(default)s",
    )
    g.add_argument(
        "--perturbations-per-eval",
        type=auto_or_positive_int,
        default=ppe_default,
        metavar="B",
        dest="perturbations_per_eval",
        help="perturbed inputs per model call, Captum's perturbations_per_eval: an integer, or "
        "auto (the default: as many as fit in 64 MiB, at most 16 on the CPU, 64 on a GPU)",
    )
    if batch_alias:
        g.add_argument(
            "--batch-size",
            type=auto_or_positive_int,
            dest="perturbations_per_eval",
            metavar="B",
            action=deprecated_alias("--perturbations-per-eval"),
            help=argparse.SUPPRESS,
        )


def add_metric_options(g: Any, old_spellings: Sequence[str] = ()) -> None:
    g.add_argument(
        "--n-steps",
        type=positive_int,
        default=50,
        metavar="K",
        dest="n_steps",
        help="steps of the pixel-grid insertion/deletion curves (default: %(default)s)",
    )
    for old in old_spellings:
        g.add_argument(
            old,
            type=positive_int,
            dest="n_steps",
            metavar="K",
            action=deprecated_alias("--n-steps"),
            help=argparse.SUPPRESS,
        )


def add_output_options(p: argparse.ArgumentParser, out_default: Optional[str], required: bool = False) -> None:
    g = p.add_argument_group("output")
    if required:
        g.add_argument("--out", required=True, metavar="DIR", help="output folder, created if needed")
    else:
        g.add_argument(
            "--out", default=out_default, metavar="DIR", help="output folder, created if needed (default: %(default)s)"
        )
    g.add_argument("--no-progress", action="store_true", help="hide the progress bars")
