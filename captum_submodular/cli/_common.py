"""What the commands share at run time: errors, logging, the output folder, tables, JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    "EXIT_USAGE",
    "CLIError",
    "log",
    "prepare_out",
    "load",
    "write_json",
    "format_table",
    "fmt",
    "arrows",
    "unique_stem",
    "summary_line",
    "explain_config",
]

#: Exit code for errors the user can fix (argparse uses the same).
EXIT_USAGE = 2


class CLIError(Exception):
    """An error the user can fix; printed as ``error: ...``."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_out(path: str) -> str:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--out {path} exists and is not a folder")
    os.makedirs(path, exist_ok=True)
    return path


def load(args: argparse.Namespace) -> Any:
    """The model of ``--model`` / ``--model-factory`` on ``--device``, with a log line."""
    from ..models import resolve_model

    started = time.perf_counter()
    lm = resolve_model(args.model, args.device, args.model_factory)
    log(f"model {lm.name} on {lm.device} ({time.perf_counter() - started:.1f} s to load)")
    return lm


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


def arrows() -> Dict[str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "↑↓".encode(encoding)
        return {"up": "↑", "down": "↓"}
    except (UnicodeEncodeError, LookupError):
        return {"up": "(higher better)", "down": "(lower better)"}


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A Markdown table with aligned columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if ra else c.ljust(w) for c, w, ra in zip(cells, widths, right)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if ra else ("-" * (w + 2)) for w, ra in zip(widths, right)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def fmt(v: Optional[float], digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def unique_stem(stem: str, used: Dict[str, int]) -> str:
    n = used.get(stem, 0)
    used[stem] = n + 1
    return stem if n == 0 else f"{stem}_{n + 1}"


def summary_line(files: List[str], seconds: float, evals: Dict[str, int]) -> str:
    """``Done: …`` with the model evaluations by kind (search, metrics, classification …)."""
    total = sum(v for k, v in evals.items() if k != "total")
    parts = ", ".join(f"{k} {v:,}" for k, v in evals.items() if k != "total" and v)
    return f"Done: wrote {len(files)} file(s) in {seconds:.1f} s with {total:,} model evaluations" + (
        f" ({parts})." if parts else "."
    )


def explain_config(args: argparse.Namespace, occlusion: bool, metrics: bool, target: Any = "predicted") -> Any:
    """The pipeline's :class:`~captum_submodular.pipeline.ExplainConfig` from the shared options."""
    from ..pipeline import ExplainConfig
    from ._options import check_region_count

    check_region_count(args.n_regions, args.search)
    return ExplainConfig(
        search=args.search,
        regions=args.regions,
        n_regions=args.n_regions,
        grid=args.grid,
        target=target,
        metrics=("insertion", "deletion") if metrics else (),
        n_steps=args.n_steps,
        perturbations_per_eval=args.perturbations_per_eval,
        occlusion=occlusion,
        show_progress=not args.no_progress,
    )
