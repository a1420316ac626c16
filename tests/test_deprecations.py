"""Every deprecated flag spelling still works, and its warning and the changelog name the release
that removes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from captum_submodular.cli import build_parser
from captum_submodular.cli._options import ALIASES_REMOVED_IN

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"

# (argv, the old spelling, the destination and the value it must set)
OLD_SPELLINGS = [
    (["explain", "x.jpg", "--batch-size", "3"], "--batch-size", "perturbations_per_eval", 3),
    (["demo", "--batch-size", "5"], "--batch-size", "perturbations_per_eval", 5),
    (["compare", "--steps", "7"], "--steps", "n_steps", 7),
    (["compare", "--regions", "36"], "--regions N", "n_regions", 36),
    (["explain-dataset", "folder", "--out", "o", "--metric-steps", "9"], "--metric-steps", "n_steps", 9),
    (["explain-dataset", "folder", "--out", "o", "--batch-size", "2"], "--batch-size", "images_per_part", 2),
]


@pytest.mark.parametrize("argv, old, dest, value", OLD_SPELLINGS)
def test_old_spelling_sets_the_new_option_and_names_the_removal_release(argv, old, dest, value, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert f"will be removed in {ALIASES_REMOVED_IN}" in err


def test_the_changelog_lists_every_alias_with_its_removal_release():
    text = CHANGELOG.read_text(encoding="utf-8")
    deprecated = text.split("### Deprecated", 1)[1].split("\n### ", 1)[0]
    assert ALIASES_REMOVED_IN in deprecated
    for spelling in ("--batch-size", "--steps", "--metric-steps", "compare --regions N"):
        assert f"`{spelling}`" in deprecated, spelling
