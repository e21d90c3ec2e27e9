import os
import subprocess
import sys

import pytest

from collabfilter.cli import (
    EXIT_DATA,
    EXIT_MISSING,
    EXIT_UNAVAILABLE,
    build_parser,
    main,
)


def test_summary_of_a_csv_file(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("userId,movieId,rating,title\n1,10,4,Heat\n2,10,5,Heat\n2,11,3,Up\n")
    code = main(["summary", str(path), "--user", "userId", "--item", "movieId", "--title", "title"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Ratings(3 ratings, 2 users, 2 items" in out
    assert "Rating histogram" in out and "Crosstab" in out and "Heat" in out


def test_bad_file_gives_one_line_and_exit_code(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,10,x\n")
    assert main(["summary", str(path)]) == EXIT_DATA
    err = capsys.readouterr().err
    assert "error:" in err and "line 2" in err and "Traceback" not in err


def test_unknown_source_and_missing_dataset(tmp_path, capsys, monkeypatch):
    assert main(["summary", str(tmp_path / "nope.csv")]) == EXIT_MISSING
    assert "neither a known dataset" in capsys.readouterr().err
    monkeypatch.delenv("COLLABFILTER_DATA_DIR", raising=False)
    assert main(["summary", "ml-1m", "--data", str(tmp_path)]) == EXIT_UNAVAILABLE


def test_synth_writes_parquet(tmp_path, capsys):
    out = tmp_path / "s.parquet"
    assert (
        main(["synth", "--users", "30", "--items", "200", "--ratings", "900", "--out", str(out)])
        == 0
    )
    assert out.is_file()
    assert main(["summary", str(out)]) == 0


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2


@pytest.mark.parametrize("recipe", ["dot_bias", "dot_bias_large"])
def test_train_prints_the_epoch_table_and_beats_the_mean(tmp_path, capsys, recipe):
    data = tmp_path / "s.parquet"
    synth = ["synth", "--users", "300", "--items", "400", "--ratings", "24000", "--seed", "2"]
    assert main([*synth, "--out", str(data)]) == 0
    capsys.readouterr()
    assert main(["train", str(data), "--model", recipe]) == 0
    out = capsys.readouterr().out
    assert "valid_rmse" in out
    epochs = [int(line.split()[0]) for line in out.splitlines() if line[:5].strip().isdigit()]
    assert epochs == list(range(1, {"dot_bias": 20, "dot_bias_large": 8}[recipe] + 1))
    rmse = {
        name: float(line.split("│")[1])
        for line in out.splitlines()
        for name in (recipe, "global mean")
        if line.startswith(f"{name} ")
    }
    assert rmse[recipe] < 0.95 * rmse["global mean"]


def test_the_executable_ends_normally_with_the_commands_code_and_output(tmp_path):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("user,item,rating\n1,10,4\n2,10,5\n2,11,3\n")
    bad.write_text("user,item,rating\n1,10,x\n")
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-m", "collabfilter", "summary", str(good)],
        capture_output=True, text=True, timeout=120, env=buffered,
    )  # fmt: skip
    assert done.returncode == 0 and "Ratings(3 ratings" in done.stdout, done.stderr
    assert "Crosstab" in done.stdout
    command = [sys.executable, "-m", "collabfilter", "summary", str(bad)]
    failed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert failed.returncode == EXIT_DATA and "line 2" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr


def test_every_command_has_help(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"train", "evaluate", "predict", "recommend", "similar", "interpret", "lr-find", "serve",
            "summary", "datasets", "fetch", "synth", "demo"} <= set(commands)  # fmt: skip
    for name in commands:
        with pytest.raises(SystemExit) as caught:
            main([name, "--help"])
        assert caught.value.code == 0 and "usage: collabfilter" in capsys.readouterr().out
