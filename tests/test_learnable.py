"""The one learnable base: the trainer's stopping rule, the artifact format and the fitted check,
on a tiny real learnable (a linear regression) and on a real SAFER model."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import safer
from safer._learnable import (
    ArtifactError,
    ArtifactVersionWarning,
    Learnable,
    Trainer,
    fitting,
    load_registered,
    torch_threads,
)
from safer.errors import NotFittedError, SaferError


@dataclass
class LineConfig:
    seed: int = 0
    epochs: int = 20


class Line(Learnable):
    """y = a x + b by gradient descent: the smallest real learnable."""

    Config = LineConfig
    how_to_train = "Line().fit(x, y).save(DIR)"

    def fit(self, x, y):
        with fitting(self.config.seed):
            self.net_ = nn.Linear(1, 1)
            opt = torch.optim.SGD(self.net_.parameters(), lr=0.1)
            self.history_ = Trainer(epochs=self.config.epochs, progress=False).run(
                self.net_,
                opt,
                lambda: [None],
                lambda _: (nn.functional.mse_loss(self.net_(x), y), 1),
            )
        return self._finish_fit()

    def _network(self):
        return self.net_

    def _learned_meta(self):
        return {"shapes": {"in": 1}}

    def _restore(self, meta):
        self.net_ = nn.Linear(meta["shapes"]["in"], 1)


@pytest.fixture
def line():
    x = torch.linspace(0, 1, 16)[:, None]
    return Line().fit(x, 3 * x - 1)


def test_trainer_stops_after_patience_and_restores_the_best_weights():
    net = nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # nothing changes: scores are set below
    scores = iter([5.0, 3.0, 4.0, 4.0, 2.0, 1.0])
    seen = []

    def validate():
        seen.append(net.weight.item())
        net.weight.data += 1.0  # each epoch "moves" the weights after scoring them
        return next(scores)

    log = Trainer(epochs=6, patience=2, progress=False).run(
        net, opt, lambda: [None], lambda _: ((net.weight**2).sum(), 1), validate=validate
    )
    assert [r["val"] for r in log["epochs"]] == [5.0, 3.0, 4.0, 4.0]  # 2 bad epochs: stop
    assert log["best_epoch"] == 1 and log["best_val"] == 3.0
    assert net.weight.item() == pytest.approx(seen[1] + 1.0)  # the state saved at epoch 1


def _scored_run(scores, **trainer):
    """Run a Trainer whose validation returns ``scores`` in turn; weights count the epochs."""
    net = nn.Linear(1, 1)
    net.weight.data.zero_()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    it = iter(scores)

    def validate():
        net.weight.data += 1.0  # after epoch k the weight is k + 1
        return next(it)

    log = Trainer(progress=False, **trainer).run(
        net, opt, lambda: [None], lambda _: ((net.weight**2).sum(), 1), validate=validate
    )
    return log, net.weight.item()


def test_trainer_warmup_ignores_a_lucky_early_score():
    # a noisy realism score: epoch 1 is a lucky draw, the real improvement comes later
    scores = [0.30, 0.05, 0.20, 0.18, 0.16, 0.14, 0.12, 0.10, 0.09, 0.08]
    plain, _ = _scored_run(scores, epochs=10, patience=3)
    assert plain["best_epoch"] == 1 and len(plain["epochs"]) == 5  # stopped on the lucky draw
    log, weight = _scored_run(scores, epochs=10, patience=3, warmup=3)
    assert len(log["epochs"]) == 10 and log["best_epoch"] == 9 and weight == 10.0
    # the last epoch always counts, so a warm-up longer than the run still keeps some weights
    short, weight = _scored_run(scores[:3], epochs=3, patience=1, warmup=5)
    assert short["best_epoch"] == 2 and weight == 3.0


def test_trainer_smoothing_judges_the_mean_of_recent_epochs():
    scores = [0.30, 0.05, 0.30, 0.12, 0.11, 0.10, 0.25, 0.30, 0.30]
    log, weight = _scored_run(scores, epochs=9, patience=3, smooth=3)
    # 3-epoch means: 0.30, 0.175, 0.217, 0.157, 0.177, 0.110, 0.153, 0.217, 0.283
    assert log["best_epoch"] == 5 and weight == 6.0
    assert log["best_val"] == pytest.approx(0.11)
    assert len(log["epochs"]) == 9 and [r["val"] for r in log["epochs"]] == scores
    assert _scored_run(scores, epochs=9, patience=3)[0]["best_epoch"] == 1  # unsmoothed


def test_trainer_refuses_a_negative_warmup_or_zero_smoothing():
    with pytest.raises(SaferError, match="warmup >= 0 and smooth >= 1"):
        Trainer(epochs=2, smooth=0)
    with pytest.raises(SaferError, match="warmup >= 0"):
        Trainer(epochs=2, warmup=-1)


def test_trainer_max_mode_and_dict_validation():
    net = nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    scores = iter([0.1, 0.3, 0.2])
    log = Trainer(epochs=3, mode="max", progress=False).run(
        net, opt, lambda: [None], lambda _: ((net.weight**2).sum(), 1),
        validate=lambda: {"mrr": next(scores), "hr": 0.5}, monitor="mrr",
    )  # fmt: skip
    assert log["best_epoch"] == 1 and log["epochs"][2]["hr"] == 0.5


def test_fitting_leaves_the_callers_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with fitting(7):
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_save_load_same_hash_and_outputs(line, tmp_path):
    loaded = Line.load(line.save(tmp_path / "m"))
    assert loaded.content_hash_ == line.content_hash_
    x = torch.rand(4, 1)
    assert torch.equal(loaded.net_(x), line.net_(x))
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["model"] == "Line" and meta["safer_version"] == safer.__version__
    assert meta["history"]["epochs"] and meta["content_hash"] == line.content_hash_


def test_tampered_weights_are_refused(line, tmp_path):
    folder = line.save(tmp_path / "m")
    state = torch.load(folder / "weights.pt")
    state["bias"] += 1.0
    torch.save(state, folder / "weights.pt")
    with pytest.raises(ArtifactError, match="content hash"):
        Line.load(folder)


def test_another_version_loads_with_a_warning_naming_both(line, tmp_path):
    folder = line.save(tmp_path / "m")
    meta = _rewrite(folder, line, safer_version="0.0.1")  # as an older version saved it
    with pytest.warns(ArtifactVersionWarning, match=r"0\.0\.1.*" + safer.__version__):
        loaded = Line.load(folder)
    assert loaded.content_hash_ == meta["content_hash"]


def _rewrite(folder, line, **changes):
    """model.json as a version with ``changes`` to the metadata would have saved it."""
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    hashed = {k: v for k, v in meta.items() if k not in ("history", "content_hash")}
    meta["content_hash"] = line._compute_content_hash(hashed)
    (folder / "model.json").write_text(json.dumps(meta))
    return meta


def test_unknown_config_keys_warn_instead_of_crashing(line, tmp_path):
    folder = line.save(tmp_path / "m")
    config = {**json.loads((folder / "model.json").read_text())["config"], "from_the_future": 1}
    meta = _rewrite(folder, line, config=config)
    with pytest.warns(ArtifactVersionWarning, match="from_the_future"):
        loaded = Line.load(folder)
    assert loaded.content_hash_ == meta["content_hash"] and loaded.config.epochs == 20


def test_edited_metadata_is_refused(line, tmp_path):
    folder = line.save(tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    meta["config"]["epochs"] = 99  # the hash still says 20
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="content hash"):
        Line.load(folder)


def test_missing_folder_wrong_kind_and_missing_weights(line, tmp_path):
    with pytest.raises(ArtifactError, match=r"Line\(\)\.fit"):
        Line.load(tmp_path / "nowhere")
    folder = line.save(tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "model": "Other"}))
    with pytest.raises(ArtifactError, match="'Other' model, not a 'Line'"):
        Line.load(folder)
    (folder / "model.json").write_text(json.dumps(meta))
    (folder / "weights.pt").unlink()
    with pytest.raises(ArtifactError, match="weights"):
        Line.load(folder)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="JSON"):
        Line.load(folder)


def test_load_registered_uses_the_recorded_kind_and_refuses_another_family(line, tmp_path):
    folder = line.save(tmp_path / "m")
    loaded = load_registered(folder, {"Line": Line}, "a line")
    assert isinstance(loaded, Line) and loaded.content_hash_ == line.content_hash_
    with pytest.raises(ArtifactError, match="'Line' model, not a CTR model .known: xcrossnet"):
        load_registered(folder, {"xcrossnet": Line}, "a CTR model")
    with pytest.raises(ArtifactError, match=r"Line\(\)\.fit"):
        load_registered(
            tmp_path / "nowhere", {"Line": Line}, "a line", how_to_train=Line.how_to_train
        )


def test_one_fitted_check(line):
    with pytest.raises(NotFittedError, match="call fit first"):
        Line().save("unused")
    assert line.is_fitted and not Line().is_fitted
