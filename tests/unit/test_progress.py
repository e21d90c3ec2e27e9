"""The epoch table and the recipes' notes show wherever training runs (a script whose
stderr goes to a file, a notebook), and one switch silences them.

The suite sets ``COLLABFILTER_PROGRESS=0`` (tests/conftest.py): these tests run their
training in another process with it unset, as a user's script or kernel would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from collabfilter.progress import HEADER

MARK = "=== silenced runs end here ==="

# Three recipes, each shortened: a dot model (its note names the decay chosen), the
# Bayesian sampler (its table counts sweeps) and a ranking model (its note names the
# model chosen). ``progress`` is the run option under test.
RECIPES = """
import sys
import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.models import RECIPES, TopNConfig
from collabfilter.train import collab_learner

ratings = cf.generate_ratings(120, 200, 4000, n_factors=3, seed=2).ratings
train, valid = cf.split_random(ratings, 0.1, seed=1)
CONFIGS = {
    "dot_bias": RECIPES["dot_bias"][1].with_length(3),
    "bayes": RECIPES["bayes"][1].with_length(4),
    "topn": TopNConfig(candidates=("ease",), ease_l2_scales=(5.0,), low_rating_weights=(1.0,)),
}

def train_all(progress):
    for model, config in CONFIGS.items():
        options = RunOptions(progress=progress)
        collab_learner(train, valid, model=model, config=config, options=options).fit_recipe()
"""

SCRIPT = (
    RECIPES
    + f"""
train_all(False)
print({MARK!r}, file=sys.stderr, flush=True)
train_all(None)
"""
)


def environment(progress: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COLLABFILTER_PROGRESS"}
    if progress is not None:
        env["COLLABFILTER_PROGRESS"] = progress
    return env


def run_script(tmp_path: Path, progress: str | None) -> str:
    """Run the recipes in a script whose stderr goes to a file; the file's text."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    log = tmp_path / "stderr.txt"
    command = [sys.executable, str(script)]
    with log.open("w") as stderr:
        subprocess.run(
            command, stderr=stderr, stdout=subprocess.DEVNULL, env=environment(progress),
            cwd=tmp_path, check=True, timeout=300,
        )  # fmt: skip
    return log.read_text()


def assert_every_recipe_shows(text: str) -> None:
    """The table of the dot model (3 epochs) and of the sampler (4 sweeps), and the
    notes of the dot model's decay choice and the ranking model's choice, in order."""
    assert text.count(HEADER) == 2
    rows = re.findall(r"^\s+(\d+)\s+\d+\.\d{4}\s+\d+\.\d{4}\s+\d+\.\d{4}\s+\d+\.\d\ds$", text, re.M)
    assert rows == ["1", "2", "3", "1", "2", "3", "4"]
    decay = text.index("note: decay x")
    first_table = text.index(HEADER)
    ranking = text.index("note: top-N model: ease")
    assert decay < first_table < text.rindex(HEADER) < ranking


def test_a_script_writing_to_a_file_shows_the_table_and_notes(tmp_path):
    text = run_script(tmp_path, None)
    silenced, shown = text.split(MARK)
    assert silenced == ""  # RunOptions(progress=False)
    assert_every_recipe_shows(shown)
    assert "\x1b[" not in shown  # plain lines in a file: no bar, no terminal codes


def test_the_environment_switch_silences_a_script(tmp_path):
    assert run_script(tmp_path, "0").strip() == MARK


def notebook_text(notebook: nbformat.NotebookNode, cell: int) -> str:
    """What a cell showed: streams and rich's displays (it renders to HTML there)."""
    outputs = notebook.cells[cell].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    return "".join(str(o.get("text", "")) + o.get("data", {}).get("text/plain", "")
                   for o in outputs)  # fmt: skip


@pytest.mark.slow
def test_a_notebook_shows_the_table_and_notes(tmp_path):
    cells = [
        RECIPES,
        "train_all(None)",
        "train_all(False)",
        "import os\nos.environ['COLLABFILTER_PROGRESS'] = '0'\ntrain_all(None)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    saved = os.environ.pop("COLLABFILTER_PROGRESS", None)  # the kernel inherits this
    try:
        client.execute()
    finally:
        if saved is not None:
            os.environ["COLLABFILTER_PROGRESS"] = saved
    assert_every_recipe_shows(notebook_text(notebook, 1))
    assert "Warning" not in notebook_text(notebook, 1)  # e.g. rich's "install ipywidgets"
    assert notebook_text(notebook, 2) == ""
    assert notebook_text(notebook, 3) == ""
