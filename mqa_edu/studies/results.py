"""Where the studies' results live, and one reader for them (a missing file names the command that makes it)."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"  # small results ship with the package


def read_results(path, file_name: str, fmt: str, study: str, label: str | None = None) -> dict:
    """A study's JSON: ``path`` is the file or its folder (default: the results that ship with the package); the
    file must carry ``format`` ``fmt``. A missing file names the command that makes it (``python -m
    mqa_edu.studies <study>``); ``label`` names the study in messages (default: ``study``)."""
    label = label or study
    path = RESULTS_DIR if path is None else Path(path)
    if path.is_dir():
        path = path / file_name
    if not path.exists():
        raise FileNotFoundError(f"no {label} study results at {path}: run `python -m mqa_edu.studies {study}` "
                                "(or --quick) to make them")
    results = json.loads(path.read_text())
    if results.get("format") != fmt:
        raise ValueError(f"{path} is not a {label} study result (format {results.get('format')!r})")
    results["folder"] = str(path.parent)
    return results
