"""``safer train`` / ``safer evaluate`` end to end on a tiny cohort file."""

from __future__ import annotations

import json

import pytest

from safer.cli import main
from safer.cohorts import split_stays, write_cohort


def _run(capsys, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.fixture(scope="module")
def cohort_file(tiny_cohort, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "cohort.parquet"
    write_cohort(tiny_cohort, path)
    return path


def test_train_then_evaluate_each_split(
    cohort_file, tiny_cohort, tmp_path, capsys, monkeypatch, tiny_encoder, note_cache
):
    monkeypatch.setenv("SAFER_CACHE_DIR", note_cache)
    out = tmp_path / "model"
    code, stdout, _ = _run(capsys, [
        "train", "--cohort", str(cohort_file), "--variant", "safer-n", "--seed", "3",
        "--out", str(out), "--split-seed", "2", "--fractions", "50/30/20", "--epochs", "1",
        "--finetune-epochs", "1", "--d-model", "16", "--threads", "1", "--batch-size", "32",
        "--json",
    ])  # fmt: skip
    assert code in (0, None)
    summary = json.loads(stdout)
    assert summary["device"] == "cpu"
    assert json.loads((out / "model.json").read_text())["config"]["batch_size"] == 32
    splits = split_stays(tiny_cohort, train=0.5, calibration=0.3, test=0.2, seed=2)
    assert summary["train_stays"] == len(splits.train) and summary["split_seed"] == 2
    assert summary["split_fractions"] == "50/30/20"
    assert len(splits.train) != len(split_stays(tiny_cohort, seed=2).train)  # a real change

    # evaluate recomputes the model's split: its seed and fractions, saved with it
    code, stdout, _ = _run(capsys, ["evaluate", "--model", str(out), "--cohort", str(cohort_file),
                                    "--split", "test", "--json"])  # fmt: skip
    result = json.loads(stdout)
    test_ids = splits.test
    assert result["split"] == "test" and result["stays"] == len(test_ids)
    for group in ("survivors", "all"):
        assert {"macro_auc", "micro_auc", "hr_at_3", "mrr_at_3", "accuracy", "ece", "n"} <= set(
            result[group]
        )
    assert result["all"]["n"] == int(tiny_cohort["stay_id"].isin(test_ids).sum())
    assert result["survivors"]["mrr_at_3"] <= result["survivors"]["hr_at_3"]

    code, stdout, err = _run(capsys, ["evaluate", "--model", str(out), "--cohort",
                                      str(cohort_file), "--split", "train", "--json"])  # fmt: skip
    assert json.loads(stdout)["split"] == "train" and "optimistic" in err


def test_bad_fractions_exit_2_before_training(cohort_file, tmp_path, capsys):
    code, _, err = _run(capsys, ["train", "--cohort", str(cohort_file), "--fractions", "60/40",
                                 "--out", str(tmp_path / "m")])  # fmt: skip
    assert code == 2 and "three positive numbers" in err and not (tmp_path / "m").exists()


def test_unknown_variant_exits_2_listing_variants(cohort_file, tmp_path, capsys):
    code, _, err = _run(capsys, ["train", "--cohort", str(cohort_file), "--variant", "bogus",
                                 "--out", str(tmp_path / "m")])  # fmt: skip
    assert code == 2 and "safer-n" in err and "notes-only" in err


def test_evaluate_refuses_a_split_that_overlaps_training(
    cohort_file, tiny_cohort, tiny, tmp_path, capsys
):
    from safer.models import make_model

    model = make_model("safer-n", seed=0, **tiny).fit(tiny_cohort, progress=False, split_seed=0)
    model.save(tmp_path / "m")  # trained on ALL stays: every test stay was seen
    code, _, err = _run(capsys, ["evaluate", "--model", str(tmp_path / "m"), "--cohort",
                                 str(cohort_file), "--split", "test"])  # fmt: skip
    assert code == 2 and "used to train" in err
