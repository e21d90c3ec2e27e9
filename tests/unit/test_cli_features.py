"""``collabfilter train`` with side features: files attached by flags, what was used
said in the report, and every generated bad feature file a one-line error naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run

from collabfilter import generate_ratings
from collabfilter.cli import EXIT_DATA, EXIT_MISSING, EXIT_USAGE, main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    planted = generate_ratings(150, 160, 4000, n_genres=6, n_user_groups=4, seed=2).ratings
    planted.to_frame().to_csv(folder / "ratings.csv", index=False)
    users = planted.user_features.frame.rename_axis("user").reset_index()
    users["age"] = np.arange(len(users)) % 50 + 18
    users.to_csv(folder / "users.csv", index=False)
    items = planted.item_features.frame.rename_axis("movie").reset_index()
    items.to_csv(folder / "items.tsv", sep="\t", index=False)
    return folder


BAYES = ["--model", "bayes", "--epochs", "6", "--json"]


def test_feature_files_reach_the_model_and_the_report(files, capsys):
    code, out, err = run(capsys, [
        "train", str(files / "ratings.csv"), "--user-features", str(files / "users.csv"),
        "--item-features", str(files / "items.tsv"), "--features-id", "user", *BAYES,
    ])  # fmt: skip
    assert code == EXIT_DATA and "items.tsv" in err and "'user'" in err  # items use "movie"
    code, out, err = run(capsys, [
        "train", str(files / "ratings.csv"), "--user-features", str(files / "users.csv"),
        "--feature-kind", "group=category", *BAYES,
    ])  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["features"] == {"user": ["group", "age"], "item": [], "reason": ""}
    code, out, err = run(capsys, [
        "train", str(files / "ratings.csv"), "--user-features", str(files / "users.csv"),
        "--features", "age", "--model", "bayes", "--epochs", "6",
    ])  # fmt: skip
    assert code == 0, err
    assert "features: user: age" in out and "user features: 150 of 150 users have a row" in out


def test_asking_a_model_that_reads_no_features_for_some_is_a_usage_error(files, capsys):
    code, _, err = run(capsys, [
        "train", str(files / "ratings.csv"), "--user-features", str(files / "users.csv"),
        "--features", "group", "--epochs", "2",
    ])  # fmt: skip
    assert code == EXIT_USAGE and "--model bayes" in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--feature-kind", "age"), ("--feature-kind", "age=colour"), ("--feature-kind", "=number"),
     ("--features", "a,,b"), ("--features", ","), ("--multi-sep", ""), ("--multi-sep", "\n")],
)  # fmt: skip
def test_bad_feature_options_are_refused_when_the_line_is_read(files, capsys, flag, value):
    code, _, err = run(capsys, ["train", str(files / "ratings.csv"), flag, value])
    assert code == EXIT_USAGE and flag in err


BAD_FILES = {
    "empty.csv": b"",
    "header_only.csv": b"user,group\n",
    "no_id.csv": b"person,group\n1,a\n",
    "blank_id.csv": b"user,group\n1,a\n ,b\n",
    "repeated.csv": b"user,group\n1,a\n1,b\n",
    "strangers.csv": b"user,group\n9001,a\n9002,b\n",
    "latin.csv": "user,group\n1,caf\xe9\n".encode("latin-1"),
    "ragged.csv": b'user,group\n1,"a\n',
    "binary.csv": bytes(range(256)) * 4,
    "garbage.parquet": b"PAR1 not parquet",
    "no_columns.csv": b"user\n1\n2\n",
    "infinite.csv": b"user,score\n1,inf\n2,-inf\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_every_bad_features_file_is_one_error_naming_it(files, tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    code, _, err = run(capsys, ["train", str(files / "ratings.csv"), "--user-features",
                                str(path), *BAYES])  # fmt: skip
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == EXIT_DATA and len(lines) == 1, (name, err)
    assert name in lines[0] or "user features" in lines[0], lines[0]


def test_a_missing_features_file_is_said_to_be_missing(files, tmp_path, capsys):
    code, _, err = run(capsys, ["train", str(files / "ratings.csv"), "--item-features",
                                str(tmp_path / "nowhere.csv"), *BAYES])  # fmt: skip
    assert code == EXIT_MISSING and "nowhere.csv" in err


def _trained(files, folder, model: str, epochs: int):
    """A model trained by the CLI on the ratings and user features."""
    out = folder / f"{model}.cf"
    code = main(["train", str(files / "ratings.csv"), "--user-features", str(files / "users.csv"),
                 "--model", model, "--epochs", str(epochs), "--out", str(out),
                 "--json"])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def bayes_file(files, tmp_path_factory):
    return _trained(files, tmp_path_factory.mktemp("model"), "bayes", 8)


@pytest.fixture(scope="module")
def nn_file(files, tmp_path_factory):
    return _trained(files, tmp_path_factory.mktemp("model"), "nn", 3)


@pytest.mark.parametrize("kind", ["bayes", "nn"])
def test_a_new_user_described_by_features_gets_a_list(bayes_file, nn_file, capsys, kind):
    path = {"bayes": bayes_file, "nn": nn_file}[kind]
    code, out, err = run(capsys, ["recommend", str(path), "--features", "group=u1",
                                  "--features", "age=30", "-n", "4", "--json"])  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert document["user"] is None and len(document["items"]) == 4
    code, out, err = run(capsys, ["recommend", str(path), "--rated", "3=5", "--features",
                                  "group=u3", "--json"])  # fmt: skip
    assert code == 0 and "3" not in [str(i["item"]) for i in json.loads(out)["items"]]


@pytest.mark.parametrize(
    ("argv", "expected", "said"),
    [
        (["--user", "1", "--features", "group=u1"], EXIT_USAGE, "--user names one of the data"),
        ([], EXIT_USAGE, "say who"),
        (["--features", "colour=red"], EXIT_DATA, "unknown: ['colour']"),
        (["--features", "group"], EXIT_USAGE, "NAME=VALUE"),
        (["--features", "=u1"], EXIT_USAGE, "NAME=VALUE"),
    ],
)  # fmt: skip
def test_bad_new_user_features_are_one_clear_error(bayes_file, capsys, argv, expected, said):
    code, _, err = run(capsys, ["recommend", str(bayes_file), *argv])
    assert code == expected and said in err, err


HOSTILE = ["", " ", "[/]", "\x1b[31m", "a\nb", "\udcff", "☃" * 300, "nan", "inf", "-1e308",
           "1e400", "0x10", "None", "007"]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_feature_values_are_counted_never_a_crash(bayes_file, capsys, value):
    for name in ("group", "age"):
        code, out, err = run(capsys, ["recommend", str(bayes_file), "--features",
                                      f"{name}={value}", "-n", "3", "--json"])  # fmt: skip
        assert code == 0, err
        assert len(json.loads(out)["items"]) == 3
