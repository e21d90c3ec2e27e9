"""The command line's answer to each kind of bad input (issue 20), case by generated case:
option values out of range, outputs that cannot be written, hostile text in ids, titles,
paths and messages, unreadable files, tiny data, ids in their own type, the model's
column names, and library advice rewritten as flags."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from cli_helpers import run
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from collabfilter import generate_ratings
from collabfilter.cli import (
    EXIT_DATA,
    EXIT_ERROR,
    EXIT_MISSING,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    SERVE_TYPES,
    build_parser,
)
from collabfilter.cli.messages import FLAG_WORDS, in_flags, one_line
from collabfilter.cli.options import real, whole
from collabfilter.cli.tables import frame_table

HOSTILE_TEXT = ["[/]", "[red]film", "[bold]x[/bold]", ":smile:", "[link=http://x]a[/link]",
                "\x1b[31mred", "a\nb", "a\rb", "sep\u2028line", "\udcff", "☃", "\u202ertl", "'",
                '"', "\\", "%s", "{0}", "\t", "\x00", "x" * 500]  # fmt: skip
TITLES = {7: "Star Wars (1977)", 8: "[red]film", 9: "[/]", 10: ":smile:", 11: "[bold]x[/bold]",
          12: "Amélie ☃", 13: "[link=http://x]a[/link]"}  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory, brief_model):
    """A ratings file with hostile titles, and models trained on it (briefly)."""
    folder = tmp_path_factory.mktemp("inputs")
    ratings = generate_ratings(120, 150, 4000, n_factors=2, seed=11).ratings
    titles = {k: f"Movie {k} ({1900 + k % 100})" for k in range(1, 151)} | TITLES
    ratings = ratings.with_titles(titles)
    frame = ratings.to_frame()
    data = folder / "ratings.csv"
    frame.to_csv(data, index=False)
    model = brief_model(ratings, folder / "model.cf", epochs=3)
    return folder, data, model, frame


def squeezed(text):
    """``text`` without white space: what survives rich wrapping a title or a cell."""
    return "".join(text.split())


def one_error(err):
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, err
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ numbers at parse time
NUMERIC = [
    ("recommend", "-n"), ("recommend", "--min-ratings"), ("similar", "-n"),
    ("similar", "--min-ratings"), ("interpret", "--among"), ("summary", "--sample"),
    ("train", "--epochs"), ("train", "--lr"), ("train", "--wd"), ("train", "--bs"),
    ("train", "--factors"), ("train", "--seed"), ("train", "--valid-pct"),
    ("lr-find", "--wd"), ("lr-find", "--bs"), ("lr-find", "--factors"), ("lr-find", "--seed"),
    ("synth", "--users"), ("synth", "--items"), ("synth", "--ratings"), ("synth", "--factors"),
    ("synth", "--seed"), ("serve", "--port"), ("serve", "--workers"), ("serve", "--reload-poll"),
    ("serve", "--min-ratings"),
]  # fmt: skip
HUGE = "99999999999999999999"
BAD_NUMBERS = ["-1", "nan", "inf", "-inf", "1e400", "", "abc", HUGE, "9" * 5000, "1,5"]
REAL_OPTIONS = {"--lr", "--wd", "--reload-poll"}
NEEDS = {"recommend": ["M", "--user", "1"], "similar": ["M", "x"], "interpret": ["M"],
         "synth": ["--out", "x.parquet"], "serve": ["M"]}  # fmt: skip


def numeric_actions():
    """Every option of every command whose value is checked as a number."""
    found = set()
    for name, sub in build_parser()._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        for action in sub._actions:
            qualified = getattr(action.type, "__qualname__", "")
            if qualified.startswith(("whole.", "real.")) and action.option_strings:
                found.add((name, action.option_strings[0]))
    return found


def test_every_numeric_option_is_listed():
    assert numeric_actions() == set(NUMERIC)


@pytest.mark.parametrize("command,option", NUMERIC)
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_numbers_out_of_range_are_one_line_usage_errors(command, option, value, capsys):
    # the model and data do not exist: only a check at parse time answers with 2
    if value == HUGE and option in REAL_OPTIONS:
        pytest.skip("a huge finite rate, decay or poll is allowed (training reports divergence)")
    code, out, err = run(capsys, [command, *NEEDS.get(command, ["absent.csv"]), option, value])
    assert code == EXIT_USAGE and out == ""
    line = one_error(err)
    assert line.startswith(f"collabfilter {command}: error: argument {option}")


@pytest.mark.parametrize(
    "check,good,bad",
    [
        (whole(1), ["1", "7", " 12 ", str(2**31 - 1)], ["0", "-3", str(2**31), "1.0", "1e2"]),
        (whole(0, 65535), ["0", "65535"], ["-1", "65536"]),
        (real(0, above=True), ["1e-9", "3"], ["0", "-1e-9", "nan", "inf"]),
        (real(0, 1, below=True), ["0", "0.5", "0.999"], ["1", "-0.1", "nan", "1e400"]),
    ],
)
def test_the_checks_draw_the_line_where_their_message_says(check, good, bad):
    import argparse

    for text in good:
        check(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="got"):
            check(text)


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_no_text_escapes_the_number_checks(text):
    import argparse
    import math

    for check in (whole(1), real(0), real(0, 1, below=True)):
        try:
            value = check(text)
        except argparse.ArgumentTypeError as error:
            assert "\n" not in one_line(str(error))
        else:
            assert math.isfinite(value)


@pytest.mark.parametrize("value", ["nope", "rot13", "", "\x00", "base64"])
def test_unknown_encodings_are_usage_errors(value, made, capsys):
    _, data, _, _ = made
    code, _, err = run(capsys, ["summary", str(data), "--encoding", value])
    assert code == EXIT_USAGE and "--encoding" in one_error(err)


@pytest.mark.parametrize("value", ["", "\n", '"', "\x00", "a\rb"])
def test_separators_that_cannot_separate_are_usage_errors(value, made, capsys):
    _, data, _, _ = made
    code, _, err = run(capsys, ["summary", str(data), "--sep", value])
    assert code == EXIT_USAGE and "--sep" in one_error(err)


def test_every_serve_option_named_for_checking_exists():
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    checked = {
        a.dest for a in serve._actions if a.dest in SERVE_TYPES and a.type is SERVE_TYPES[a.dest]
    }
    assert checked == set(SERVE_TYPES)


# ------------------------------------------------------------------ outputs before the work
def output_cases(folder, data, model):
    return [
        ["train", str(data), "--out", str(folder)],  # a folder
        ["train", str(data), "--out", str(data / "m.cf")],  # inside a file
        ["train", str(data), "--out", ""],
        ["synth", "--out", str(folder / "s.csv")],  # not parquet
        ["synth", "--out", str(folder)],
        ["predict", str(model), str(data), "--out", str(folder / "p.json")],
        ["predict", str(model), str(data), "--out", str(folder)],
        ["lr-find", str(data), "--plot", str(folder / "lr.txt")],
        ["lr-find", str(data), "--plot", str(data / "lr.png")],
        ["interpret", str(model), "--out", str(data)],
        ["interpret", str(model), "--out", str(data / "sub")],
        ["demo", "--out", str(data)],
    ]


def test_outputs_that_cannot_be_written_are_refused_before_any_work(made, capsys):
    folder, data, model, _ = made
    for argv in output_cases(folder, data, model):
        code, out, err = run(capsys, argv)
        assert code == EXIT_USAGE and out == "", argv
        assert "--out" in one_error(err) or "--plot" in err, argv


def test_outputs_that_overwrite_an_input_are_refused(made, capsys):
    folder, data, model, _ = made
    code, _, err = run(capsys, ["train", str(data), "--out", str(data), "--epochs", "1"])
    assert code == EXIT_USAGE and "ratings file itself" in one_error(err)
    pairs = folder / "pairs_for_model.csv"
    pairs.write_text("user,item\n1,7\n")
    code, _, err = run(capsys, ["predict", str(model), str(pairs), "--out", str(model)])
    assert code == EXIT_USAGE  # not a table suffix, and the model file itself


def test_missing_folders_of_an_output_are_created(made, tmp_path, capsys):
    _, data, _, _ = made
    out = tmp_path / "new" / "deeper" / "m.cf"
    code, _, err = run(capsys, ["train", str(data), "--epochs", "1", "--wd", "0.1", "--out",
                                str(out)])  # fmt: skip
    assert code == 0 and out.is_file(), err


# ------------------------------------------------------------------ hostile text
@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_ids_and_titles_are_one_line_and_shown_as_written(text, made, capsys):
    _, _, model, _ = made
    code, out, err = run(capsys, ["recommend", str(model), "--user", text])
    assert code in (EXIT_UNKNOWN, EXIT_DATA), err
    assert one_error(err)
    code, out, err = run(capsys, ["similar", str(model), text, "-n", "3"])
    assert code in (0, EXIT_UNKNOWN, EXIT_DATA), err
    if code:
        one_error(err)


@pytest.mark.parametrize("title", sorted(set(TITLES.values()) - {"Star Wars (1977)"}))
def test_titles_with_markup_print_verbatim(title, made, capsys):
    _, _, model, _ = made
    code, out, _ = run(capsys, ["similar", str(model), title, "-n", "2"])
    assert code == 0 and squeezed(f"nearest to {title!r}") in squeezed(out)  # titles may wrap
    code, out, _ = run(capsys, ["similar", str(model), title, "-n", "2", "--json"])
    assert json.loads(out)["title"] == title


@pytest.mark.parametrize("name", ["[/]", "[red]x", ":smile:", "a[b", "\udcff"])
def test_paths_with_markup_or_undecodable_bytes_are_named_verbatim(name, tmp_path, capsys):
    code, _, err = run(capsys, ["summary", str(tmp_path / f"{name}.csv")])
    assert code == EXIT_MISSING
    line = one_error(err)
    assert one_line(name) in line


@given(st.lists(st.text(max_size=20), min_size=1, max_size=4), st.text(max_size=20))
@settings(max_examples=200, deadline=None)
def test_tables_show_any_text_as_written(cells, title):
    frame = pd.DataFrame({"title": cells, "value": range(len(cells))})
    console = Console(file=io.StringIO(), width=400, markup=False, emoji=False, record=True)
    console.print(frame_table(frame, title))
    shown = squeezed(console.export_text())
    for text in [*cells, title]:
        if text.isprintable():
            assert squeezed(text) in shown


@given(st.text(max_size=200))
@settings(max_examples=500, deadline=None)
def test_one_line_is_one_line(text):
    line = one_line(text)
    assert len(line.splitlines()) <= 1
    line.encode("utf-8")  # no lone surrogate left


# ------------------------------------------------------------------ unreadable files
def bad_pairs_files(folder):
    files = {
        "empty.csv": b"",
        "latin.csv": "user,item\n1,caf\xe9\n".encode("latin-1"),
        "semicolons.csv": b"user;item\n1;7\n",
        "other_columns.csv": b"a,b\n1,7\n",
        "bad.parquet": b"PAR1 not really",
        "quote.csv": b'user,item\n"1,7\n',
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return [folder / name for name in files]


def test_unreadable_pairs_files_are_bad_data_naming_the_file(made, tmp_path, capsys):
    _, _, model, _ = made
    for path in bad_pairs_files(tmp_path):
        code, _, err = run(capsys, ["predict", str(model), str(path)])
        assert code == EXIT_DATA, (path.name, err)
        assert path.name in one_error(err)
    _, _, err = run(capsys, ["predict", str(model), str(tmp_path / "semicolons.csv")])
    assert "--sep" in err
    _, _, err = run(capsys, ["predict", str(model), str(tmp_path / "latin.csv")])
    assert "--encoding" in err


def test_a_separator_and_an_encoding_read_the_pairs_file(made, tmp_path, capsys):
    _, _, model, _ = made
    path = tmp_path / "pairs.txt"
    path.write_bytes("user;item\n1;7\n2;12\n".encode("utf-16"))
    code, out, err = run(capsys, ["predict", str(model), str(path), "--sep", ";", "--encoding",
                                  "utf-16", "--json"])  # fmt: skip
    assert code == 0, err
    assert [row["item"] for row in json.loads(out)["predictions"]] == [7, 12]
    path.write_text("user\titem\n2\tAmélie ☃\n")  # a title names an item too
    code, out, err = run(capsys, ["predict", str(model), str(path), "--sep", "\\t", "--json"])
    assert code == 0 and json.loads(out)["predictions"][0]["item"] == "Amélie ☃", err


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20])
@pytest.mark.parametrize("recipe", ["bayes", "nn", "topn", "dot_bias --wd 0.1"])
def test_tiny_data_trains_or_fails_on_one_line(n, recipe, made, tmp_path, capsys):
    _, _, _, frame = made
    path = tmp_path / "tiny.csv"
    frame.head(n).to_csv(path, index=False)
    code, _, err = run(capsys, ["train", str(path), "--model", *recipe.split(),
                                *(["--epochs", "2"] if recipe != "topn" else [])])  # fmt: skip
    assert code in (0, EXIT_DATA), err
    if code:
        one_error(err)


@pytest.mark.parametrize("n", [1, 5, 20])
def test_tiny_data_with_the_decay_search(n, made, tmp_path, capsys):
    _, _, _, frame = made
    path = tmp_path / "tiny.csv"
    frame.head(n).to_csv(path, index=False)
    code, _, err = run(capsys, ["train", str(path), "--epochs", "2"])
    assert code in (0, EXIT_DATA)
    if code:
        one_error(err)


# ------------------------------------------------------------------ documented paths
def test_valid_pct_zero_trains_on_everything(made, tmp_path, capsys):
    import collabfilter as cf

    _, data, _, frame = made
    out = tmp_path / "all.cf"
    code, text, err = run(capsys, ["train", str(data), "--valid-pct", "0", "--epochs", "2",
                                   "--out", str(out)])  # fmt: skip
    assert code == 0, err
    assert "no validation part (--valid-pct 0)" in text and "Validation error" not in text
    assert len(cf.load_model(out).interactions) == len(frame)
    code, _, err = run(capsys, ["train", "ml-100k", "--split", "u1", "--valid-pct", "0.2"])
    assert code == EXIT_USAGE and "--valid-pct does not apply" in err


def test_the_topn_recipe_trains_and_reports_top_n(made, tmp_path, capsys):
    _, data, _, _ = made
    out = tmp_path / "topn.cf"
    code, text, err = run(capsys, ["train", str(data), "--model", "topn", "--out", str(out)])
    assert code == 0 and out.is_file(), err
    assert "Top-10 lists on the validation part" in text and "most popular" in text
    document = run(capsys, ["train", str(data), "--model", "topn", "--json"])[1]
    assert {row["scorer"] for row in json.loads(document)["validation"]} >= {"model"}
    code, _, err = run(capsys, ["train", str(data), "--model", "topn", "--with-ranking"])
    assert code == EXIT_USAGE and "already a ranking model" in err
    for option in (["--epochs", "3"], ["--factors", "3"], ["--lr", "0.1"]):
        code, _, err = run(capsys, ["train", str(data), "--model", "topn", *option])
        assert code == EXIT_USAGE and option[0] in one_error(err)


def test_file_options_with_a_movielens_name_are_refused(capsys):
    for option in (["--user", "u"], ["--sep", ";"], ["--no-header"], ["--encoding", "latin-1"]):
        code, _, err = run(capsys, ["summary", "ml-100k", *option])
        assert code == EXIT_USAGE and option[0] in one_error(err)


# ------------------------------------------------------------------ ids and columns
def test_predict_keeps_ids_in_the_models_type(made, tmp_path, capsys):
    _, _, model, _ = made
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\n1,7\n2,8\n")
    code, out, _ = run(capsys, ["predict", str(model), str(pairs), "--json"])
    rows = json.loads(out)["predictions"]
    assert code == 0 and [(r["user"], r["item"]) for r in rows] == [(1, 7), (2, 8)]
    written = tmp_path / "p.parquet"
    assert run(capsys, ["predict", str(model), str(pairs), "--out", str(written)])[0] == 0
    frame = pd.read_parquet(written)
    assert frame.user.dtype.kind == "i" and frame["item"].tolist() == [7, 8]
    odd = tmp_path / "odd.csv"
    odd.write_text("user,item\n1,7\n007,7\nabc,7\n")
    code, out, err = run(capsys, ["predict", str(model), str(odd), "--unknown", "nan", "--json"])
    users = [row["user"] for row in json.loads(out)["predictions"]]
    assert code == 0 and users == ["1", "007", "abc"] and "stays text" in err


def test_text_ids_stay_text(tmp_path, capsys):
    data = tmp_path / "text.csv"
    rows = [f"u{u:03d},{'00' if i % 2 else ''}{i},{1 + (u * i) % 5}" for u in range(40)
            for i in range(1, 30) if (u + i) % 3]  # fmt: skip
    data.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    model = tmp_path / "text.cf"
    assert run(capsys, ["train", str(data), "--epochs", "1", "--wd", "0.1", "--out",
                        str(model)])[0] == 0  # fmt: skip
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\nu001,001\nu002,2\n")
    code, out, err = run(capsys, ["predict", str(model), str(pairs), "--json"])
    assert code == 0, err
    assert [r["item"] for r in json.loads(out)["predictions"]] == ["001", "2"]


def test_predict_and_evaluate_read_the_models_columns(made, tmp_path, capsys):
    _, _, _, frame = made
    renamed = frame.rename(columns={"user": "User-ID", "item": "ISBN", "rating": "Book-Rating"})
    data = tmp_path / "books.csv"
    renamed.to_csv(data, index=False)
    model = tmp_path / "books.cf"
    code, _, err = run(capsys, ["train", str(data), "--user", "User-ID", "--item", "ISBN",
                                "--rating", "Book-Rating", "--epochs", "1", "--wd", "0.1",
                                "--out", str(model)])  # fmt: skip
    assert code == 0, err
    pairs = tmp_path / "pairs.csv"
    renamed[["User-ID", "ISBN"]].head(3).to_csv(pairs, index=False)
    code, out, err = run(capsys, ["predict", str(model), str(pairs), "--json"])
    assert code == 0, err
    assert list(json.loads(out)["predictions"][0]) == ["User-ID", "ISBN", "prediction"]
    code, out, err = run(capsys, ["evaluate", str(model), str(data), "--json"])
    assert code == 0 and json.loads(out)["ratings"] == len(frame), err
    plain = tmp_path / "plain.csv"
    plain.write_text("user,item\n1,7\n")
    code, _, err = run(capsys, ["predict", str(model), str(plain)])
    assert code == EXIT_DATA and "'User-ID'" in one_error(err) and "--user" in err
    assert run(capsys, ["predict", str(model), str(plain), "--user", "user", "--item",
                        "item"])[0] == 0  # fmt: skip


def test_evaluate_can_leave_unknown_pairs_out(made, tmp_path, capsys):
    _, _, model, _ = made
    data = tmp_path / "test.csv"
    data.write_text("user,item,rating\n1,7,4\n99999,7,3\n2,8,5\n")
    code, _, err = run(capsys, ["evaluate", str(model), str(data)])
    assert code == EXIT_UNKNOWN and "--unknown nan" in one_error(err)
    code, out, _ = run(capsys, ["evaluate", str(model), str(data), "--unknown", "nan", "--json"])
    document = json.loads(out)
    assert code == 0 and document["evaluated"] == 2 and document["unknown_pairs"] == 1


# ------------------------------------------------------------------ the library's advice
def test_library_advice_reaches_the_command_line_as_flags(made, tmp_path, capsys):
    folder, data, model, _ = made
    latin = tmp_path / "latin.csv"
    latin.write_bytes("user,item,rating\n1,caf\xe9,4\n".encode("latin-1"))
    no_times = tmp_path / "no_times.csv"
    no_times.write_text("user,item,rating\n" + "".join(f"{u},{i},3\n" for u in range(9)
                                                        for i in range(9)))  # fmt: skip
    duplicated = tmp_path / "dup.csv"
    duplicated.write_text("user,item,rating\n1,2,3\n1,2,4\n2,2,5\n")
    expected = [
        (["summary", str(latin)], "--encoding latin-1"),
        (["summary", str(data), "--rating", "stars"], "--rating"),
        (["summary", str(data), "--sep", ";"], "--sep"),
        (["train", str(no_times), "--split", "temporal"], "--timestamp"),
        (["recommend", str(model), "--user", "nobody"], "--rated ITEM=RATING"),
        (["recommend", str(model), "--user", "1", "--by", "ranking"], "--with-ranking"),
        (["train", str(data), "--lr", "1e6", "--epochs", "2"], "(--lr)"),
        (["summary", str(duplicated)], "keeping the last one"),
    ]
    for argv, flag in expected:
        code, _, err = run(capsys, argv)
        assert flag in err, (argv, err)
        assert not any(
            word in err
            for word in (
                "encoding=",
                "user=...",
                "timestamp=...",
                "recommend_new_user",
                "lr_max",
                "duplicates=",
            )
        )


def test_every_rewrite_still_matches_the_library_phrase_it_replaces():
    samples = [
        "x. Map fields to columns with user=..., item=..., rating=... (and timestamp=..., "
        "title=...)",
        "pass encoding='latin-1' for older MovieLens files",
        "cannot parse it (x); check the separator (sep=...)",
        "load them with timestamp=...",
        "; recommend_new_user folds in a user from ratings",
        "name the id columns with user=..., item=...",
        "lower the learning rate (lr_max) or raise weight decay",
        "resolved by duplicates='last'",
        "train the topn recipe (and save it beside the rating model) for top-N lists",
        "or pass its path: load_movielens('ml-1m', path=...) / collabfilter ... --data PATH.",
        "min_ratings must be >= 1",
        "(use a family that does, such as model='bayes', or features='none')",
    ]
    for (pattern, _), sample in zip(FLAG_WORDS[1:], samples, strict=True):
        assert pattern.search(sample), pattern
        assert in_flags(sample) != sample


# ------------------------------------------------------------------ what no command expects
def test_a_bug_is_one_line_saying_where(made, monkeypatch, capsys):
    def broken(*_, **__):
        raise RuntimeError("boom [/]")

    monkeypatch.setattr("collabfilter.interpret.similar_items", broken)
    _, _, model, _ = made
    code, _, err = run(capsys, ["similar", str(model), "7"])
    assert code == EXIT_ERROR and len(err.splitlines()) == 1
    assert "internal error, RuntimeError: boom [/]" in err
    assert "collabfilter/cli/query_commands.py:" in err


def test_a_refusal_of_the_system_is_one_line(made, monkeypatch, tmp_path, capsys):
    from collabfilter.train import Learner

    def refuse(*_, **__):
        raise PermissionError(13, "Permission denied", str(tmp_path / "m.cf"))

    monkeypatch.setattr(Learner, "save", refuse)
    _, data, _, _ = made
    code, _, err = run(capsys, ["train", str(data), "--epochs", "1", "--wd", "0.1", "--out",
                                str(tmp_path / "m.cf")])  # fmt: skip
    assert code == EXIT_ERROR and "cannot write the model file" in one_error(err)
