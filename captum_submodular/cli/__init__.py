"""``captum-submodular``: explain images from the command line.

Commands (one module each; the shared options live in :mod:`._options`)
-----------------------------------------------------------------------
``demo``             explain a few bundled ImageNet images with SubmodularAttribution and
                     Captum's Occlusion, score both with insertion / deletion, and write a
                     figure, a table and the raw numbers (:mod:`.demo`).
``explain``          explain your own images (PNG figure + JSON per image; :mod:`.explain`).
``explain-dataset``  a folder of images into resumable Parquet records, optionally on Ray
                     (:mod:`.explain_dataset`).
``compare``          the side-by-side comparison harness (:mod:`.compare`).

Everything runs offline. Errors the user can fix (a missing file, an unknown model
or class, CUDA not available, ...) are printed as ``error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import compare as _compare
from . import demo as _demo
from . import explain as _explain
from . import explain_dataset as _explain_dataset
from ._common import EXIT_USAGE, CLIError
from ._options import Formatter

__all__ = ["main", "entry", "build_parser", "EXIT_USAGE", "CLIError", "ALLOCATOR_ENV"]

#: glibc's malloc returns large freed blocks to the OS at once, so every model call on a
#: batch of images page-faults its activations in again; on the development VM that
#: spent more time in the kernel than in the model (BENCHMARKS.md §4).  The console
#: command keeps them in the process instead (set CAPTUM_SUBMODULAR_KEEP_MALLOC=1, or any
#: of these variables yourself, to leave the allocator alone).
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def entry() -> None:
    """The ``captum-submodular`` console script: :func:`main` with the allocator tuned.

    On Linux with glibc, when none of :data:`ALLOCATOR_ENV` is set (and
    ``CAPTUM_SUBMODULAR_KEEP_MALLOC`` is not), the process restarts itself once with them
    (glibc reads them at start-up only), then runs :func:`main`.
    """
    import os
    import platform

    if (
        sys.platform.startswith("linux")
        and platform.libc_ver()[0] == "glibc"
        and not os.environ.get("CAPTUM_SUBMODULAR_KEEP_MALLOC")
        and not any(k in os.environ for k in ALLOCATOR_ENV)
    ):
        env = dict(os.environ, **ALLOCATOR_ENV)
        try:
            os.execve(sys.executable, [sys.executable, "-m", "captum_submodular.cli", *sys.argv[1:]], env)
        except OSError:
            pass  # run as we are
    sys.exit(main())


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


def flag_message(exc: Exception) -> str:
    """A pipeline error worded in the flags the user typed."""
    from ..pipeline import RegionCountError
    from ._options import region_limits

    if isinstance(exc, RegionCountError):
        if exc.count < 2:
            return (
                f"--regions {exc.regions} --n-regions {exc.requested} gave {exc.count} region(s) on this image; "
                "a subset search needs at least 2 (is the image uniform?): raise --n-regions or use --regions grid"
            )
        return (
            f"--regions {exc.regions} --n-regions {exc.requested} gave {exc.count} regions on this image, more "
            f"than the {exc.limit:,} that --search {exc.search} takes ({region_limits()}): lower --n-regions "
            "or pick another --search"
        )
    return str(exc) or type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    """The ``captum-submodular`` argument parser (each command sets ``func``)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="captum-submodular", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=Formatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _demo.add_parser(sub)
    _explain.add_parser(sub)
    _explain_dataset.add_explain_dataset_parser(sub)
    _compare.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (0 on success, 2 for user errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version, bad options
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    from ..attribution import NonFiniteOutputError
    from ..data import DataUnavailableError, ImageLoadError
    from ..models import ModelUnavailableError
    from ..pipeline import RegionCountError

    expected = (
        CLIError,
        ValueError,
        ImageLoadError,
        ModelUnavailableError,
        DataUnavailableError,
        FileNotFoundError,
        NonFiniteOutputError,
        OSError,
    )
    try:
        return int(args.func(args))
    except RegionCountError as exc:
        print(f"error: {flag_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
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
