"""docs/tutorial.ipynb runs from top to bottom, so it never rots."""

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from collabfilter.progress import HEADER

pytestmark = pytest.mark.realdata

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"


def test_the_tutorial_notebook_runs(ml100k_dir, tmp_path, monkeypatch):
    # the kernel inherits the environment: show notes and tables as a user's would
    monkeypatch.delenv("COLLABFILTER_PROGRESS", raising=False)
    notebook = nbformat.read(shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name), as_version=4)
    # executed where the copy is, so its plots and model file go to the temporary folder
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(images) >= 3 and len(tables) >= 10
    text = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert "Return of the Jedi" in text and "suggested peak rate" in text
    assert "because you rated" in text
    assert "user: age, gender, occupation, zip; item: genres, year" in text  # side features
    assert "taken as fastai's Adam step size" in text and HEADER in text  # notes, tables
    assert "lowest RMSE:" in text  # the comparison the text refers to, printed
    assert "'ranker': 'EASE'" in text or "'ranker': 'ImplicitALS'" in text  # served, both models
    assert (tmp_path / "out" / "tutorial" / "movies.cf").is_file()


def test_the_saved_tutorial_shows_its_outputs_and_its_text_quotes_none():
    """The file in the repository was executed (``make tutorial``), and its prose
    states no figures of its own: figures drift with each run, and the outputs beside
    the text are the ones to read."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs for cell in code)
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    prose = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert not re.findall(r"\b0\.\d{3,}", prose), "a figure in the text: refer to the outputs"
