"""Generated command lines, valid and hostile, for every subcommand.

Each case is drawn by a seeded generator from per-option pools of allowed values and of
hostile ones (zero, negative, huge and non-finite numbers, rich markup, odd Unicode,
control characters, undecodable bytes, missing files, folders, files where folders are
expected, unknown options, missing values) and run in-process. Whatever the line, the
command must end with a documented exit code (or argparse's 0/2), print at most one
error line on stderr, never a traceback and never the "internal error" line that
stands for a bug; a successful ``--json`` run must print one JSON document.
"""

from __future__ import annotations

import json
import random

import pytest

from collabfilter import generate_ratings
from collabfilter.cli import main

DOCUMENTED = set(range(10))
CASES_PER_COMMAND = 28
FEWER = {"datasets": 4, "fetch": 12, "demo": 8}
"""Commands with few options need fewer cases to cover them."""
SEED = 20_240_611

INTS = ["0", "-1", "-7", "nan", "inf", "-inf", "1e3", "1.5", "", "abc", "0x10", "--", "١٢",
        str(2**31), str(2**63), "9" * 30, "9" * 5000]  # fmt: skip
REALS = ["0", "-1", "-0.5", "nan", "NaN", "inf", "-inf", "1e400", "", "abc", "1,5", "--"]
ODD_TEXT = ["[/]", "[red]film", "[bold]x[/bold]", ":smile:", "[link=http://x]a[/link]",
            "\x1b[31mred", "a\nb", "a\rb", "line\u2028sep", "\udcff\udcfe", "é", "☃", "\u202ertl",
            "", " ", "'", '"', "\\", "%s", "{0}", "\t", "\x00", "x" * 3000]  # fmt: skip
BAD_PATHS = ["<missing>", "<folder>", "<markup_path>", "", "\udcff.csv", "a\x00b",
             "<ratings>/inside", "<broken>"]  # fmt: skip
DATA_SOURCES = ["<ratings>", "<odd_name>", "<pairs>", "<empty>", "<header_only>", "<latin>",
                "<bad_parquet>", "<folder>", "<missing>", "<markup_path>", "ml-1m", "",
                "<broken>", "a\x00b"]  # fmt: skip
MODELS = ["<model>", "<topn>"]
BAD_MODELS = ["<broken>", "<ratings>", "<missing>", "<folder>", "<empty>", ""]

FLAG = None
"""An option that takes no value."""


def data_options() -> dict[str, tuple[list[str], list[str]] | None]:
    columns = ["user", "item", "rating", "title", "timestamp"]
    return {
        "--user": (["user"], [*columns, *ODD_TEXT]),
        "--item": (["item"], [*columns, *ODD_TEXT]),
        "--rating": (["rating"], [*columns, *ODD_TEXT]),
        "--timestamp": (["timestamp"], ["title", *ODD_TEXT]),
        "--title": (["title"], ["rating", *ODD_TEXT]),
        "--sep": ([","], ["\\t", ";", "::", "", "\n", '"', "\x00", "§", "ab"]),
        "--encoding": (["utf-8", "latin-1"], ["nope", "rot13", "", "\x00", "utf-16", "ascii"]),
        "--no-header": FLAG,
        "--data": (["<folder>"], BAD_PATHS),
    }


def training_options(*, sweep: bool = False) -> dict[str, tuple[list[str], list[str]] | None]:
    options: dict[str, tuple[list[str], list[str]] | None] = {
        "--model": (
            ["dot_bias", "nn", "dot", "bayes", "topn"],
            ["nope", "[/]", "", "DOT_BIAS", "dot_bias_large"],
        ),  # fmt: skip
        "--wd": (["0", "0.1", "1e-3"], REALS),
        "--bs": (["64", "1024"], INTS),
        "--factors": (["2", "4"], [*INTS, "4097"]),
        "--seed": (["0", "42", str(2**32 - 1)], [*INTS, str(2**32)]),
    }
    if not sweep:
        options["--epochs"] = (["1", "2"], [*INTS, "10001"])
        options["--lr"] = (["0.01", "0.1"], [*REALS, "1e9"])
    return options


def command_specs() -> dict[str, tuple[list[tuple[list[str], list[str]]], dict]]:
    """Positionals (allowed, hostile) and options (allowed, hostile) of each command."""
    json_flag = {"--json": FLAG}
    return {
        "summary": (
            [(["<ratings>", "<odd_name>"], DATA_SOURCES)],
            {**data_options(), "--sample": (["0", "3", "100000"], INTS), **json_flag},
        ),
        "datasets": ([], {**json_flag}),
        "fetch": (
            [(["ml-100k", "ml-1m"], ["nope", "", "[/]", "ML-100K"])],
            {"--data": (["<folder>"], BAD_PATHS)},
        ),
        "synth": (
            [],
            {
                "--users": (["40", "60"], [*INTS, "1"]),
                "--items": (["60", "80"], [*INTS, "1"]),
                "--ratings": (["200", "400"], [*INTS, "1", "100000"]),
                "--factors": (["2", "8"], [*INTS, "4097"]),
                "--seed": (["0", "7"], INTS),
                "--out": (
                    ["<out>/s.parquet", "<out>/new/s.parquet"],
                    ["<out>/s.csv", "<folder>", "<ratings>/s.parquet", "", "a\x00b"],
                ),
            },  # fmt: skip
        ),
        "demo": (
            [],
            {"--data": (["<folder>"], BAD_PATHS), "--out": (["<out>/demo"], ["<ratings>/x", ""])},
        ),
        "train": (
            [(["<ratings>", "<odd_name>"], DATA_SOURCES)],
            {
                **data_options(),
                **training_options(),
                "--valid-pct": (["0", "0.2"], [*REALS, "1", "1.5"]),
                "--split": (["random", "temporal"], ["u1", "ub", "nope", ""]),
                "--out": (
                    ["<out>/m.cf", "<out>/deep/er/m.cf", "<out>/[red]m[/].cf"],
                    ["<folder>", "<ratings>", "<ratings>/m.cf", "", "a\x00b"],
                ),
                "--ratings-db": (["<missing>"], BAD_PATHS),
                "--with-ranking": FLAG,
                **json_flag,
            },  # fmt: skip
        ),
        "evaluate": (
            [(MODELS, BAD_MODELS), (["<ratings>"], DATA_SOURCES)],
            {
                **data_options(),
                "--unknown": (["error", "nan", "baseline"], ["", "x"]),
                **json_flag,
            },  # fmt: skip
        ),
        "predict": (
            [
                (MODELS, BAD_MODELS),
                (["<pairs>", "<pairs_parquet>", "<unknown_pairs>"], DATA_SOURCES),
            ],
            {
                "--out": (
                    ["<out>/p.csv", "<out>/p.parquet", "<out>/p.tsv", "<out>/n/p.csv"],
                    ["<out>/p.json", "<folder>", "<model>", "<ratings>/p.csv", ""],
                ),
                "--user": (["user"], ODD_TEXT),
                "--item": (["item"], ODD_TEXT),
                "--sep": ([","], ["\\t", ";", "", "\n", "::"]),
                "--encoding": (["utf-8"], ["nope", "latin-1", ""]),
                "--unknown": (["error", "nan", "baseline"], ["", "x"]),
                **json_flag,
            },  # fmt: skip
        ),
        "recommend": (
            [(MODELS, BAD_MODELS)],
            {
                "--user": (["1", "2", "3"], ["007", "1.0", "-1", "0", "99999", *ODD_TEXT]),
                "--rated": (
                    ["Star Wars (1977)=5", "7=4", "star wars=1", "Movie 8 (1908)=2"],
                    [
                        "star wars",
                        "=5",
                        "x=",
                        "Star Wars (1977)=nan",
                        "Star Wars (1977)=inf",
                        "Star Wars (1977)=9",
                        "7=4.5",
                        "[/]=5",
                        "\udcff=3",
                        "no such film=4",
                        "=",
                        "",
                    ],
                ),
                "-n": (["1", "3", "100000"], INTS),
                "--min-ratings": (["1", "5", "100000"], INTS),
                "--by": (["auto", "rating", "ranking"], ["", "nope"]),
                **json_flag,
            },  # fmt: skip
        ),
        "similar": (
            [
                (MODELS, BAD_MODELS),
                (
                    ["7", "star wars", "Movie 9 (1909)", "[red]film"],
                    ["zzqx nothing", "", "0", "-1", *ODD_TEXT],
                ),
            ],
            {"-n": (["1", "5"], INTS), "--min-ratings": (["1", "3"], INTS), **json_flag},
        ),
        "interpret": (
            [(MODELS, BAD_MODELS)],
            {
                "--out": (
                    ["<out>/int", "<out>/[x]/int"],
                    ["<ratings>", "<ratings>/x", "", "a\x00b"],
                ),
                "--among": (["2", "3", "50"], [*INTS, "1"]),
                **json_flag,
            },  # fmt: skip
        ),
        "lr-find": (
            [(["<ratings>"], DATA_SOURCES)],
            {
                **data_options(),
                **training_options(sweep=True),
                "--plot": (
                    ["<out>/lr.png", "<out>/lr.svg"],
                    ["<out>/lr.txt", "<folder>", "<ratings>/lr.png", ""],
                ),
                **json_flag,
            },  # fmt: skip
        ),
        "serve": (
            [(["<model>"], BAD_MODELS)],
            {
                "--host": (["127.0.0.1", "localhost"], ["0.0.0.0", "", "[/]", "999.1.1.1"]),
                "--port": (["0", "8000"], [*INTS, "65536"]),
                "--workers": (["1", "2"], INTS),
                "--reload-poll": (["0", "1.5"], REALS),
                "--min-ratings": (["1", "3"], INTS),
                "--token": (["a-long-token"], ["", "short", " spaced token "]),
                "--db": (["<out>/r.sqlite"], ["<missing>/deep/r.sqlite", "<ratings>/x"]),
            },  # fmt: skip
        ),
    }


def draw(rng: random.Random, command: str) -> list[str]:
    """One command line: mostly allowed values, with hostile ones mixed in."""
    positionals, options = command_specs()[command]
    argv = [command]
    for allowed, hostile in positionals:
        argv.append(rng.choice(hostile if rng.random() < 0.2 else allowed))
    names = list(options)
    if command == "recommend":  # exactly one of --user and --rated, usually
        names = [n for n in names if n not in ("--user", "--rated")]
        choices = [["--user"], ["--rated"], ["--rated", "--rated"], [], ["--user", "--rated"]]
        who = rng.choices(choices, weights=[8, 5, 3, 1, 1])[0]
    else:
        who = []
    for name in who + rng.sample(names, k=min(len(names), rng.randint(0, 4))):
        pool = options[name]
        argv.append(name)
        if pool is not FLAG:
            allowed, hostile = pool
            argv.append(rng.choice(hostile if rng.random() < 0.3 else allowed))
    if command == "train" and "--epochs" not in argv and "topn" not in argv:
        argv += ["--epochs", "2"]  # a recipe's own length would only make the run longer
    if command == "synth" and "--out" not in argv and rng.random() < 0.9:
        argv += ["--out", "<out>/s.parquet"]  # required: without it every case is a usage error
    if command == "demo" and "--data" not in argv:
        argv += ["--data", "<folder>"]  # the real demo trains on ml-100k: test_cli_demo's job
    roll = rng.random()
    if roll < 0.05:
        argv.append("--frobnicate")
    elif roll < 0.08:
        argv.append(rng.choice([n for n in names if options[n] is not FLAG] or ["--json"]))
    elif roll < 0.10:
        argv.append("--help")
    return argv


def all_cases() -> list[list[str]]:
    rng = random.Random(SEED)
    return [
        draw(rng, command)
        for command in command_specs()
        for _ in range(FEWER.get(command, CASES_PER_COMMAND))
    ]


CASES = all_cases()


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory, brief_model) -> dict[str, str]:
    """The files and folders the placeholders of the cases stand for."""
    from collabfilter.config import RunOptions
    from collabfilter.train import collab_learner

    folder = tmp_path_factory.mktemp("fuzz")
    synthetic = generate_ratings(80, 100, 1500, n_factors=2, seed=3)
    titles = {k: f"Movie {k} ({1900 + k})" for k in range(1, 101)}
    titles.update({7: "Star Wars (1977)", 8: "[red]film", 9: "[/]", 10: ":smile: ☃", 11: "a\tb"})
    ratings = synthetic.ratings.with_titles(titles)
    frame = ratings.to_frame()
    (folder / "empty folder").mkdir()
    data = folder / "ratings.csv"
    frame.to_csv(data, index=False)
    odd = folder / "[red]odd[/] ratings.csv"  # markup in a folder's and a file's name
    odd.parent.mkdir()
    frame.to_csv(odd, index=False)
    frame[["user", "item"]].head(20).to_csv(folder / "pairs.csv", index=False)
    frame[["user", "item"]].head(20).to_parquet(folder / "pairs.parquet")
    unknown = "user,item\n1,7\n99999,7\n007,8\nabc,[/]\n,\n"
    (folder / "unknown.csv").write_text(unknown)
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header.csv").write_text("user,item,rating\n")
    (folder / "latin.csv").write_bytes("user,item,rating\n1,caf\xe9,4\n".encode("latin-1"))
    (folder / "bad.parquet").write_bytes(b"not parquet at all")
    model = brief_model(ratings, folder / "model.cf", epochs=2)
    ranker = collab_learner(ratings, model="topn", options=RunOptions(seed=0, progress=False))
    ranker.fit_recipe()
    topn = ranker.save(folder / "topn.cf")
    (folder / "broken.cf").write_bytes(model.read_bytes()[:700])
    out = folder / "out"
    out.mkdir()
    return {
        "<ratings>": str(data), "<odd_name>": str(odd), "<pairs>": str(folder / "pairs.csv"),
        "<pairs_parquet>": str(folder / "pairs.parquet"),
        "<unknown_pairs>": str(folder / "unknown.csv"), "<empty>": str(folder / "empty.csv"),
        "<header_only>": str(folder / "header.csv"), "<latin>": str(folder / "latin.csv"),
        "<bad_parquet>": str(folder / "bad.parquet"), "<folder>": str(folder / "empty folder"),
        "<missing>": str(folder / "absent.csv"), "<markup_path>": str(folder / "[bold]x[/].csv"),
        "<model>": str(model), "<topn>": str(topn), "<broken>": str(folder / "broken.cf"),
        "<out>": str(out),
    }  # fmt: skip


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` checks its settings as it would, but never listens."""
    from collabfilter.serve import __main__ as serve_cli
    from collabfilter.serve.server import check_settings

    def settle(*args: object, **options: object) -> None:
        check_settings(*args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(serve_cli, "run", settle)
    monkeypatch.delenv("COLLABFILTER_TOKEN", raising=False)


def expand(argv: list[str], places: dict[str, str]) -> list[str]:
    result = []
    for arg in argv:
        for placeholder, path in places.items():
            arg = arg.replace(placeholder, path)
        result.append(arg)
    return result


def case_id(argv: list[str]) -> str:
    return " ".join(argv).encode("ascii", "backslashreplace").decode()[:90]


@pytest.mark.parametrize("argv", CASES, ids=[case_id(c) for c in CASES])
def test_any_command_line_ends_cleanly(argv, places, no_server, capsys, monkeypatch):
    monkeypatch.chdir(places["<out>"])  # demo and interpret defaults write here
    line = expand(argv, places)
    try:
        code = main(line)
    except SystemExit as stop:  # argparse: help (0) or a usage error (2)
        code = stop.code
        assert code in (0, 2), line
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err and "Traceback" not in printed.out
    assert code in DOCUMENTED, (code, printed.err)
    problems = [x for x in printed.err.splitlines() if not x.startswith("warning: ")]
    if code == 0:
        assert problems == [], printed.err
        if "--json" in line and "--help" not in line:
            json.loads(printed.out)
    else:
        assert len(problems) == 1, printed.err
        assert "internal error" not in problems[0], problems[0]


def test_the_cases_cover_every_command_and_hostile_values():
    commands = {argv[0] for argv in CASES}
    assert commands == set(command_specs()) and len(CASES) >= 300
    hostile = {value for _, hostile in (p for spec in command_specs().values() for p in spec[0])
               for value in hostile}  # fmt: skip
    used = {arg for argv in CASES for arg in argv}
    assert len(used & (hostile | set(ODD_TEXT) | set(INTS))) > 20
