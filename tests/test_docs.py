"""The instructor guide stays complete: it schedules every notebook, lists every graded exercise with its points, and
every command it shows exists."""
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "INSTRUCTORS.md").read_text()


def test_the_guide_schedules_every_notebook_and_lists_every_exercise():
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"`{nb.stem}`" in GUIDE, nb.stem
    for ex in sorted((ROOT / "exercises").glob("*.ipynb")):
        assert re.search(rf"\| `{ex.stem}` \| 100 \|", GUIDE), ex.stem  # the points table
        assert f"--exercise {ex.stem}" in GUIDE, ex.stem  # and how to grade it


def test_every_command_in_the_guide_exists():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    used = set(re.findall(r"\b(mqa-[a-z-]+)", GUIDE))
    assert used and used <= set(scripts), used - set(scripts)


def test_the_readme_points_to_the_guide():
    assert "INSTRUCTORS.md" in (ROOT / "README.md").read_text()
