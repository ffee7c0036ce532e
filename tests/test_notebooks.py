"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, and none is committed with outputs."""
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
# the course, every solution, and every exercise in its unsolved state
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb")) + \
    sorted((ROOT / "exercises").glob("*.ipynb"))


def execute(path: Path, timeout: int = 300):
    nb = nbformat.read(path, as_version=4)
    env_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
                       ).execute()
    finally:
        if env_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backend
    return nb


def test_there_are_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    for expected in ("00_start_here", "01_attention_in_numpy", "02_multi_head_attention",
                     "03_multi_query_and_grouped_query", "04_batched_pytorch_attention", "05_kv_cache",
                     "06_cache_sizing", "07_decode_speed"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} has outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebook_executes(path):
    start = time.perf_counter()
    nb = execute(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
