"""The README's promises on the real ml-100k: every line of the "Command line" block (each
alternative of a line written ``a | b``) and the "Using the library" snippets, in order.

Commands run in-process, in a scratch folder holding the files the README names
(``ratings.csv``, ``test.csv``, ``pairs.csv``, the service's ``movies.cf.ratings.sqlite``).
Training lines run with fewer epochs than written or than their recipe's (``--epochs``,
a documented flag) so that the file takes about a minute; the first line runs as written.
``serve`` runs until stopped, so only its ``--help`` is run; ``demo`` is run in full by
``test_cli_demo.py``, so only its ``--help`` here. The library snippets run as written,
with the ``bayes`` and ``topn`` recipes made lighter (fewer sweeps, one candidate).
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collabfilter.cli import main

pytestmark = pytest.mark.realdata

README = Path(__file__).resolve().parents[2] / "README.md"
SHORTER = {"bayes": "4", "dot_bias": "3", "nn": "3"}
"""Epochs (sweeps) of training lines: a few seconds each."""
ONLY_HELP = {"serve": "runs until stopped", "demo": "run in full by test_cli_demo.py"}
STORED_USER = 9001


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def expand(line: str) -> list[list[str]]:
    """The command lines a README line stands for: ``x --a 1 | --b | --c 2`` is three
    lines (the first alternative starts at the last option of the first part, or at its
    last word when the alternatives are subcommands)."""
    line = re.split(r"\s{2,}#", line)[0].strip()
    parts = [part.strip() for part in line.split(" | ")]
    first = shlex.split(parts[0])
    if len(parts) == 1:
        return [first]
    if parts[1].startswith("-"):
        start = max(i for i, word in enumerate(first) if word.startswith("-"))
    else:
        start = len(first) - 1
    prefix = first[:start]
    return [prefix + first[start:]] + [prefix + shlex.split(part) for part in parts[1:]]


def readme_commands() -> list[list[str]]:
    block = re.search(r"```\n(.*?)```", section("Command line"), re.S)
    assert block is not None, "the Command line section has no code block"
    lines = [line for line in block.group(1).splitlines() if line.startswith("collabfilter ")]
    return [argv[1:] for line in lines for argv in expand(line)]


COMMANDS = readme_commands()


def as_run(argv: list[str]) -> list[str]:
    """The line as this test runs it: placeholders filled in, training shortened."""
    argv = ["ml-100k" if word == "NAME" else word for word in argv]
    if argv[0] in ONLY_HELP:
        return [argv[0], "--help"]
    if argv[0] == "train" and argv != COMMANDS[0]:
        recipe = argv[argv.index("--model") + 1] if "--model" in argv else "dot_bias"
        if "--epochs" in argv:
            argv[argv.index("--epochs") + 1] = SHORTER[recipe]
        elif recipe in SHORTER:
            argv = [*argv, "--epochs", SHORTER[recipe]]
    return argv


@pytest.fixture(scope="module")
def workspace(ml100k, tmp_path_factory):
    """A folder with the files the README's lines read."""
    folder = tmp_path_factory.mktemp("readme")
    frame = ml100k.to_frame()
    frame.rename(columns={"user": "userId", "item": "movieId"}).drop(columns="title").to_csv(
        folder / "ratings.csv", index=False
    )
    held_out = frame.sample(2000, random_state=0)[["user", "item", "rating"]]
    held_out.to_csv(folder / "test.csv", index=False)
    held_out[["user", "item"]].head(50).to_csv(folder / "pairs.csv", index=False)
    return folder


def store_ratings(folder: Path) -> None:
    """The ratings a running service would have stored beside ``movies.cf``."""
    from collabfilter.serve import RatingStore

    store = RatingStore(folder / "movies.cf.ratings.sqlite")
    store.add(STORED_USER, [(50, 5.0), (181, 5.0), (88, 1.0)])
    store.close()


@pytest.fixture(scope="module")
def runs(workspace):
    """Every README line, run in order (later lines use the model files earlier ones
    wrote): argv -> (exit code, stdout, stderr, what the model file written holds)."""
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        for argv in COMMANDS:
            if "--ratings-db" in argv:
                store_ratings(workspace)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(as_run(argv))
                except SystemExit as stop:
                    code = stop.code
            written = model_facts(workspace, argv) if code == 0 else None
            results[tuple(argv)] = (code, out.getvalue(), err.getvalue(), written)
    return results


def model_facts(folder: Path, argv: list[str]) -> dict[str, object] | None:
    """What a training line's model file holds, read before a later line replaces it."""
    import collabfilter as cf

    if argv[0] != "train" or "--out" not in argv:
        return None
    model = cf.load_model(folder / argv[argv.index("--out") + 1])
    return {"ranker": model.ranker is not None, "users": set(model.users.ids.tolist()),
            "columns": model.columns, "ratings": len(model.interactions)}  # fmt: skip


def test_the_block_has_the_documented_lines():
    words = {" ".join(argv) for argv in COMMANDS}
    assert "train ml-100k --split u1" in words and "train ml-100k --valid-pct 0" in words
    assert {"summary", "datasets", "fetch NAME", "synth --out FILE.parquet", "demo"} <= words
    assert len(COMMANDS) >= 20


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the rich tables in ``text`` by their first cell."""
    rows = {}
    for line in text.splitlines():
        if "│" in line:
            cells = [cell.strip() for cell in line.split("│")]
            rows[cells[0]] = cells[1:]
    return rows


def table_records(text: str) -> list[dict[str, str]]:
    """The rows of the (last) rich table in ``text`` as dicts by column name."""
    names: list[str] = []
    records: list[dict[str, str]] = []
    for line in text.splitlines():
        if "┃" in line:
            names, records = [name.strip() for name in line.split("┃")], []
        elif "│" in line and names:
            records.append(dict(zip(names, (c.strip() for c in line.split("│")), strict=True)))
    return records


def check_train(argv, out, written):
    assert "train_loss" in out
    if "--valid-pct" in argv:
        assert "no validation part" in out and "Validation error" not in out
    elif "topn" in argv:  # judged as lists: its NDCG beside the most popular items'
        assert "ndcg" in out.lower() and "most popular" in out
    else:
        rows = table_rows(out)
        model_row = next(cells for name, cells in rows.items() if name not in (
            "global mean", "user mean", "item mean", "bias only (damped)"))  # fmt: skip
        assert float(model_row[0]) < float(rows["global mean"][0])  # rmse beats the mean
    if "--split" in argv:
        assert argv[argv.index("--split") + 1] in out
    if "--out" in argv:
        assert written["ranker"] == ("--with-ranking" in argv) or "topn" in argv
        assert (STORED_USER in written["users"]) == ("--ratings-db" in argv)
        if "--user" in argv:
            assert written["columns"]["user"] == "userId"


def check(argv, out, workspace, written):
    """What the README says each command produces."""
    command = argv[0]
    if command in ONLY_HELP:
        assert f"usage: collabfilter {command}" in out
    elif command == "train":
        check_train(argv, out, written)
    elif command == "evaluate":
        rows = table_rows(out)
        assert float(rows["model"][0]) < float(rows["global mean"][0]) and "bias only" in out
    elif command == "predict":
        written = pd.read_parquet(workspace / argv[argv.index("--out") + 1])
        assert list(written.columns) == ["user", "item", "prediction"] and len(written) == 50
        assert written.user.dtype.kind == "i" and np.isfinite(written.prediction).all()
    elif command == "recommend":
        rows = table_records(out)
        assert [row["rank"] for row in rows] == [str(k) for k in range(1, 11)], out
        if "--rated" in argv:  # never an item the new user rated
            titles = {row["title"] for row in rows}
            assert not titles & {"Star Wars (1977)", "Sleepless in Seattle (1993)"}
    elif command == "similar":
        assert "Return of the Jedi (1983)" in out or "Empire Strikes Back" in out
    elif command == "interpret":
        folder = workspace / argv[argv.index("--out") + 1]
        assert (folder / "item_biases.csv").is_file() and (folder / "item_map.png").is_file()
        assert "Lowest item biases" in out and "Principal component 3" in out
    elif command == "lr-find":
        assert (workspace / "lr.png").stat().st_size > 10_000 and "suggested peak rate" in out
    elif command == "summary":
        assert "100,000" in out and "Crosstab" in out
    elif command == "datasets":
        assert "ml-100k" in out and "ml-25m" in out
    elif command == "fetch":
        assert "ml-100k: verified at" in out
    elif command == "synth":
        assert len(pd.read_parquet(workspace / "FILE.parquet")) == 100_000
    else:
        pytest.fail(f"no check for {command}: say what it promises")


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv) for argv in COMMANDS])
def test_each_command_line_of_the_readme(argv, runs, workspace):
    code, out, err, written = runs[tuple(argv)]
    assert code == 0, err
    assert [line for line in err.splitlines() if not line.startswith("warning:")] == [], err
    check(argv, out, workspace, written)


def test_dot_recipe_trains_without_nan(workspace, capsys):
    # The "Which model" table lists dot; its recipe must train on ml-100k.
    capsys.readouterr()
    code = main(["train", "ml-100k", "--model", "dot", "--epochs", "3", "--json"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    import json

    document = json.loads(printed.out)
    rmse = document["validation"][0]["rmse"]
    assert rmse is not None and math.isfinite(rmse) and rmse < 1.0


# ------------------------------------------------------------------ Using the library
def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", section("Using the library"), re.S)


@pytest.fixture
def lighter_recipes(monkeypatch):
    """The bayes recipe with 4 sweeps, topn choosing among one EASE setting: the snippets'
    calls unchanged, in seconds."""
    from dataclasses import replace

    from collabfilter.models import RECIPES

    bayes_model, bayes_fit = RECIPES["bayes"]
    monkeypatch.setitem(RECIPES, "bayes", (bayes_model, bayes_fit.with_length(4)))
    topn_model, topn_fit = RECIPES["topn"]
    lighter = replace(topn_fit, candidates=("ease",), ease_l2_scales=(5.0,),
                      low_rating_weights=(0.3,))  # fmt: skip
    monkeypatch.setitem(RECIPES, "topn", (topn_model, lighter))


def test_the_library_snippets_run_in_order(ml100k_dir, tmp_path, monkeypatch, lighter_recipes):
    monkeypatch.chdir(tmp_path)  # learner.save("movies.cf") writes here
    blocks = snippets()
    assert len(blocks) == 3
    namespace: dict[str, object] = {}
    values: dict[str, object] = {}
    for number, block in enumerate(blocks):
        if number == 2:
            # The DataFrame snippet predicts a ``test`` frame the README never defines:
            # here it is the validation ratings of the first snippet.
            namespace["test"] = namespace["valid"].to_frame()  # type: ignore[attr-defined]
        for statement in ast.parse(block).body:
            source = ast.get_source_segment(block, statement) or ""
            if isinstance(statement, ast.Expr):
                values[source] = eval(compile(ast.Expression(statement.value), "README", "eval"),
                                      namespace)  # fmt: skip
            else:
                exec(compile(ast.Module([statement], []), "README", "exec"), namespace)
    check_library_values(values, namespace, tmp_path)


def value(values: dict[str, object], start: str) -> object:
    return next(result for source, result in values.items() if source.startswith(start))


def check_library_values(values, namespace, folder):
    history = value(values, "learner.history_frame()")
    assert list(history.columns) == ["epoch", "train_loss", "valid_loss", "valid_rmse", "seconds"]
    predicted = value(values, "learner.predict([1, 1]")
    assert predicted.shape == (2,) and np.isfinite(predicted).all()
    assert len(value(values, "learner.predict_ratings(valid)")) == len(namespace["valid"])
    biases = value(values, "interpret.item_biases(")
    assert {"title", "bias", "mean rating", "ratings"} <= set(biases.columns)
    near = value(values, 'interpret.similar_items(learner, "star wars"')
    assert "Return of the Jedi (1983)" in near.title.tolist()
    lists = value(values, "recommend.recommend(learner, [1, 2, 3]")
    assert len(lists) == 30 and set(lists.user) == {1, 2, 3}
    fresh = value(values, "recommend.recommend_new_user(")
    assert "Star Wars (1977)" not in fresh.title.tolist() and len(fresh) > 0
    assert (folder / "movies.cf").is_file()
    loaded = value(values, "model.predict_ratings(valid.to_frame()")
    assert np.isfinite(loaded).all()
    used = value(values, "bayes.features_used.describe()")
    assert used == "user: age, gender, occupation, zip; item: genres, year"
    spread = value(values, "bayes.predict_with_uncertainty(")
    assert {"prediction", "std", "low", "high"} <= set(spread.columns)
    because = value(values, "recommend.explain(ranker, 1")
    assert because is not None
    score = value(values, "rec.score(test)")
    assert set(score) == {"rmse", "mae", "mse"} and score["rmse"] < 1.0
    top = value(values, "rec.recommend([1, 2], k=10)")
    assert len(top) == 20
    assert np.isfinite(namespace["test"]["prediction"]).all()
