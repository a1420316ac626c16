"""The parts of Captum's LLM API that captum_submodular.text relies on: fails loudly if Captum changes them."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")

from captum.attr import (  # noqa: E402
    FeatureAblation,
    KernelShap,
    Lime,
    LLMAttribution,
    LLMAttributionResult,
    ShapleyValues,
    ShapleyValueSampling,
    TextTemplateInput,
    TextTokenInput,
)

from captum_submodular import _compat  # noqa: E402
from captum_submodular.text.models import tiny_gpt2, word_level_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tok() -> Any:
    return word_level_tokenizer("the cat sat on mat answer".split())


def test_llm_forward_signature() -> None:
    names = [n for n, _ in _compat.llm_forward_parameters()]
    assert names[:2] == ["inp", "target_tokens"]
    assert set(names[2:]) <= set(_compat.LLM_FORWARD_KNOWN), f"Captum's LLM forward gained {names}"
    assert all(d is not inspect.Parameter.empty for _, d in _compat.llm_forward_parameters()[2:])


def test_llm_forward_args_follow_captum_order(tok: Any) -> None:
    inp = TextTemplateInput("{} {}", values=["the cat", "sat"])
    target = torch.tensor([5])
    args = _compat.llm_forward_args(inp, target, {"forward_in_tokens": False})
    params = dict(_compat.llm_forward_parameters())
    assert args[0] is inp and args[1] is target and len(args) == len(params)
    names = list(params)
    assert args[names.index("forward_in_tokens")] is False
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        _compat.llm_forward_args(inp, target, {"not_an_option": 1})
    # Captum's own forward takes exactly these arguments, in this order, and returns a 0-d score
    gpt = tiny_gpt2(len(tok))
    llm = LLMAttribution(FeatureAblation(gpt), tok)
    llm.include_per_token_attr = False
    out = llm._forward_func(torch.ones(1, 2), *args)
    assert out.dim() == 0


def test_supported_methods_and_inputs() -> None:
    assert set(LLMAttribution.SUPPORTED_METHODS) == {
        FeatureAblation,
        ShapleyValueSampling,
        ShapleyValues,
        Lime,
        KernelShap,
    }
    assert TextTemplateInput in LLMAttribution.SUPPORTED_INPUTS and TextTokenInput in LLMAttribution.SUPPORTED_INPUTS


def test_private_helpers(tok: Any) -> None:
    gpt = tiny_gpt2(len(tok))
    llm = LLMAttribution(FeatureAblation(gpt), tok)
    model_input = _compat.llm_model_input(llm, "the cat")
    assert set(model_input) == {"input_ids"} and model_input["input_ids"].tolist() == [tok.encode("the cat")]
    inp = TextTemplateInput("{} {}", values=["the cat", "sat"])
    assert _compat.llm_target_tokens(llm, inp, "answer", None).tolist() == [tok.convert_tokens_to_ids("answer")]
    assert _compat.llm_pretty_tokens(torch.tensor([4, 5]), tok) == ["the", "cat"]
    result = LLMAttributionResult(
        seq_attr=torch.zeros(2), token_attr=None, input_tokens=["a", "b"], output_tokens=["c"], inp=inp
    )
    assert result.seq_attr.shape == (2,)
    # the attribute call's contract: the method's forward is replaced, its input is 1×n ones
    assert llm.attr_method.forward_func == llm._forward_func
    assert torch.equal(inp.to_tensor(), torch.ones(1, 2))
