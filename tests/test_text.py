"""captum_submodular.text: text regions, the LLM adapter, its batched scoring, metrics and errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pytest.importorskip("transformers")

from captum.attr import FeatureAblation, LLMAttribution, LLMAttributionResult, TextTemplateInput, TextTokenInput  # noqa: E402

from captum_submodular import SubmodularAttribution  # noqa: E402
from captum_submodular.metrics import METRICS  # noqa: E402
from captum_submodular.text import LLMScorer, SubmodularLLMAttribution, logprob_drop, passage_curves, text_regions  # noqa: E402
from captum_submodular.text.models import ContextReaderLM, LMOutput, tiny_gpt2, word_level_tokenizer  # noqa: E402

EVIDENCE = "alpha beta gamma".split()  # passage A: the model reads these
NOISE = "red green blue".split()  # passage B: the model cannot read these
MORE = "one two three".split()  # passage C: read
OTHER = "question answer the cat sat on mat dog ran in park".split()


@pytest.fixture(scope="module")
def tok() -> Any:
    return word_level_tokenizer(EVIDENCE + NOISE + MORE + OTHER)


class Counting(torch.nn.Module):
    """Wraps a model and counts forward calls (Captum calls ``model.forward`` directly)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.device = torch.device("cpu")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner(*args, **kwargs)


def reader(tok: Any, boost: float = 4.0) -> ContextReaderLM:
    """Reads passages A and C (and the question), not B; A's and C's words raise p('answer')."""
    ids = tok.convert_tokens_to_ids
    model = ContextReaderLM(len(tok), [ids(w) for w in EVIDENCE + MORE + ["question"]], seed=0, scale=0.5)
    target = ids("answer")
    for w, b in zip(EVIDENCE + MORE, [boost] * 3 + [boost / 4] * 3, strict=True):
        model.weight.data[ids(w), target] += b
    return model.eval()


TEMPLATE = "{} {} {} question"
VALUES = ["alpha beta gamma", "red green blue", "one two three"]


# --------------------------------------------------------------------------- regions


def test_word_and_sentence_regions_exact(tok: Any) -> None:
    text = "the cat sat. the dog ran in the park."
    words = text_regions(tok, text, level="word")
    assert words.input_ids.tolist() == [[2] + tok.encode(text, add_special_tokens=False)]
    # [BOS] takes the id of the first region; "sat." is one word of two tokens
    assert words.feature_mask.tolist() == [[0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 8]]
    assert words.region_texts == ["the", "cat", "sat.", "the", "dog", "ran", "in", "the", "park."]
    sentences = text_regions(tok, text, level="sentence")
    assert sentences.feature_mask.tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]]
    assert sentences.region_texts == ["the cat sat.", "the dog ran in the park."]
    tokens = text_regions(tok, text, level="token")
    assert tokens.feature_mask.tolist() == [[0] + list(range(11))]
    for r in (words, sentences, tokens):
        # the special token is never removed: its baseline is itself; every other baseline is [PAD]
        assert r.special_tokens_mask.tolist() == [[True] + [False] * 11]
        assert r.baselines.tolist() == [[2] + [0] * 11]


def test_fallback_without_offsets_matches_offsets() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {
        t: i
        for i, t in enumerate(
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing", "cat", "##s", ".", "we", "like"]
        )
    }
    core = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    wp = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    text = "we like playing cats. cats like playing."
    for level in ("word", "sentence"):
        fast = text_regions(wp, text, level=level, baseline="mask")
        slow = text_regions(wp, text, level=level, baseline="mask", offsets=False)
        assert torch.equal(fast.input_ids, slow.input_ids)
        assert torch.equal(fast.feature_mask, slow.feature_mask)
        assert torch.equal(fast.baselines, slow.baselines)
        assert fast.region_texts == slow.region_texts
    words = text_regions(wp, text, level="word", baseline="mask")
    # [CLS] we like play ##ing cat ##s . cats ... [SEP]: "playing" and "cats." are one region each
    assert words.region_texts[:4] == ["we", "like", "playing", "cats."]
    assert words.feature_mask[0, :8].tolist() == [0, 0, 1, 2, 2, 3, 3, 3]
    assert words.baselines[0, 0] == 2 and words.baselines[0, -1] == 3 and words.baselines[0, 1] == 4


class BagClassifier(torch.nn.Module):
    """Token ids → 2 logits: class 1 counts the 'good' words; it cannot see any other word."""

    def __init__(self, vocab: int, good: list[int]) -> None:
        super().__init__()
        self.good = torch.zeros(vocab)
        self.good[good] = 1.0
        self.seen: list[torch.Tensor] = []

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.seen.append(ids.clone())
        score = self.good[ids].sum(1)
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_classifier_on_integer_inputs_known_answer(tok: Any) -> None:
    text = "the cat sat. alpha beta gamma. the dog ran in the park."
    regions = text_regions(tok, text, level="sentence")
    model = BagClassifier(len(tok), [tok.convert_tokens_to_ids(w) for w in ("alpha", "beta")])
    (res,) = SubmodularAttribution(model).explain(
        regions.input_ids, baselines=regions.baselines, feature_mask=regions.feature_mask, target=1
    )
    values = regions.region_values(res.attributions)
    assert values[1] > 0 and values[0] == 0 and values[2] == 0  # only the sentence it reads
    assert regions.texts_of(res.minimal_subset) == ["alpha beta gamma."]
    # no composed input ever removed [BOS]
    assert all(bool((ids[:, 0] == 2).all()) for ids in model.seen)


def test_bad_text_inputs(tok: Any) -> None:
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        text_regions(tok, "   ")
    with pytest.raises(ValueError, match="level must be one of"):
        text_regions(tok, "the cat", level="paragraph")
    with pytest.raises(ValueError, match="baseline='mask': the tokenizer has no mask token"):
        text_regions(tok, "the cat", baseline="mask")
    with pytest.raises(ValueError, match=r"feature_mask covers the special token '\[BOS\]' at position 0"):
        text_regions(tok, "the cat sat", feature_mask=torch.tensor([0, 0, 1, 1]))
    custom = text_regions(tok, "the cat sat", feature_mask=torch.tensor([-1, 5, 5, 9]))
    assert custom.feature_mask.tolist() == [[0, 0, 0, 1]] and custom.region_texts == ["the cat", "sat"]


# --------------------------------------------------------------------------- the LLM adapter


@pytest.mark.parametrize("search", ["bidirectional", "greedy", "refined"])
def test_reader_lm_unread_passage_gets_exactly_zero(tok: Any, search: str) -> None:
    model = reader(tok)
    llm = SubmodularLLMAttribution(SubmodularAttribution(model, search=search), tok)
    res = llm.attribute(TextTemplateInput(TEMPLATE, values=VALUES), target="answer")
    assert isinstance(res, LLMAttributionResult)
    a = res.seq_attr.tolist()
    assert a[1] == 0.0 and a[0] > a[2] > 0
    assert res.ordered_features == ["alpha beta gamma", "one two three", "red green blue"]
    assert res.minimal_features == ["alpha beta gamma", "one two three"]
    sub = res.submodular
    assert sub.insertion_curve[-1] == sub.insertion_curve[-2]  # adding B last changes nothing
    # token input: the unreadable tokens get exactly 0, every readable one a positive value
    inp = TextTokenInput("alpha red beta green one blue", tok, skip_tokens=tok.all_special_ids)
    tokens = llm.attribute(inp, target="answer").seq_attr.tolist()
    assert [v == 0.0 for v in tokens] == [False, True, False, True, False, True]
    assert all(tokens[i] > 0 for i in (0, 2, 4))


def test_batched_scores_equal_captum_one_by_one(tok: Any) -> None:
    gpt = tiny_gpt2(len(tok), seed=1)
    llm = SubmodularLLMAttribution(SubmodularAttribution(gpt), tok)
    inp = TextTemplateInput(TEMPLATE, values=VALUES)
    scorer = LLMScorer(llm, inp, "answer dog", batch_size=8)
    rows = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=torch.bool)
    batched = scorer(rows)  # prompts of different lengths, one call
    target = torch.tensor(tok.encode("answer dog", add_special_tokens=False))
    for forward_in_tokens in (False, True):
        one = torch.stack(
            [llm._forward_func(r[None].float(), inp, target, False, None, forward_in_tokens) for r in rows]
        ).double()
        assert torch.allclose(batched, one, rtol=0, atol=1e-5)
    assert scorer.model_calls == 2  # the full prompt once, then the 8 rows at once
    # the whole attribution: batched and Captum's forward one prompt at a time agree
    res_b = llm.attribute(inp, target="answer dog")
    slow = SubmodularLLMAttribution(SubmodularAttribution(gpt), tok, batched=False)
    res_s = slow.attribute(inp, target="answer dog", forward_in_tokens=False)
    assert torch.equal(res_b.submodular.order, res_s.submodular.order)
    assert torch.allclose(res_b.submodular.insertion_curve, res_s.submodular.insertion_curve, atol=1e-5)
    assert res_b.model_calls < res_s.model_calls == res_s.submodular.n_evaluations
    # token inputs share a length: one call per batch of the search
    tin = TextTokenInput("alpha red beta green one blue", tok, skip_tokens=tok.all_special_ids)
    res_t = llm.attribute(tin, target="answer", perturbations_per_eval=64)
    slow_t = slow.attribute(tin, target="answer", forward_in_tokens=False)
    assert torch.equal(res_t.submodular.order, slow_t.submodular.order)


def test_captum_methods_run_unchanged(tok: Any) -> None:
    gpt = tiny_gpt2(len(tok), seed=2)
    inp = TextTemplateInput(TEMPLATE, values=VALUES)
    ours = SubmodularLLMAttribution(FeatureAblation(gpt), tok).attribute(inp, target="answer")
    captum = LLMAttribution(FeatureAblation(gpt), tok).attribute(inp, target="answer")
    assert torch.equal(ours.seq_attr, captum.seq_attr) and torch.equal(ours.token_attr, captum.token_attr)


def test_result_plots_and_generation(tok: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    gpt = tiny_gpt2(len(tok), seed=3)
    llm = SubmodularLLMAttribution(SubmodularAttribution(gpt), tok)
    res = llm.attribute(TextTemplateInput(TEMPLATE, values=VALUES), gen_args={"max_new_tokens": 2, "do_sample": False})
    assert len(res.output_tokens) == 2 and res.token_attr is None
    fig, _ = res.plot_seq_attr()
    assert fig is not None
    # the map reproduces the order, as in every SubmodularAttribution map
    order = torch.sort(-res.seq_attr.double(), stable=True).indices
    assert order.tolist() == res.submodular.order.tolist()


def test_bad_llm_input_fails_before_any_model_call(tok: Any) -> None:
    model = Counting(reader(tok))
    llm = SubmodularLLMAttribution(SubmodularAttribution(model), tok)
    template = TextTemplateInput(TEMPLATE, values=VALUES)
    with pytest.raises(ValueError, match="inp has no interpretable features"):
        llm.attribute(TextTokenInput("", tok, skip_tokens=tok.all_special_ids), target="answer")
    with pytest.raises(ValueError, match="every value of the template is empty"):
        llm.attribute(TextTemplateInput("{} question", values=[""]), target="answer")
    from tokenizers import processors

    no_bos = word_level_tokenizer(EVIDENCE + NOISE + MORE + OTHER)
    no_bos.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A")
    with pytest.raises(ValueError, match="prompt with every feature removed is empty"):
        SubmodularLLMAttribution(SubmodularAttribution(model), no_bos).attribute(
            TextTemplateInput("{} {}", values=["alpha", "beta"]), target="answer"
        )
    with pytest.raises(ValueError, match=r"special token\(s\) \['\[BOS\]'\].*skip_tokens"):
        llm.attribute(TextTokenInput("alpha beta", tok), target="answer")
    with pytest.raises(ValueError, match="cannot be encoded by the tokenizer.*unknown token"):
        llm.attribute(template, target="Paris")
    with pytest.raises(ValueError, match="target is an empty string"):
        llm.attribute(template, target="")
    with pytest.raises(ValueError, match="no generate"):
        llm.attribute(template)
    with pytest.raises(ValueError, match="gen_args is only used to generate"):
        llm.attribute(template, target="answer", gen_args={"max_new_tokens": 1})
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        llm.attribute(template, target="answer", n_samples=3)
    with pytest.raises(ValueError, match="inp must be one of"):
        llm.attribute("alpha beta", target="answer")
    with pytest.raises(ValueError, match="outside the tokenizer's vocabulary"):
        llm.attribute(template, target=torch.tensor([len(tok) + 5]))
    assert model.calls == 0
    with pytest.raises(ValueError, match="within_region='gradient'"):
        SubmodularLLMAttribution(SubmodularAttribution(model, within_region="gradient"), tok)


def test_user_method_not_mutated(tok: Any) -> None:
    model = reader(tok)
    sa = SubmodularAttribution(model)
    SubmodularLLMAttribution(sa, tok).attribute(TextTemplateInput(TEMPLATE, values=VALUES), target="answer")
    assert sa.forward_func is model and sa.output_type == "logits"


# --------------------------------------------------------------------------- metrics


def test_logprob_drop_and_passage_curves_closed_form(tok: Any) -> None:
    model = reader(tok)
    llm = SubmodularLLMAttribution(SubmodularAttribution(model), tok)
    inp = TextTemplateInput(TEMPLATE, values=VALUES)
    scorer = LLMScorer(llm, inp, "answer")
    full = scorer.full_score
    only = {
        k: float(scorer(torch.tensor([k]))[0])
        for k in ((True, True, True), (False, True, True), (True, True, False), (False, True, False))
    }
    assert only[(True, True, True)] == full
    # removing A, then C (B first ranked last): exact differences of the scorer's own values
    drops = logprob_drop(scorer, torch.tensor([3.0, 0.0, 1.0]), ks=(1, 2, 3))
    assert drops.tolist() == [
        full - only[(False, True, True)],
        full - only[(False, True, False)],
        full - only[(False, True, False)],
    ]  # B changes nothing
    # ranking B first: removing it drops nothing
    assert logprob_drop(scorer, torch.tensor([0.0, 5.0, 1.0]), ks=(1,)).tolist() == [0.0]
    curves = passage_curves(scorer, torch.tensor([3.0, 0.0, 1.0]))
    assert curves.insertion[-1] == full and curves.deletion[0] == full
    assert curves.insertion[0] == curves.deletion[-1] == only[(False, True, False)]
    assert curves.deletion[1] == only[(False, True, True)]
    assert curves.fractions.tolist() == [0.0, 1 / 3, 2 / 3, 1.0]
    expected = float(torch.trapezoid(curves.insertion, curves.fractions))
    assert curves.insertion_area == expected
    assert METRICS["llm_insertion"].fn(scorer, torch.tensor([3.0, 0.0, 1.0])) == expected
    with pytest.raises(ValueError, match="expected 3 values"):
        logprob_drop(scorer, torch.ones(4))
    with pytest.raises(ValueError, match="ks must be numbers of features in 1..3"):
        logprob_drop(scorer, torch.ones(3), ks=(4,))


def test_llm_metrics_registered_with_directions() -> None:
    assert METRICS["llm_logprob_drop"].higher_is_better is True
    assert METRICS["llm_insertion"].higher_is_better is True
    assert METRICS["llm_deletion"].higher_is_better is False
    assert {METRICS[n].kind for n in ("llm_logprob_drop", "llm_insertion", "llm_deletion")} == {"llm"}
    with pytest.raises(ValueError, match="scores language-model attributions"):
        METRICS["llm_deletion"].compute(None, torch.zeros(1), [0])  # type: ignore[arg-type]


class PixelReaderLM(torch.nn.Module):
    """A multimodal known answer: the logits add ``w · mean(pixels of the top-left quarter)``; the rest of
    the image is never read."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.w = torch.linspace(-1.0, 1.0, vocab)
        self.device = torch.device("cpu")

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, pixel_values: Any = None, **_: Any) -> Any:
        seen = pixel_values[:, :, :2, :2].mean(dim=(1, 2, 3)) / 255.0
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], self.w.numel()) + seen[:, None, None] * self.w
        return LMOutput(logits=logits)


def test_image_mask_input_known_answer(tok: Any) -> None:
    from captum.attr import ImageMaskInput
    from PIL import Image

    image = Image.fromarray(torch.arange(48, dtype=torch.uint8).reshape(4, 4, 3).numpy() * 5)
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])

    def processor(img: Any) -> Any:
        import numpy as np

        pixels = torch.tensor(np.array(img), dtype=torch.float32).reshape(1, 4, 4, 3).permute(0, 3, 1, 2)
        return {"input_ids": torch.tensor([tok.encode("question")]), "pixel_values": pixels}

    inp = ImageMaskInput(image, mask=mask, baseline=(0, 0, 0), processor_fn=processor)
    llm = SubmodularLLMAttribution(SubmodularAttribution(PixelReaderLM(len(tok))), tok)
    res = llm.attribute(inp, target="answer", forward_in_tokens=False)
    a = res.seq_attr.tolist()
    assert a[0] > 0 and a[1:] == [0.0, 0.0, 0.0]  # only segment 0 is read
    assert res.model_calls == res.submodular.n_evaluations  # processor outputs: Captum's forward, one by one


def test_missing_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    for name in [m for m in sys.modules if m == "captum_submodular.text" or m.startswith("captum_submodular.text.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install captum_submodular\[text\]"):
        importlib.import_module("captum_submodular.text")


def test_prob_target_is_exp_of_log_prob(tok: Any) -> None:
    model = reader(tok)
    inp = TextTemplateInput(TEMPLATE, values=VALUES)
    log_scorer = LLMScorer(SubmodularLLMAttribution(SubmodularAttribution(model), tok), inp, "answer")
    prob_scorer = LLMScorer(
        SubmodularLLMAttribution(SubmodularAttribution(model), tok, attr_target="prob"), inp, "answer"
    )
    rows = torch.tensor([[True, False, True], [False, False, False]])
    assert torch.equal(prob_scorer(rows), torch.exp(log_scorer(rows).float()).double())
    res = SubmodularLLMAttribution(SubmodularAttribution(model), tok, attr_target="prob").attribute(
        inp, target="answer"
    )
    assert res.seq_attr[1] == 0.0 and res.submodular.insertion_curve[-1] == prob_scorer.full_score
