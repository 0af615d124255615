"""The quickstart notebook, executed as a user runs it, so that it cannot rot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs_and_shows_its_figures(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # learning curves, confusion matrix, mistakes, the drawn digit, the written number
    assert len(images) == 5
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "test accuracy 0.9" in text
    drawn = next(line for line in text.splitlines() if line[:1].isdigit() and " 0." in line)
    assert drawn.split()[0] == "7"
    assert "written" in text and "read" in text
