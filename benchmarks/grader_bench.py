"""Grading cost: mqa-grade per submission (in its bubblewrap sandbox, and with --no-sandbox) vs simply executing the
same notebooks with nbclient, and wall time for a batch graded with --jobs 2 in the sandbox.

    python benchmarks/grader_bench.py            # 10 submissions for the ratio, 100 for the batch
    python benchmarks/grader_bench.py --quick    # 4 and 10

Prints a table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from mqa_edu.grading.cli import main as grade

ROOT = Path(__file__).resolve().parents[1]

SOLUTION = ROOT / "solutions" / "ex01_cache_sizing.ipynb"
EXERCISE = ROOT / "exercises" / "ex01_cache_sizing.ipynb"


def make_folder(tmp: Path, n: int) -> Path:
    folder = tmp / f"subs{n}"
    folder.mkdir()
    for i in range(n):  # a mix of solved and unsolved, as a real class would hand in
        shutil.copy(SOLUTION if i % 3 else EXERCISE, folder / f"student{i:03d}.ipynb")
    return folder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio-n", type=int, default=10)
    ap.add_argument("--batch-n", type=int, default=100)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.ratio_n, a.batch_n = 4, 10
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = make_folder(tmp, a.ratio_n)
        files = sorted(folder.glob("*.ipynb"))
        t0 = time.perf_counter()
        for f in files:  # the baseline: execute each notebook in a fresh kernel, nothing else
            nb = nbformat.read(f, as_version=4)
            NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
        plain = (time.perf_counter() - t0) / len(files)
        t0 = time.perf_counter()
        grade([str(folder), "--out", str(tmp / "g1"), "--jobs", "1", "--no-progress"])
        graded = (time.perf_counter() - t0) / len(files)
        t0 = time.perf_counter()
        grade([str(folder), "--out", str(tmp / "g0"), "--jobs", "1", "--no-progress", "--no-sandbox"])
        unsandboxed = (time.perf_counter() - t0) / len(files)
        batch = make_folder(tmp, a.batch_n)
        t0 = time.perf_counter()
        grade([str(batch), "--out", str(tmp / "g2"), "--jobs", "2", "--no-progress"])
        wall = time.perf_counter() - t0
    print(f"{'measure':>44} {'value':>10}")
    print(f"{'execute with nbclient, s per notebook':>44} {plain:>10.2f}")
    print(f"{'mqa-grade --jobs 1, s per submission':>44} {graded:>10.2f}")
    print(f"{'same with --no-sandbox, s per submission':>44} {unsandboxed:>10.2f}")
    print(f"{'ratio grade / execute':>44} {graded / plain:>10.2f}")
    print(f"{'sandbox cost, s per submission':>44} {graded - unsandboxed:>10.2f}")
    print(f"{f'{a.batch_n} submissions, --jobs 2, wall s':>44} {wall:>10.1f}")
    print(json.dumps({"benchmark": "grader", "execute_s_per_notebook": round(plain, 3),
                      "grade_s_per_submission": round(graded, 3), "ratio": round(graded / plain, 3),
                      "no_sandbox_s_per_submission": round(unsandboxed, 3),
                      "sandbox_cost_s": round(graded - unsandboxed, 3),
                      "batch_n": a.batch_n, "batch_jobs": 2, "batch_wall_s": round(wall, 1)}))


if __name__ == "__main__":
    main()
