"""Small side-by-side comparison on the real model (the table of the issue note).

EfficientNet-Lite0 (``load_model()``), the first 4 bundled ImageNet samples,
SLIC with 25 regions (one mask per image, shared by the region methods), and:

* ours: ``SubmodularAttribution(model)`` (default bidirectional search),
  ``feature_mask`` = the SLIC mask, ``perturbations_per_eval=64``;
* Occlusion: window (3, 15, 15), stride (3, 8, 8);
* FeatureAblation: the SLIC mask;
* KernelShap: the SLIC mask, 300 samples;
* IntegratedGradients: 32 steps, internal batch 32;
* LayerGradCam: the last Conv2d of the timm model (``conv_head``), upsampled
  bilinearly to 224×224.

Metrics: insertion, deletion (zero baseline) and blurred insertion, 50 steps,
softmax of the predicted class; highest confidence for misclassified images
(true labels passed). Prints the Markdown table and writes ``table.md``,
``results.json``, ``results.csv`` and ``figure.png`` to ``outputs/compare_small/``.

Run from the repository root::

    python benchmarks/compare_small.py [--images 4] [--threads 1] [--out outputs/compare_small]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from captum_submodular.compare import compare, last_conv_layer, standard_methods
from captum_submodular.data import imagenet_samples
from captum_submodular.models import load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--regions", type=int, default=25)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=os.path.join("outputs", "compare_small"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # KernelShap samples coalitions at random

    lm = load_model()
    model = lm.model
    samples = imagenet_samples(limit=args.images)
    x = torch.stack([lm.preprocess(s.image) for s in samples])
    layer = last_conv_layer(model)
    assert layer is model.conv_head, "expected timm's conv_head to be the last Conv2d"
    methods = standard_methods(
        model,
        n_segments=args.regions,
        occlusion_window=(3, 15, 15),
        occlusion_stride=(3, 8, 8),
        shap_samples=300,
        ig_steps=32,
        layer=layer,
        perturbations_per_eval=64,
    )
    started = time.perf_counter()
    result = compare(
        model, x, None, methods,
        metrics=("insertion", "deletion", "insertion_blur"),
        n_steps=args.steps,
        labels=[int(s.label) for s in samples],
        names=[s.name for s in samples],
        perturbations_per_eval=64,
    )  # fmt: skip
    elapsed = time.perf_counter() - started

    table = result.table()
    print(table)
    for i, name in enumerate(result.names):
        t, lab = result.targets[i], result.labels[i]
        print(
            f"{name}: predicted {lm.class_names[t]!r} (p={result.target_probabilities[i]:.2f}), "
            f"label {lm.class_names[lab]!r}{'' if t == lab else '  <- misclassified'}"
        )
    print(f"total {elapsed:.0f} s, torch threads {args.threads}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    result.to_json(os.path.join(args.out, "results.json"))
    result.to_csv(os.path.join(args.out, "results.csv"))
    torch.save({"maps": result.maps, "inputs": result.inputs}, os.path.join(args.out, "maps.pt"))
    result.figure(
        os.path.join(args.out, "figure.png"), to_display=lm.to_display, class_names=lm.class_names,
        title=f"EfficientNet-Lite0, {len(samples)} ImageNet samples, SLIC {args.regions} regions, "
              f"{args.steps}-step curves",
    )  # fmt: skip
    print(f"wrote {args.out}/{{table.md,results.json,results.csv,figure.png}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
