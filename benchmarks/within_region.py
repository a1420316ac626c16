"""Lever of issue 8: does ordering pixels inside regions (``within_region="gradient"``) help
the pixel-grid curves?  Same search, same regions; only the map differs.

    python benchmarks/within_region.py --images 0 1 4
"""

from __future__ import annotations

import argparse
import json

from captum_submodular import SubmodularAttribution
from captum_submodular.data import imagenet_samples
from captum_submodular.metrics import deletion, insertion
from captum_submodular.models import load_model
from captum_submodular.regions import slic_mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[0, 1, 4])
    ap.add_argument("--segments", type=int, default=49)
    ap.add_argument("--search", default="accelerated")
    args = ap.parse_args()
    loaded = load_model()
    samples = imagenet_samples()
    for i in args.images:
        s = samples[i]
        x = loaded.preprocess(s.image)[None]
        mask = slic_mask(x[0], n_segments=args.segments)
        sa = SubmodularAttribution(loaded.model, search=args.search, within_region="gradient")
        (res,) = sa.explain(x, target=s.label, feature_mask=mask, perturbations_per_eval=16)
        plain = res.region_values.float()[
            __import__("torch").searchsorted(res.region_ids, mask)].expand_as(x)
        row = dict(image=s.name, m=int(res.region_ids.numel()), search=args.search)
        for name, a in (("plain", plain), ("gradient", res.attributions)):
            row[f"ins_{name}"] = round(insertion(loaded.model, x, a, target=s.label).item(), 4)
            row[f"blur_ins_{name}"] = round(insertion(loaded.model, x, a, target=s.label, substrate="blur").item(), 4)
            row[f"del_{name}"] = round(deletion(loaded.model, x, a, target=s.label).item(), 4)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
