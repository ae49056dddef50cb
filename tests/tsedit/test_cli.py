import json

import numpy as np
import pandas as pd
import pytest

from safer.cli import main
from safer.tsedit import DiffusionEditor, public_windows


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_train_then_edit(tmp_path, capsys):
    model = tmp_path / "m"
    code, out, _ = run(capsys, "tsedit", "train", "--data", "sunspots", "--window", "16",
                       "--train-steps", "5", "--out", str(model), "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["channels"] == ["sunspots"]
    series = tmp_path / "s.csv"
    pd.DataFrame({"sunspots": public_windows("sunspots", 16).values[0, :10, 0]}).to_csv(
        series, index=False
    )
    code, out, _ = run(capsys, "tsedit", "edit", "--model", str(model), "--series", str(series),
                       "--anchor", "2:sunspots:150:1", "--segment", "4:9:sunspots:mean:20",
                       "--steps", "5", "--out", str(tmp_path / "o.csv"), "--json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    edited = pd.read_csv(tmp_path / "o.csv")
    assert list(edited.columns) == ["sunspots"] and len(edited) == 10
    assert edited.loc[2, "sunspots"] == 150.0 and report["anchors"][0]["abs_error"] == 0.0
    assert np.isclose(edited.loc[4:8, "sunspots"].mean(), 20.0)
    assert report["segments"][0]["achieved"] == pytest.approx(20.0)

    code, _, err = run(capsys, "tsedit", "edit", "--model", str(model), "--series", str(series),
                       "--anchor", "99:sunspots:1:1", "--out", str(tmp_path / "x.csv"))  # fmt: skip
    assert code == 2 and "outside the series" in err and "Traceback" not in err

    history = tmp_path / "h.csv"
    pd.DataFrame({"sunspots": [5.0, 12.0, 30.0]}).to_csv(history, index=False)
    code, out, _ = run(capsys, "tsedit", "edit", "--model", str(model), "--series", str(series),
                       "--history", str(history), "--anchor", "0:sunspots:40:0.5", "--steps", "5",
                       "--out", str(tmp_path / "h_out.csv"), "--json")  # fmt: skip
    assert code == 0 and len(pd.read_csv(tmp_path / "h_out.csv")) == 10
    soft = json.loads(out)["anchors"][0]
    assert soft["pulled_fraction"] == pytest.approx(0.5)


def test_unknown_data_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "tsedit", "train", "--data", "nile", "--out", str(tmp_path / "m"))
    assert code == 2 and "cohort:FILE" in err
    code, _, err = run(capsys, "tsedit", "train", "--data", "co2", "--level", "stay",
                       "--out", str(tmp_path / "m"))  # fmt: skip
    assert code == 2 and "'global' or 'window'" in err and "Traceback" not in err


def test_train_relative_to_each_windows_level(tmp_path, capsys):
    code, _, _ = run(capsys, "tsedit", "train", "--data", "co2", "--window", "16", "--level",
                     "window", "--train-steps", "5", "--out", str(tmp_path / "m"))  # fmt: skip
    assert code == 0
    editor = DiffusionEditor.load(tmp_path / "m")
    assert editor.config.level == "window" and editor.level_scale_[0] < 0.5
