"""Development runs of the searches on images that are NOT the evaluation sets.

The evaluation sets (the 20 ImageNet samples; astronaut, chelsea, coffee, rocket) are never
used here.  Two development sets:

* ``skdev``: EfficientNet-Lite0 on other photos shipped in scikit-image's data folder
  (motorcycle_left, camera, coins, horse, hubble_deep_field, retina, ihc, clock_motion,
  motorcycle_right, logo), SLIC 49, the predicted class;
* ``cifar``: the PyTorch-tutorial CIFAR-10 ``Net`` shipped in captum 0.8.0's wheel
  (``pip download --no-deps captum==0.8.0``, then unzip
  ``captum/insights/attr_vis/models/cifar_torchvision.pt``; pass its path with
  ``--cifar-weights``) on the 20 CIFAR-10 images of foolbox's data folder, an 8×8 grid
  of 4×4 tiles (64 regions) or SLIC, the predicted class.

Pixel-grid insertion (baseline 0), blurred insertion and deletion, 50 steps, softmax.
Model outputs are cached by the bytes of the composed input (per process, and on disk
with ``--cache``), so variants that ask for the same inputs cost nothing twice; the
reported evaluations are the search's own ``n_evaluations``.

    python benchmarks/dev_search.py --set cifar --searches bidirectional accelerated phasewin
    python benchmarks/dev_search.py --set skdev --images 6 --searches bidirectional 'twosided:refine=0'
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import pickle
import time
from typing import Dict, List

import numpy as np
import torch
from PIL import Image

from captum_submodular import SubmodularAttribution
from captum_submodular.metrics import deletion, insertion
from captum_submodular.regions import grid_mask, slic_mask
from captum_submodular.search import SEARCHES

SKDEV = (
    "motorcycle_left.png",
    "camera.png",
    "coins.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "clock_motion.png",
    "motorcycle_right.png",
    "logo.png",
)


class Cached(torch.nn.Module):
    """The model, with outputs cached by input bytes; counts the rows it really evaluates."""

    def __init__(self, model: torch.nn.Module, path: str = "") -> None:
        super().__init__()
        self.model = model
        self.path = path
        self.store: Dict[bytes, torch.Tensor] = {}
        if path and os.path.exists(path):
            with open(path, "rb") as fh:
                self.store = pickle.load(fh)
        self.fresh = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.blake2b(r.numpy().tobytes(), digest_size=16).digest() for r in x.detach().contiguous()]
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        if missing:
            with torch.inference_mode():
                out = self.model(x[missing])
            for i, row in zip(missing, out):
                self.store[keys[i]] = row.clone()
            self.fresh += len(missing)
        return torch.stack([self.store[k] for k in keys])

    def save(self) -> None:
        if self.path:
            with open(self.path + ".tmp", "wb") as fh:
                pickle.dump(self.store, fh)
            os.replace(self.path + ".tmp", self.path)


def cifar_net(weights: str) -> torch.nn.Module:
    from torch import nn

    class Net(nn.Module):  # the PyTorch CIFAR-10 tutorial network (captum's insights example)
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool1 = nn.MaxPool2d(2, 2)
            self.pool2 = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)
            self.relu1, self.relu2, self.relu3, self.relu4 = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()

        def forward(self, x):
            x = self.pool1(self.relu1(self.conv1(x)))
            x = self.pool2(self.relu2(self.conv2(x)))
            x = x.reshape(-1, 16 * 5 * 5)
            return self.fc3(self.relu4(self.fc2(self.relu3(self.fc1(x)))))

    net = Net()
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    return net.eval()


def dev_set(name: str, args: argparse.Namespace):
    """(model, [(image name, x 1×C×H×W, mask)])."""
    if name == "skdev":
        import skimage.data

        from captum_submodular.models import load_model

        lm = load_model()
        items = []
        folder = os.path.dirname(skimage.data.__file__)
        for img in SKDEV[: args.images]:
            x = lm.preprocess(Image.open(os.path.join(folder, img)).convert("RGB"))[None]
            if args.grid:
                mask = grid_mask(x.shape[-2], x.shape[-1], grid=args.grid)
            else:
                mask = slic_mask(x[0], n_segments=args.segments)
            items.append((img.split(".")[0], x, mask))
        return lm.model.eval(), items
    import foolbox  # noqa: F401  (only to locate its data folder)

    folder = os.path.join(os.path.dirname(foolbox.__file__), "data")
    files = sorted(glob.glob(os.path.join(folder, "cifar10_*.png")))[: args.images]
    items = []
    for path in files:
        a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        x = torch.from_numpy((a - 0.5) / 0.5).permute(2, 0, 1)[None].contiguous()
        mask = grid_mask(32, 32, grid=8) if args.cifar_mask == "grid" else slic_mask(x[0], n_segments=args.segments)
        items.append((os.path.basename(path)[:-4], x, mask))
    return cifar_net(args.cifar_weights), items


def make_search(spec: str):
    name, _, rest = spec.partition(":")
    kwargs = {}
    for part in filter(None, rest.split(",")):
        k, v = part.split("=")
        try:
            kwargs[k] = int(v)
        except ValueError:
            try:
                kwargs[k] = float(v)
            except ValueError:
                kwargs[k] = v
    return SEARCHES[name](**kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("skdev", "cifar"), default="cifar")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--segments", type=int, default=49)
    ap.add_argument("--cifar-mask", choices=("grid", "slic"), default="grid")
    ap.add_argument("--grid", type=int, default=0, help="skdev: grid×grid cells, not SLIC")
    ap.add_argument("--cifar-weights", default="/tmp/captum08/captum/insights/attr_vis/models/cifar_torchvision.pt")
    ap.add_argument("--searches", nargs="+", default=["bidirectional"])
    ap.add_argument("--budget", type=int, default=None, help="max_evaluations for every search")
    ap.add_argument("--ppe", type=int, default=16)
    ap.add_argument("--cache", default="", help="pickle file of cached model outputs")
    ap.add_argument("--out", default="outputs/dev_search.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, items = dev_set(args.set, args)
    model = Cached(model, args.cache)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    rows: List[dict] = []
    for name, x, mask in items:
        with torch.no_grad():
            target = int(model(x).argmax())
        for spec in args.searches:
            t = time.perf_counter()
            sa = SubmodularAttribution(model, search=make_search(spec), max_evaluations=args.budget)
            (res,) = sa.explain(x, target=target, feature_mask=mask, perturbations_per_eval=args.ppe)
            sec = time.perf_counter() - t
            a = res.attributions
            rec = dict(
                set=args.set,
                image=name,
                m=int(res.region_ids.numel()),
                search=spec,
                budget=args.budget,
                evals=res.n_evaluations,
                rounds=res.n_rounds,
                sec=round(sec, 1),
                ins=float(insertion(model, x, a, target, n_steps=50, perturbations_per_eval=args.ppe)),
                ins_blur=float(
                    insertion(model, x, a, target, n_steps=50, substrate="blur", perturbations_per_eval=args.ppe)
                ),
                dele=float(deletion(model, x, a, target, n_steps=50, perturbations_per_eval=args.ppe)),
                order=res.order.tolist(),
            )
            rows.append(rec)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(json.dumps({k: v for k, v in rec.items() if k != "order"}), flush=True)
        model.save()
    summary(rows)


def summary(rows: List[dict]) -> None:
    specs = list(dict.fromkeys(r["search"] for r in rows))
    print("| search | images | evals | rounds | insertion | blur insertion | deletion |")
    for s in specs:
        rs = [r for r in rows if r["search"] == s]
        print(
            f"| {s} | {len(rs)} | {np.mean([r['evals'] for r in rs]):.0f} | "
            f"{np.mean([r.get('rounds', 0) for r in rs]):.0f} | {np.mean([r['ins'] for r in rs]):.4f} | "
            f"{np.mean([r['ins_blur'] for r in rs]):.4f} | {np.mean([r['dele'] for r in rs]):.4f} |"
        )


if __name__ == "__main__":
    main()
