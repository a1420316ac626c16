"""Issue 20: the gain map before and after the fix, on the same searched orders.

The fix changes only how the map is read off the curves (regions that change neither
curve get exactly 0 and leave the isotonic fit), not the search.  So the orders are the
default search's (``SubmodularAttribution(model)``: the two-sided search, weights
20 / 5 / 0.01) recorded by ``benchmarks/search_table.py`` in
``benchmarks/results/search_table-part*.jsonl``; ``--check N`` re-runs the search on the
first N images and asserts it still returns the recorded order.  For each order the
curves ``p(x[first k])`` and ``p(x[V ∖ first k])`` are evaluated once, and both maps are
built from them: the new one by :func:`captum_submodular.maps.gain_map`, the old one by
the ``gain_map`` of commit ``OLD`` (read from git).  Protocol of BENCHMARKS.md §1–2:
EfficientNet-Lite0, the 20 ImageNet samples and the 4 scikit-image photos, SLIC 49
(``slic_mask(x[0], n_segments=49)``), the predicted class, pixel-grid insertion
(baseline 0), blurred insertion and deletion, 50 steps, softmax.  The old map's scores
must equal the scores recorded with the orders (the same map then).

    python benchmarks/map_fix.py --check 2          # → benchmarks/results/map_fix.jsonl, table on stdout
    python benchmarks/map_fix.py --merge            # the table again from the JSONL
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import types

import numpy as np
import torch

from captum_submodular import SubmodularAttribution
from captum_submodular.data import imagenet_samples, skimage_samples
from captum_submodular.maps import gain_map, no_effect
from captum_submodular.metrics import deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.regions import slic_mask

OLD = "fda3181"  # the last commit with the previous gain map
OUT = os.path.join("benchmarks", "results", "map_fix.jsonl")


def old_gain_map() -> types.FunctionType:
    source = subprocess.run(
        ["git", "show", f"{OLD}:captum_submodular/maps.py"], check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("old_maps")
    exec(compile(source, "old_maps.py", "exec"), module.__dict__)  # noqa: S102 - our own file, from git
    return module.gain_map


def scores(model: torch.nn.Module, x: torch.Tensor, a: torch.Tensor, target: int) -> dict:
    kw = dict(n_steps=50, perturbations_per_eval=16)
    return dict(
        ins=float(insertion(model, x, a, target, **kw)),
        ins_blur=float(insertion(model, x, a, target, substrate="blur", **kw)),
        dele=float(deletion(model, x, a, target, **kw)),
    )


def recorded_orders() -> dict:
    rows = [
        json.loads(line)
        for p in sorted(glob.glob(os.path.join("benchmarks", "results", "search_table-part*.jsonl")))
        for line in open(p, encoding="utf-8")
    ]
    return {r["image"]: r for r in rows if r["search"] == "bidirectional" and r["budget"] is None}


def curves(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, order: list, target: int) -> tuple:
    """``p(x[first k])`` and ``p(x[V ∖ first k])`` for k = 0..m (baseline 0, softmax), float64."""
    ids = torch.unique(mask)
    index = torch.searchsorted(ids, mask)
    m = len(ids)
    rank = torch.empty(m, dtype=torch.long)
    rank[torch.searchsorted(ids, torch.tensor(order))] = torch.arange(m)
    pixel_rank = rank[index]  # 1×1×H×W
    ks = torch.arange(m + 1)
    keep = pixel_rank[None] < ks[:, None, None, None, None]  # (m+1)×1×1×H×W
    scores = []
    for rows in (keep, ~keep):
        batch = torch.where(rows[:, 0], x, torch.zeros_like(x))
        with torch.no_grad():
            out = torch.cat([model(batch[i : i + 16]) for i in range(0, m + 1, 16)])
        scores.append(torch.softmax(out, 1)[:, target].double())
    return scores[0], scores[1], float(out.abs().max())


def run(path: str, check: int) -> None:
    torch.set_num_threads(1)
    old_map = old_gain_map()
    lm = load_model()
    model = lm.model.eval()
    recorded = recorded_orders()
    done = {json.loads(line)["image"] for line in open(path)} if os.path.exists(path) else set()
    samples = [("skimage", s) for s in skimage_samples()] + [("imagenet", s) for s in imagenet_samples()]
    for n, (dataset, s) in enumerate(samples):
        if s.name in done:
            continue
        rec_row = recorded[s.name]
        x = lm.preprocess(s.image)[None]
        mask = slic_mask(x[0], n_segments=49)
        with torch.no_grad():
            target = int(model(x).argmax())
        assert target == rec_row["target"], s.name
        if n < check:
            (res,) = SubmodularAttribution(model).explain(
                x, target=target, feature_mask=mask, perturbations_per_eval=16
            )
            assert res.order.tolist() == rec_row["order"], f"{s.name}: the search no longer gives the recorded order"
        ins, dele, out_scale = curves(model, x, mask, rec_row["order"], target)
        eps = float(torch.finfo(torch.float32).eps)
        resolution = 8.0 * eps * max(1.0, out_scale, float(ins.abs().max()), float(dele.abs().max()))
        ids = torch.unique(mask)
        position = torch.searchsorted(ids, torch.tensor(rec_row["order"]))
        maps = {}
        for name, fn in (("new", gain_map), ("old", old_map)):
            values = torch.empty(len(ids), dtype=torch.float64)
            values[position] = fn(ins, dele, resolution)
            maps[name] = values
        region_index = torch.searchsorted(ids, mask)
        attr = {k: v.float()[region_index].expand_as(x).clone() for k, v in maps.items()}
        same_ranking = bool(
            torch.equal(torch.argsort(maps["new"], stable=True), torch.argsort(maps["old"], stable=True))
        )
        rec = dict(
            dataset=dataset,
            image=s.name,
            m=len(ids),
            target=target,
            zeros_new=int((maps["new"] == 0).sum()),
            zeros_old=int((maps["old"] == 0).sum()),
            no_effect=int(no_effect(ins, dele, resolution).sum()),
            same_ranking=same_ranking,
            new=scores(model, x, attr["new"], target),
            old=scores(model, x, attr["old"], target),
            recorded=dict(ins=rec_row["ins"], ins_blur=rec_row["ins_blur"], dele=rec_row["dele"]),
        )
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


def merge(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    for dataset in ("imagenet", "skimage"):
        rs = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["image"])
        if not rs:
            continue
        half = len(rs) // 2
        print(
            f"\n{dataset}: {len(rs)} images; same region ranking on {sum(r['same_ranking'] for r in rs)}; "
            f"regions without effect in all: {sum(r['no_effect'] for r in rs)} of {sum(r['m'] for r in rs)}"
        )
        gap = max(abs(r["old"][k] - r["recorded"][k]) for r in rs for k in ("ins", "ins_blur", "dele"))
        print(f"old map against the scores recorded with the orders: largest difference {gap:.2e}")
        print("| metric | old map | new map | new − old (mean) | images better / worse | halves |")
        print("|---|---:|---:|---:|---:|---|")
        for key, label, sign in (
            ("ins", "insertion ↑", 1),
            ("ins_blur", "blurred insertion ↑", 1),
            ("dele", "deletion ↓", -1),
        ):
            old = np.array([r["old"][key] for r in rs])
            new = np.array([r["new"][key] for r in rs])
            d = new - old
            better, worse = int((d * sign > 0).sum()), int((d * sign < 0).sum())
            halves = f"{d[:half].mean():+.4f} / {d[half:].mean():+.4f}"
            means = f"{old.mean():.4f} | {new.mean():.4f} | {d.mean():+.4f}"
            print(f"| {label} | {means} | {better} / {worse} | {halves} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merge", action="store_true", help="only print the table from the JSONL")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--check", type=int, default=0, help="re-run the search on the first N images")
    args = parser.parse_args()
    if not args.merge:
        run(args.out, args.check)
    merge(args.out)
