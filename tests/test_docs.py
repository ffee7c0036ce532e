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


def stated_minutes(notebook: Path) -> tuple[int, int]:
    """The learner time a notebook states in its first cell: "**Time:** 35–45 minutes" or "about 10 minutes"."""
    m = re.search(r"\*\*Time:\*\* (?:about )?(\d+)(?:[–-](\d+))? minutes", notebook.read_text())
    assert m, f"{notebook.name} states no learner time"
    return int(m.group(1)), int(m.group(2) or m.group(1))


def test_the_schedule_fits_ninety_minute_sessions_with_the_stated_times():
    """Each session's notebooks, at the learner times they state themselves, fit 90 minutes: at most 80 at the lower
    end (a buffer of 10) and 90 at the upper end; every notebook is scheduled once."""
    table = GUIDE[GUIDE.index("## A schedule"):GUIDE.index("## Presenting")]
    rows = [r for r in table.splitlines() if re.match(r"\| \d+ \|", r)]
    scheduled = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = re.findall(r"`(\d\d_\w+)`", cells[1])
        times = re.findall(r"(\d+)(?:-(\d+))? min", cells[3])
        assert len(names) == len(times) == len(re.findall(r"\d+ s\b", cells[2])), row
        low = high = 0
        for name, (a, b) in zip(names, times):
            stated = stated_minutes(ROOT / "notebooks" / f"{name}.ipynb")
            assert (int(a), int(b or a)) == stated, f"{name}: the guide says {a}-{b or a}, the notebook {stated}"
            low, high = low + stated[0], high + stated[1]
        assert low <= 80 and high <= 90, f"session {cells[0]}: {low}-{high} minutes of stated learner time"
        scheduled += names
    assert sorted(scheduled) == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
