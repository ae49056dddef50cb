from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from safer.cli import app, main


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_train_then_evaluate_prints_the_metrics_json(synthetic_inter, tmp_path):
    out = tmp_path / "pop"
    run("seqrec", "train", "--data", str(synthetic_inter), "--model", "pop", "--out", str(out))
    printed = run(
        "seqrec", "evaluate", "--model", str(out), "--data", str(synthetic_inter), "--json"
    )
    result = json.loads(printed)
    assert set(result) == {"hr@10", "ndcg@10", "mrr@10", "recall@10", "protocol", "n_users"}
    assert result["protocol"] == "recbole" and result["n_users"] == 120


def test_unknown_model_exits_2_with_the_known_names(synthetic_inter, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "seqrec",
                "train",
                "--data",
                str(synthetic_inter),
                "--model",
                "bert",
                "--out",
                str(tmp_path),
            ]
        )
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "known: pop, sasrec, gru4rec, hstu, fuxi" in err


def test_benchmark_writes_a_table(synthetic_inter, tmp_path):
    out = tmp_path / "bench.md"
    run("seqrec", "benchmark", "--data", str(synthetic_inter), "--models", "pop", "--out", str(out))
    text = out.read_text()
    assert "| pop | recbole | 120 |" in text and "command:" in text


def test_benchmark_scaling_rows_report_size_and_protocol(synthetic_inter, tmp_path):
    out = tmp_path / "scaling.md"
    printed = run(
        "seqrec", "benchmark", "--data", str(synthetic_inter), "--models", "sasrec",
        "--scaling-layers", "1,2", "--protocol", "hstu", "--epochs", "1", "--out", str(out),
        "--json",
    )  # fmt: skip
    rows = {r["model"]: r for r in json.loads(printed)}
    assert list(rows) == [
        "sasrec", "hstu (1 layers)", "fuxi (1 layers)", "hstu (2 layers)", "fuxi (2 layers)"
    ]  # fmt: skip
    assert {r["protocol"] for r in rows.values()} == {"hstu"}
    assert {r["training"] for r in rows.values()} == {"sequence"}
    assert rows["hstu (2 layers)"]["parameters"] > rows["hstu (1 layers)"]["parameters"] > 0
    assert rows["fuxi (2 layers)"]["layers"] == 2 and rows["sasrec"]["epochs_run"] == 1
    assert "| hstu (2 layers) | hstu | 120 |" in out.read_text()


def test_train_an_rl_head_then_evaluate_the_papers_metrics(synthetic_inter, tmp_path):
    out = tmp_path / "sa2c"
    printed = run(
        "seqrec", "train", "--data", str(synthetic_inter), "--model", "sasrec", "--head", "sa2c",
        "--head-option", "n_negatives=5", "--head-option", "warmup_epochs=1", "--epochs", "2",
        "--max-len", "10", "--holdout", "tail", "--tail-fraction", "0.2", "--out", str(out),
        "--json",
    )  # fmt: skip
    summary = json.loads(printed)
    assert summary["head"] == "sa2c" and summary["holdout"] == "tail"
    saved = json.loads((out / "model.json").read_text())["config"]
    assert saved["head_options"] == {"n_negatives": 5, "warmup_epochs": 1}
    printed = run(
        "seqrec", "evaluate", "--model", str(out), "--data", str(synthetic_inter), "--feedback",
        "--json",
    )  # fmt: skip
    result = json.loads(printed)
    assert {"click_ndcg@5", "purchase_hr@20", "ild@10", "novelty@20"} <= set(result)
    assert result["holdout"] == "tail" and result["n_clicks"] > 120


def test_train_the_intent_head_with_genres_from_the_item_file(synthetic_inter, tmp_path):
    inter = tmp_path / "ring.inter"
    inter.write_text(synthetic_inter.read_text())
    (tmp_path / "ring.item").write_text(
        "item_id:token\tclass:token_seq\n" + "".join(f"i{i}\tG{i % 4}\n" for i in range(40))
    )
    out = tmp_path / "intent"
    printed = run(
        "seqrec", "train", "--data", str(inter), "--model", "sasrec", "--head", "intent",
        "--head-option", "latent_dim=4", "--epochs", "1", "--max-len", "10", "--out", str(out),
        "--json",
    )  # fmt: skip
    assert json.loads(printed)["head"] == "intent"
    saved = json.loads((out / "model.json").read_text())["config"]
    assert saved["head_options"] == {"latent_dim": 4}


def test_train_with_the_pcrec_scheme(synthetic_inter, tmp_path):
    printed = run(
        "seqrec", "train", "--data", str(synthetic_inter), "--model", "gru4rec", "--scheme",
        "pcrec", "--scheme-option", "criterion=l1", "--epochs", "1", "--out", str(tmp_path),
        "--json",
    )  # fmt: skip
    assert json.loads(printed)["scheme"] == "pcrec"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--head", "dqn"], "known: softmax, sqn, sac, snqn, sa2c, smorl, prl, intent"),
        (["--head", "sqn", "--head-option", "gamma"], "--head-option takes KEY=VALUE"),
        (["--head", "sqn", "--head-option", "gama=0.5"], "unknown config fields ['gama']"),
    ],
)
def test_bad_head_settings_exit_2(synthetic_inter, tmp_path, capsys, args, message):
    argv = ["seqrec", "train", "--data", str(synthetic_inter), "--model", "sasrec"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path), "--epochs", "1", *args])
    assert exc.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
