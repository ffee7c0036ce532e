"""Grade-run one submission: ``python -m mqa_edu.grading.worker SPEC.json``. Started by the grader in its own
process group, with a memory limit, so nothing a submission does can reach the grader itself.

Writes a JSON report: status, the raw values each answer returned on the hidden cases, and the cell errors.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _limit_memory(mb: int):
    try:
        import resource
    except ImportError:  # not on Windows
        return
    limit = mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _read_notebook(path: Path):
    import nbformat

    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError("the file is empty")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a notebook: the file is not valid notebook JSON ({type(exc).__name__}: "
                         f"{str(exc)[:120]})")
    if not isinstance(data, dict) or "cells" not in data:
        raise ValueError("not a notebook: the JSON has no 'cells'")
    nb = nbformat.reads(json.dumps(data), as_version=4)
    return nb


def run(spec: dict) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    from .harness import extract_source, setup_source

    report = {"status": "ok", "messages": [], "answers": {}, "cell_errors": []}
    try:
        nb = _read_notebook(Path(spec["notebook"]))
    except Exception as exc:  # malformed, truncated, not a notebook
        report.update(status="invalid_notebook", messages=[str(exc)])
        return report
    found = (nb.metadata.get("mqa_edu") or {}).get("exercise")
    if found and found != spec["exercise"]:
        report.update(status="wrong_exercise",
                      messages=[f"this notebook is exercise {found!r}, not {spec['exercise']!r}"])
        return report
    if not found:
        report["messages"].append("the notebook has no exercise metadata (was it created from scratch?); graded "
                                  "as " + spec["exercise"])
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    if not code:
        report.update(status="empty", messages=report["messages"] + ["the notebook has no code"])
        return report

    limit = int(spec["output_limit_bytes"])

    class CappedClient(NotebookClient):
        """Drops outputs past a byte budget, so a print loop cannot exhaust the worker's memory."""

        emitted = 0
        truncated = False

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            CappedClient.emitted += size
            if CappedClient.emitted > limit:
                CappedClient.truncated = True
                return None
            return super().output(outs, msg, display_id, cell_index)

    for c in code:
        c.outputs, c.execution_count = [], None
    cells = [nbformat.v4.new_code_cell(setup_source(spec["forbidden_modules"], spec["forbidden_paths"]))]
    cells += code
    cells.append(nbformat.v4.new_code_cell(extract_source(spec["cases_path"], spec["result_path"],
                                                         spec["call_timeout"])))
    run_nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                            "display_name": "Python 3"}})
    client = CappedClient(run_nb, timeout=spec["cell_timeout"], allow_errors=True, interrupt_on_timeout=True,
                          kernel_name="python3", resources={"metadata": {"path": spec["workdir"]}},
                          record_timing=False)
    start = time.perf_counter()
    try:
        client.execute(env={**os.environ, "MQA_EDU_GRADING": "1", "MPLBACKEND": "Agg"})
    except DeadKernelError:
        report.update(status="kernel_died")
        report["messages"].append("the kernel died (most often: the memory limit of "
                                  f"{spec['memory_mb']} MB was exceeded)")
    except Exception as exc:  # nbclient's own failure: still a row with a message
        report.update(status="error")
        report["messages"].append(f"running the notebook failed: {type(exc).__name__}: {str(exc)[:200]}")
    report["seconds"] = round(time.perf_counter() - start, 2)
    for i, c in enumerate(run_nb.cells[1:-1]):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                report["cell_errors"].append({"cell": i + 1, "error": f"{o.get('ename')}: {str(o.get('evalue'))[:200]}"})
    if CappedClient.truncated:
        report["messages"].append(f"output past {limit} bytes was discarded")
    result = Path(spec["result_path"])
    if result.exists():
        try:
            report["answers"] = json.loads(result.read_text())
        except json.JSONDecodeError:
            report["messages"].append("the answers could not be read back (the notebook interfered with them)")
    elif report["status"] == "ok":
        report["status"] = "error"
        report["messages"].append("the answers could not be collected (the last cell did not finish)")
    return report


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    _limit_memory(int(spec["memory_mb"]))
    report = run(spec)
    Path(spec["report_path"]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
