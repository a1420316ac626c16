"""Issue 21, "the limit": how far is each search from the best order we can find?

The reference is an expensive local search on the exact region-prefix areas of the model's
own curves: the area under ``p(x[S_k])`` (insertion) minus the area under ``p(x[V∖S_k])``
(deletion) along the order, each step as wide as its region (the pixel-level step widths).
It starts from the order of every search recorded for the image (``--records``), keeps the
``--starts`` best, and improves each with the refinement of the anytime search
(:func:`captum_submodular.search.anytime.refine`) without a round limit, with moves of any
length and exploration of untried moves, ``--evaluations`` model evaluations per start.
The best order found is the reference.  Nothing here is tuned: it only measures.

For every search and the reference it reports, per image and on average, the region-level
insertion and deletion areas and their difference, and the pixel-grid metrics of §1 (50
steps) of the reference's own map.

    python benchmarks/reference_search.py --records 'benchmarks/results/issue21-part*.jsonl' \\
        --only imagenet_00 imagenet_01 … imagenet_07
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
from typing import Dict, Generator, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dev_search import Cached  # noqa: E402

from captum_submodular import ObjectiveWeights, SubmodularAttribution  # noqa: E402
from captum_submodular.data import imagenet_samples, skimage_samples  # noqa: E402
from captum_submodular.metrics import deletion, insertion  # noqa: E402
from captum_submodular.models import load_model  # noqa: E402
from captum_submodular.regions import slic_mask  # noqa: E402
from captum_submodular.search import SearchContext, SearchOutcome, SearchStrategy  # noqa: E402
from captum_submodular.search._base import _order_prefixes, _row_keys  # noqa: E402
from captum_submodular.search.anytime import refine  # noqa: E402

#: F(S) = p(x[S]) + 1 − p(x[V∖S]): its area is insertion + 1 − deletion at region level.
BALANCED = ObjectiveWeights(1.0, 1.0, 0.0, 0.0)


class ReferenceSearch(SearchStrategy):
    """Local search from given orders; the best of ``n_starts`` refined starts."""

    max_regions = 1024

    def __init__(self, starts: List[List[int]], n_starts: int, evaluations: int) -> None:
        self.starts = starts
        self.n_starts = n_starts
        self.evaluations = evaluations
        self.log: List[Tuple[float, float]] = []

    def search(self, m: int, context: Optional[SearchContext] = None) -> Generator[Tensor, Tensor, SearchOutcome]:
        ctx = context if context is not None else SearchContext(m)
        s = ctx.region_sizes.double()
        known: Dict[bytes, float] = {}

        def ask(rows: Tensor) -> Generator[Tensor, Tensor, Tuple[Tensor, Tensor]]:
            both = torch.cat([rows, ~rows])
            values = (yield both).double()
            for k, v in zip(_row_keys(both), values.tolist()):
                known[k] = v
            return values[: len(rows)], values[len(rows) :]

        def area(order: List[int]) -> float:
            p = _order_prefixes(order)
            v = torch.tensor([known[k] for k in _row_keys(p)], dtype=torch.float64)
            return float((s[torch.tensor(order)] * (v[1:] + v[:-1]) / 2).sum())

        eye = torch.eye(m, dtype=torch.bool)
        full = torch.ones(1, m, dtype=torch.bool)
        rows = torch.cat([~full, eye] + [_order_prefixes(o) for o in self.starts])
        fs, fc = yield from ask(rows)
        f_empty, f_full = float(fs[0]), float(fc[0])
        single = fs[1 : m + 1] - f_empty
        last = f_full - fc[1 : m + 1]
        ranked = sorted(self.starts, key=lambda o: -area(o))[: self.n_starts]
        best, best_area = list(ranked[0]), area(ranked[0])
        for start in ranked:
            before = area(start)
            sub = ctx.limit(ctx.used + self.evaluations)
            out = yield from refine(sub, list(start), known, ask, lambda: 10**9, 0.0, single, last, m - 1, True, 0.0)
            a = area(out)
            self.log.append((before, a))
            if a > best_area:
                best, best_area = out, a
        return SearchOutcome(best, 0)


def region_curves(
    model: torch.nn.Module, x: Tensor, mask: Tensor, target: int, order: List[int]
) -> Tuple[float, float]:
    """Region-level insertion and deletion areas of ``order`` (step widths = region sizes)."""
    ids = torch.unique(mask)
    m = len(ids)
    onehot = torch.stack([(mask == i) for i in ids]).reshape(m, -1).double()
    sizes = onehot.sum(1) / onehot.sum()
    keep = (_order_prefixes(order).double() @ onehot).reshape(m + 1, *mask.shape[-2:])[:, None].float()
    with torch.no_grad():
        p = torch.softmax(model(x * keep), -1)[:, target].double()
        q = torch.softmax(model(x * (1 - keep)), -1)[:, target].double()
    w = sizes[torch.tensor(order)]
    return float((w * (p[1:] + p[:-1]) / 2).sum()), float((w * (q[1:] + q[:-1]) / 2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default="benchmarks/results/issue21-part*.jsonl")
    ap.add_argument("--only", nargs="+", default=[f"imagenet_{k:02d}" for k in range(8)])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--evaluations", type=int, default=1500, help="model evaluations of each start's refinement")
    ap.add_argument("--out", default="benchmarks/results/reference_search.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    records = [json.loads(line) for p in sorted(glob.glob(args.records)) for line in open(p, encoding="utf-8")]
    records = [r for r in records if r.get("model", "efficientnet_lite0") == args.model and r["budget"] is None]
    lm = load_model(args.model)
    samples = {s.name: s for s in list(skimage_samples()) + list(imagenet_samples())}
    done = set()
    if os.path.exists(args.out):
        done = {json.loads(line)["image"] for line in open(args.out, encoding="utf-8")}
    for name in args.only:
        if name in done or name not in samples:
            continue
        model = Cached(lm.model.eval())
        x = lm.preprocess(samples[name].image)[None]
        mask = slic_mask(x[0], n_segments=49)
        with torch.no_grad():
            target = int(model(x).argmax())
        mine = {r["search"]: r for r in records if r["image"] == name}
        if not mine:
            continue
        ref = ReferenceSearch([r["order"] for r in mine.values()], args.starts, args.evaluations)
        t = time.perf_counter()
        (res,) = SubmodularAttribution(model, search=ref, weights=BALANCED).explain(
            x, target=target, feature_mask=mask, perturbations_per_eval=16
        )
        sec = time.perf_counter() - t
        a = res.attributions
        rec = dict(
            image=name,
            model=args.model,
            m=int(res.region_ids.numel()),
            evals=res.n_evaluations,
            sec=round(sec, 1),
            starts=ref.log,
            order=res.order.tolist(),
            ins=float(insertion(model, x, a, target, n_steps=50, perturbations_per_eval=16)),
            ins_blur=float(insertion(model, x, a, target, n_steps=50, substrate="blur", perturbations_per_eval=16)),
            dele=float(deletion(model, x, a, target, n_steps=50, perturbations_per_eval=16)),
            region={"reference": region_curves(model, x, mask, target, res.order.tolist())},
        )
        for search, r in mine.items():
            rec["region"][search] = region_curves(model, x, mask, target, r["order"])
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps({k: v for k, v in rec.items() if k != "order"}), flush=True)
    summary(args.out)


def summary(path: str) -> None:
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    searches = sorted({s for r in rows for s in r["region"]} - {"reference"})
    print(
        f"{len(rows)} images; region-level areas (insertion ↑, deletion ↓, insertion − deletion ↑); "
        "distance = the reference's insertion − deletion minus the search's"
    )
    print("| order | images | insertion | deletion | ins − del | distance to the reference |")
    print("|---|---:|---:|---:|---:|---:|")
    for s in ["reference"] + searches:
        rs = [r for r in rows if s in r["region"]]
        ins = np.array([r["region"][s][0] for r in rs])
        dele = np.array([r["region"][s][1] for r in rs])
        ref = np.array([r["region"]["reference"][0] - r["region"]["reference"][1] for r in rs])
        print(
            f"| {s} | {len(rs)} | {ins.mean():.3f} | {dele.mean():.3f} | {(ins - dele).mean():.3f} | "
            f"{(ref - (ins - dele)).mean():.3f} |"
        )
    assert all(math.isfinite(r["ins"]) for r in rows)


if __name__ == "__main__":
    main()
