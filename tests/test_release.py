"""The student release (mqa-release): nothing private in it, and it passes its own tests with working checks."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def student_release(tmp_path_factory):
    from mqa_edu.authoring.release import release
    out = tmp_path_factory.mktemp("release") / "course"
    release(out)
    return out


def test_student_release_has_nothing_private(student_release):
    from mqa_edu.authoring.release import PRIVATE, leaks, solution_lines
    out = student_release
    for p in PRIVATE:
        assert not (out / p).exists(), p
    assert (out / "exercises" / "ex01_cache_sizing.ipynb").is_file()
    assert (out / "mqa_edu" / "checks" / "public" / "ex01_cache_sizing.json").is_file()
    assert leaks(out, solution_lines(), set()) == []
    # the check itself finds a planted leak: one line of a solution region copied into a notebook
    line = sorted(solution_lines())[0]
    planted = out / "notebooks" / "leaky.py"
    planted.write_text(f"x = 1\n{line}\n")
    try:
        assert any("solution code" in f for f in leaks(out, solution_lines(), set()))
    finally:
        planted.unlink()


def test_student_release_passes_its_own_tests_and_checks_work(student_release):
    out = student_release
    env = {**os.environ, "PYTHONPATH": str(out)}
    code = (f"import mqa_edu, mqa_edu.checks.cell as c\nassert mqa_edu.__file__.startswith({str(out)!r})\n"
            "right = lambda nl, d, h, kv, hd, b: 2 * nl * kv * hd * b\n"
            "wrong = lambda nl, d, h, kv, hd, b: 2 * nl * h * hd * b\n"
            "print(c.check('ex01.q1', right).passed, c.check('ex01.q1', wrong).passed)")
    res = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("True False")
    assert "only the n_kv_heads KV heads are cached" in res.stdout  # the known-mistake hint, from the public form
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_heads.py",
                          "tests/test_sizing.py", "tests/test_notebooks.py", "-k", "heads or sizing or exercises"],
                         cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:]
    res = subprocess.run([sys.executable, "-m", "mqa_edu.grading.cli", "exercises", "--out", "g", "--no-progress"],
                         cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "grade from the instructor's full copy" in res.stderr


def test_every_test_that_needs_a_private_file_is_kept_private():
    """A test that imports a private exercise definition at module level would fail in the student release: it must
    be listed (a test that imports one inside a function skips where it is missing, as test_notebooks.py does)."""
    from mqa_edu.authoring.release import PRIVATE_TESTS

    for path in sorted((ROOT / "tests").glob("test_*.py")):
        rel = f"tests/{path.name}"
        top = [line for line in path.read_text().splitlines() if line.startswith(("from ", "import "))]
        if any("mqa_edu.grading.exercises" in line for line in top):
            assert rel in PRIVATE_TESTS, f"{rel} imports a private definition but is not in release.PRIVATE_TESTS"


def test_one_parser_reads_the_solution_regions():
    """make_exercise and release read regions with markers.py: what one strips, the other finds as solution code."""
    from mqa_edu.authoring import markers
    from mqa_edu.authoring.make_exercise import strip_solutions

    source = "def f(x):\n    # BEGIN SOLUTION: square it\n    return x * x  # the answer\n    # END SOLUTION\ny = 1"
    kinds = [line.kind for line in markers.lines(source)]
    assert kinds == ["code", "begin", "solution", "end", "code"]
    assert strip_solutions(source) == "def f(x):\n    raise NotImplementedError('square it')\ny = 1"
    for bad, why in [("# END SOLUTION", "without BEGIN"), ("# BEGIN SOLUTION\n# BEGIN SOLUTION", "inside another"),
                     ("# BEGIN SOLUTION: x", "never closed")]:
        with pytest.raises(ValueError, match=why):
            markers.lines(bad)
