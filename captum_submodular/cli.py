"""``captum-submodular``: explain images from the command line.

Subcommands
-----------
``demo``     explain a few bundled ImageNet images with SubmodularAttribution and
             Captum's Occlusion, score both with insertion / deletion, and write a
             figure, a table and the raw numbers.
``explain``  explain your own images (PNG figure + JSON per image).
``compare``  the side-by-side comparison harness (when installed).

Everything runs offline. Errors the user can fix (a missing file, an unknown model
or class, CUDA not available, ...) are printed as ``error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["main", "build_parser", "EXIT_USAGE"]

#: Exit code for errors the user can fix (argparse uses the same).
EXIT_USAGE = 2

#: Bundled images the demo explains first (labelled ImageNet validation images that the
#: default model classifies correctly and that show different kinds of objects).
DEMO_IMAGES = ("imagenet_00", "imagenet_04", "imagenet_15", "imagenet_13", "imagenet_17")
DEMO_N_IMAGES = 2
DEMO_N_REGIONS = 25

_DESCRIPTION = """\
Submodular subset-selection attribution (SMDL / LiMA) for Captum, from the command line.

SubmodularAttribution splits an image into regions and searches for the smallest,
best-ordered set of regions that keeps the model's prediction. Everything runs
offline with the default model (EfficientNet-Lite0, weights bundled in a package).
"""

_EPILOG = """\
examples:
  captum-submodular demo
      explain 2 bundled ImageNet images, compare with Occlusion, write
      outputs/demo/demo.png + demo.json and print an insertion/deletion table
  captum-submodular demo --images imagenet_13 chelsea --n-regions 36
  captum-submodular explain cat.jpg dog.png --out results/
  captum-submodular explain cat.jpg --target "tabby" --regions prior
  captum-submodular explain cat.jpg --target 281 --search greedy --device cuda
  captum-submodular compare --images 4

run 'captum-submodular COMMAND --help' for the options of each command.
"""

_FACTORY_HELP = (
    "use the model returned by a Python callable instead of --model: 'package.module:function' "
    "or 'path/to/file.py:function'. The callable takes no arguments (or a 'device' keyword) and "
    "returns an object with .model (the nn.Module), .preprocess (PIL image -> C×H×W tensor), "
    ".class_names, and optionally .name, .mean, .std (normalisation in 0..1 units, for display) "
    "— e.g. a captum_submodular.models.LoadedModel. Meant for tests and custom models."
)


class CLIError(Exception):
    """An error the user can fix; printed as ``error: ...``."""


# --------------------------------------------------------------------------- parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; descriptions are wrapped with :func:`_wrap`."""


def _wrap(text: str) -> str:
    import textwrap

    return "\n\n".join(textwrap.fill(p, width=88) for p in text.split("\n\n"))


_SEARCH_NOTES = {
    "greedy": "SMDL's exact plain greedy, ~R² model calls",
    "bidirectional": "LiMA's two-sided greedy, about half of greedy's calls",
    "accelerated": "greedy screened by a surrogate, about 10 calls per region",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common_options(p: argparse.ArgumentParser, out_default: str, n_regions: int) -> None:
    from .demo import REGION_KINDS
    from .models import DEFAULT_MODEL
    from .search import DEFAULT_SEARCH, SEARCHES

    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                   help=f"classifier: {DEFAULT_MODEL} (default; works offline) or a torchvision model "
                        "name such as resnet50 (only if its weights are already in the torch hub cache; "
                        "nothing is downloaded)")
    g.add_argument("--model-factory", default=None, metavar="MODULE:FUNCTION", help=_FACTORY_HELP)
    g.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu (default), cuda or cuda:N")
    g = p.add_argument_group("attribution")
    g.add_argument("--regions", choices=REGION_KINDS, default="slic",
                   help="how to split the image: SLIC superpixels, a square grid, or SMDL's prior-guided "
                        "division (grid cells ranked by Captum LayerGradCam on the last conv layer). "
                        "Default: %(default)s")
    g.add_argument("--n-regions", type=_positive_int, default=n_regions, metavar="R",
                   help="approximate number of regions; model calls grow about as 10·R with the "
                        "accelerated search, R² with the exact ones (default: %(default)s)")
    g.add_argument("--grid", type=_positive_int, default=None, metavar="N",
                   help="grid regions: N×N tiles (default: √R); prior regions: N×N cells (default 10)")
    notes = "; ".join(f"{name}: {_SEARCH_NOTES[name]}" for name in sorted(SEARCHES) if name in _SEARCH_NOTES)
    g.add_argument("--search", choices=sorted(SEARCHES), default=DEFAULT_SEARCH,
                   help=f"subset search strategy ({notes}). Default: %(default)s")
    g.add_argument("--batch-size", type=_positive_int, default=32, metavar="B",
                   help="perturbed images per model call (default: %(default)s)")
    g.add_argument("--n-steps", type=_positive_int, default=50, metavar="K",
                   help="steps of the pixel-grid insertion/deletion curves (default: %(default)s)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=out_default, metavar="DIR", help="output folder, created if needed (default: %(default)s)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``captum-submodular`` argument parser."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="captum-submodular", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    p = sub.add_parser(
        "demo", formatter_class=_Formatter,
        help="explain a few bundled images, compare with Occlusion, write a figure and a table",
        description=_wrap("Explain bundled ImageNet images with SubmodularAttribution and Captum's "
                          "Occlusion (window 3×15×15, stride 3×8×8, baseline 0), score both with the "
                          "pixel-grid insertion (higher is better) and deletion (lower is better) curves, "
                          "print a table and write DIR/demo.png and DIR/demo.json. The defaults take a few "
                          "minutes on two CPU cores."),
        epilog="examples:\n  captum-submodular demo\n  captum-submodular demo --images 3\n"
               "  captum-submodular demo --images imagenet_13 chelsea --regions prior\n")
    p.add_argument("--images", nargs="+", default=[str(DEMO_N_IMAGES)], metavar="N|NAME",
                   help=f"how many bundled images (a number; default {DEMO_N_IMAGES}), or their names: "
                        "imagenet_00 .. imagenet_19, astronaut, chelsea, coffee, rocket")
    p.add_argument("--no-occlusion", action="store_true", help="skip the Occlusion comparison")
    _common_options(p, os.path.join("outputs", "demo"), DEMO_N_REGIONS)

    p = sub.add_parser(
        "explain", formatter_class=_Formatter,
        help="explain your own images (PNG figure + JSON per image)",
        description=_wrap("Explain image files with SubmodularAttribution. For each IMAGE writes "
                          "DIR/<name>.png (original, attribution map, minimal subset, insertion/deletion "
                          "curves) and DIR/<name>.json (order of the regions, curves, minimal subset, "
                          "target, class name, model evaluations, seconds)."),
        epilog="examples:\n  captum-submodular explain cat.jpg\n"
               "  captum-submodular explain *.jpg --target tabby --out results/\n"
               "  captum-submodular explain cat.jpg --regions grid --grid 8 --search greedy\n")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG files (any size and colour mode)")
    p.add_argument("--target", default=None, metavar="CLASS",
                   help="class to explain: an index, or a class name (case-insensitive, exact or a unique "
                        "part of a name). Default: the predicted class of each image")
    p.add_argument("--no-metrics", action="store_true",
                   help="skip the pixel-grid insertion/deletion scores (2×(K+1) model calls per image)")
    _common_options(p, os.path.join("outputs", "explain"), 49)

    try:  # the folder-scale command lives in its own module (Parquet output, optional Ray)
        from ._dataset_cli import add_explain_dataset_parser
    except ImportError:  # pragma: no cover - module not installed
        pass
    else:
        add_explain_dataset_parser(sub)

    p = sub.add_parser(
        "compare", formatter_class=_Formatter, add_help=False,
        help="compare attribution methods side by side (comparison harness)",
        description=_wrap("Compare SubmodularAttribution with Captum methods on bundled images. "
                          "Everything after 'compare' is passed to the comparison harness."))
    p.set_defaults(args=[])
    parser.subcommand_parsers = dict(sub.choices)  # type: ignore[attr-defined]
    return parser


# --------------------------------------------------------------------------- output helpers


def _arrows() -> Dict[str, str]:
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
        return "| " + " | ".join(c.rjust(w) if ra else c.ljust(w)
                                 for c, w, ra in zip(cells, widths, right)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if ra else ("-" * (w + 2)) for w, ra in zip(widths, right)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def _fmt(v: Optional[float], digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


def _unique_stem(stem: str, used: Dict[str, int]) -> str:
    n = used.get(stem, 0)
    used[stem] = n + 1
    return stem if n == 0 else f"{stem}_{n + 1}"


def _config(args: argparse.Namespace, occlusion: bool, metrics: bool):
    from .demo import AnalysisConfig

    return AnalysisConfig(search=args.search, regions=args.regions, n_regions=args.n_regions, grid=args.grid,
                          n_steps=args.n_steps, batch_size=args.batch_size, show_progress=not args.no_progress,
                          occlusion=occlusion, metrics=metrics)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare_out(path: str) -> str:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--out {path} exists and is not a folder")
    os.makedirs(path, exist_ok=True)
    return path


def _load(args: argparse.Namespace):
    from .demo import resolve_model

    started = time.perf_counter()
    lm = resolve_model(args.model, args.device, args.model_factory)
    _log(f"model {lm.name} on {lm.device} ({time.perf_counter() - started:.1f} s to load)")
    return lm


def _summary(files: List[str], seconds: float, evals: int) -> str:
    return f"Done: wrote {len(files)} file(s) in {seconds:.1f} s with {evals:,} model evaluations."


# --------------------------------------------------------------------------- commands


def _demo_images(spec: Sequence[str]):
    from .data import bundled_images, imagenet_samples

    if len(spec) == 1 and spec[0].strip().isdigit():
        n = int(spec[0])
        if n < 1:
            raise CLIError("--images needs a positive number or image names")
        names = list(DEMO_IMAGES[:n])
        if n > len(names):
            extra = [s.name for s in imagenet_samples() if s.name not in names]
            names += extra[: n - len(names)]
        return bundled_images(names)
    return bundled_images(list(spec))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import analyse_image, check_device, draw_figure

    started = time.perf_counter()
    check_device(args.device)
    images = _demo_images(args.images)
    out = _prepare_out(args.out)
    lm = _load(args)
    cfg = _config(args, occlusion=not args.no_occlusion, metrics=True)
    analyses = []
    for i, li in enumerate(images, 1):
        _log(f"[{i}/{len(images)}] {li.name}")
        analyses.append(analyse_image(lm, li.name, li.image, cfg, label=li.label, log=_log))

    methods = ["SubmodularAttribution"] + ([] if args.no_occlusion else ["Occlusion"])
    arrows = _arrows()
    header = ["image", "method", f"insertion {arrows['up']}", f"deletion {arrows['down']}", "evaluations", "seconds"]
    rows: List[List[str]] = []
    means: Dict[str, Dict[str, float]] = {}
    for a in analyses:
        for m in methods:
            rec = a.record["methods"][m]
            rows.append([a.record["name"], m, _fmt(rec["insertion_auc"]), _fmt(rec["deletion_auc"]),
                         f"{rec['n_evaluations']:,}", f"{rec['seconds']:.1f}"])
    for m in methods:
        recs = [a.record["methods"][m] for a in analyses]
        mean = {k: sum(float(r[k]) for r in recs) / len(recs)
                for k in ("insertion_auc", "deletion_auc", "n_evaluations", "seconds")}
        means[m] = mean
        rows.append(["mean", m, _fmt(mean["insertion_auc"]), _fmt(mean["deletion_auc"]),
                     f"{mean['n_evaluations']:,.0f}", f"{mean['seconds']:.1f}"])
    table = format_table(header, rows, [False, False, True, True, True, True])

    fig_path = os.path.join(out, "demo.png")
    json_path = os.path.join(out, "demo.json")
    title = (f"{lm.name}: SubmodularAttribution ({args.search} search, {args.regions} regions) "
             + ("vs Occlusion" if not args.no_occlusion else ""))
    draw_figure([a.row for a in analyses], fig_path, title=title.strip())
    total_evals = sum(a.n_evaluations for a in analyses)
    seconds = time.perf_counter() - started
    _write_json(json_path, {
        "command": "demo",
        "model": lm.name,
        "device": str(lm.device),
        "config": {"search": args.search, "regions": args.regions, "n_regions": args.n_regions,
                   "grid": args.grid, "n_steps": args.n_steps, "batch_size": args.batch_size,
                   "occlusion": None if args.no_occlusion else {"sliding_window_shapes": [3, 15, 15],
                                                                 "strides": [3, 8, 8], "baselines": 0.0}},
        "images": [a.record for a in analyses],
        "mean": means,
        "n_evaluations": total_evals,
        "seconds": seconds,
    })
    print()
    print(table)
    print()
    print("insertion/deletion: area under the pixel-grid curves of p(target) "
          f"({args.n_steps} steps, baseline 0); evaluations and seconds: the attribution only.")
    print(f"Figure: {fig_path}")
    print(f"Numbers: {json_path}")
    print(_summary([fig_path, json_path], seconds, total_evals))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .data import load_images
    from .demo import analyse_image, check_device, draw_figure, resolve_target

    started = time.perf_counter()
    check_device(args.device)
    images, errors = load_images(args.images)
    if errors:
        raise CLIError("cannot read " + "; ".join(f"{p}: {why}" for p, why in errors))
    out = _prepare_out(args.out)
    lm = _load(args)
    target = resolve_target(args.target, lm.class_names)
    cfg = _config(args, occlusion=False, metrics=not args.no_metrics)
    files: List[str] = []
    total_evals = 0
    used: Dict[str, int] = {}
    for i, li in enumerate(images, 1):
        _log(f"[{i}/{len(images)}] {li.path}")
        a = analyse_image(lm, li.name, li.image, cfg, target=target, log=_log)
        stem = _unique_stem(li.name, used)
        png = os.path.join(out, f"{stem}.png")
        js = os.path.join(out, f"{stem}.json")
        draw_figure([a.row], png, title=f"{lm.name}, {args.search} search: {li.name}")
        record = dict(a.record, image=os.path.abspath(li.path) if li.path else None, command="explain")
        _write_json(js, record)
        files += [png, js]
        total_evals += a.n_evaluations
        sub = record["methods"]["SubmodularAttribution"]
        scores = (f"; insertion {sub['insertion_auc']:.3f}, deletion {sub['deletion_auc']:.3f}"
                  if "insertion_auc" in sub else "")
        print(f"{li.path}: {record['class_name']} (class {record['target']}, p = {record['probability']:.3f}); "
              f"minimal subset {sub['minimal_subset_size']}/{record['regions']['n_regions']} regions{scores}; "
              f"{sub['n_evaluations']:,} evaluations, {sub['seconds']:.1f} s -> {png}, {js}")
    print(_summary(files, time.perf_counter() - started, total_evals))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("captum_submodular.compare") is None:
        raise CLIError("the 'compare' command is not available yet (captum_submodular.compare is not "
                       "installed); use 'captum-submodular demo' for a comparison with Occlusion")
    from . import compare  # type: ignore[attr-defined]

    entry = getattr(compare, "main", None)
    if entry is None:
        raise CLIError("the 'compare' command is not available yet (captum_submodular.compare has no main())")
    try:
        code = entry(list(args.args))
    except SystemExit as exc:  # an argparse-based harness exits on --help / bad options
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    return int(code or 0)


_COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "explain": cmd_explain,
    "compare": cmd_compare,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (0 on success, 2 for user errors)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(list(argv) if argv is not None else None)
        if args.command == "compare":
            args.args = extra  # everything after 'compare' goes to the comparison harness
        elif extra:
            sub = getattr(parser, "subcommand_parsers", {}).get(args.command, parser)
            sub.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version, bad options
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    from .attribution import NonFiniteOutputError
    from .data import DataUnavailableError, ImageLoadError
    from .models import ModelUnavailableError

    expected = (CLIError, ValueError, ImageLoadError, ModelUnavailableError, DataUnavailableError,
                FileNotFoundError, NonFiniteOutputError, OSError)
    try:
        handler = _COMMANDS.get(args.command) or getattr(args, "func")
        return int(handler(args))
    except expected as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.filename:
            message = f"{exc.filename}: {exc.strerror or exc}"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
