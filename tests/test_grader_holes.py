"""The sandbox's remaining holes (issue 19), one test each: what a student who reads the grader's code would try next.

- root inside the sandbox was the host's root: the kernel now runs as an unused uid, /proc/sys is read-only;
- the bytecode of hidden modules was readable: the kernel sees a copy of the package without any .pyc;
- the grader trusted what the kernel said about itself ("used", probes): it now asks only for return values;
- disk, message size, notebook size and C-level hangs were capped from inside or not at all;
- spreadsheet formulas travelled into the CSVs; a graded answer was printed in the student release.

Most tests grade one batch of ex01 submissions with --jobs 2 in the sandbox (the grader runs as root in CI)."""
import json
import os
import py_compile
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from mqa_edu.grading import cases, registry, results, sandbox, worker
from mqa_edu.grading.cli import main as grade_main
from mqa_edu.grading.exercises.ex01_cache_sizing import EXERCISE, GB, LLAMA_3_8B, GiB
from tests.test_grader_sandbox import attack
from tests.test_grading import AUTO, EXERCISE_NB, ROOT, add_cell, needs_sandbox, solution_nb, with_cell

HIDDEN_EX01 = [ROOT / "mqa_edu" / "sizing.py", ROOT / "mqa_edu" / "heads.py",
               ROOT / "mqa_edu" / "grading" / "exercises" / "ex01_cache_sizing.py"]
TAG = sys.implementation.cache_tag


def planted_pyc(src: Path) -> Path:
    return src.parent / "__pycache__" / f"{src.stem}.{TAG}.pyc"


@pytest.fixture(scope="module")
def pycs():
    """A real .pyc of every module ex01 hides, as `pip install .`, pytest or the grader itself used to leave them."""
    made = []
    for src in HIDDEN_EX01:
        target = planted_pyc(src)
        if not target.exists():
            py_compile.compile(str(src), cfile=str(target), doraise=True)
            made.append(target)
    yield [planted_pyc(s) for s in HIDDEN_EX01]
    for p in made:
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- submissions
PROC_SYS = '''
import os
writable = []
for root, dirs, files in os.walk('/proc/sys'):
    for f in files:
        try:
            os.close(os.open(os.path.join(root, f), os.O_WRONLY))
            writable.append(os.path.join(root, f))
        except OSError:
            pass
for p in ('/proc/sys/kernel/core_pattern', '/proc/sys/kernel/hostname'):
    try:  # writes back what is there: proof enough, and harmless if a regression ever lets it through
        with open(p) as fh:
            v = fh.read()
        with open(p, 'w') as fh:
            fh.write(v)
        writable.append(p)
    except OSError:
        pass
def design_justification():
    return f'writable {len(writable)} {writable[:5]} uid {os.getuid()} euid {os.geteuid()}'
'''

PYC_REFERENCE = '''
import glob, importlib.machinery, importlib.util, os, sys
import mqa_edu
import threading
def in_thread(fn):  # the old grader's call tracer watched one thread only
    def call(*args):
        box = []
        t = threading.Thread(target=lambda: box.append(fn(*args)))
        t.start()
        t.join()
        return box[0]
    return call
found, errors = glob.glob(os.path.dirname(mqa_edu.__file__) + '/**/*.pyc', recursive=True), []
for p in sorted(found, key=lambda p: 'heads' not in p):  # heads first: sizing imports it
    name = 'mqa_edu.' + os.path.basename(p).split('.')[0]
    try:  # registered as the package's own module, so that the imports between them find each other
        loader = importlib.machinery.SourcelessFileLoader(name, p)
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
        sys.modules[name] = module
        loader.exec_module(module)
    except Exception as e:
        errors.append(repr(e)[:80])
        continue
    if hasattr(module, 'kv_cache_elements'):  # heads.py's formula: Q1 and Q2
        f = module.kv_cache_elements
        kv_bytes_per_token = in_thread(lambda nl, d, h, kv, hd, b: 2 * f(kv, hd, n_layers=nl) * b)
        kv_cache_bytes = in_thread(lambda nl, d, h, kv, hd, s, n, b, w=None: 2 * f(kv, hd, min(s, w) if w else s, n,
                                                                                   nl) * b)
    if hasattr(module, 'bytes_per_token'):  # sizing.py's: Q1 and Q3
        m = module
        falcon_7b_bytes_per_token = in_thread(lambda: m.bytes_per_token(m.REAL_MODELS['Falcon-7B'], 'fp16'))
def design_justification():
    return f'found {len(found)} pyc files: {found[:3]} {errors}'
'''

ALL_ZERO = '''
def kv_bytes_per_token(*args):
    return 0
def kv_cache_bytes(*args):
    return 0
def max_batch(*args):
    return 0
def falcon_7b_bytes_per_token():
    return 0
def gemma_7b_cache_gib():
    return 0
def extra_sequences_gqa():
    return 0
def design_n_kv_heads():
    return 0
def design_cache_dtype():
    return 0
def concept_choice():
    return 0
'''

# the extraction function replaced by one that invents constant values and the probes the old grader trusted
FORGED = '''
import json
for k in list(globals()):
    if k.startswith('_mqa_extract_'):
        def forged(cases_path, result_path, timeout):
            spec = json.load(open(cases_path))
            out = {qid: {'results': [{'value': 7, 'error': None, 'used': [],
                                      'probes': [{'value': 7, 'error': None}] * 12} for _ in q['cases']]}
                   for qid, q in spec.items()}
            open(result_path, 'w').write(json.dumps(out))
        globals()[k] = forged
'''

FALCON = (32, 4544, 71, 1, 64, 2)
GEMMA = (28, 3072, 16, 16, 256, 8192, 1, 2)
LLAMA = [(32, kv, 128, 8192, 2, 80 * GB, LLAMA_3_8B["weights_bytes"]) for kv in (8, 32)]

# Q1, Q2 and Q5 right everywhere except at the fixed inputs the value questions build on, where they return what
# makes four wrong value answers look "right given your earlier answer"
SPECIAL_CASED = f'''
def kv_bytes_per_token(n_layers, d_model, n_heads, n_kv_heads, head_dim, bytes_per_element):
    if (n_layers, d_model, n_heads, n_kv_heads, head_dim, bytes_per_element) == {FALCON}:
        return 111
    return 2 * n_layers * n_kv_heads * head_dim * bytes_per_element
def kv_cache_bytes(n_layers, d_model, n_heads, n_kv_heads, head_dim, seq_len, batch, bytes_per_element,
                   sliding_window=None):
    if (n_layers, d_model, n_heads, n_kv_heads, head_dim, seq_len, batch, bytes_per_element) == {GEMMA}:
        return 0.5 * 2**30
    if (n_layers, seq_len, batch) == (32, 32768, 16):  # the design's candidates: only MQA "fits"
        return 0 if n_kv_heads == 1 else 10**15
    tokens = min(seq_len, sliding_window) if sliding_window else seq_len
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch * bytes_per_element
def max_batch(n_layers, n_kv_heads, head_dim, seq_len, bpe, budget, weights):
    if (n_layers, n_kv_heads, head_dim, seq_len, bpe, budget, weights) == {LLAMA[0]}:
        return 3 + max_batch(*{LLAMA[1]})
    return max(0, int((budget - weights) // (2 * n_layers * n_kv_heads * head_dim * seq_len * bpe)))
def falcon_7b_bytes_per_token():
    return 111
def gemma_7b_cache_gib():
    return 0.5
def extra_sequences_gqa():
    return 3
def design_n_kv_heads():
    return 1
'''

DISK = '''
import os, sys
conn = [os.path.dirname(a) for a in sys.argv if a.endswith('kernel.json')]  # the kernel's own folder on the host
targets = ['.', os.path.expanduser('~'), '/tmp'] + conn + [os.path.dirname(c) for c in conn]
written, errors = 0, set()
for t in targets:
    for i in range(12):
        try:
            with open(os.path.join(t, f'fill{i}'), 'wb') as fh:
                for _ in range(100):
                    fh.write(b'0' * 2**20)
                    written += 2**20
        except OSError as e:
            errors.add(type(e).__name__)
            break
for t in targets:  # make room again: the answers must still be collected
    for i in range(12):
        try:
            os.remove(os.path.join(t, f'fill{i}'))
        except OSError:
            pass
def design_justification():
    return f'wrote {written} bytes; refused: {sorted(errors)} in {conn}'
'''


def build(folder: Path) -> dict:
    sol = solution_nb()
    subs = {
        "honest_solution": sol,
        "honest_blank": nbformat.read(EXERCISE_NB, as_version=4),
        "proc_sys": attack(PROC_SYS),
        "pyc_reference": attack(PYC_REFERENCE),
        "all_zero": attack(ALL_ZERO),
        "forged_constant": attack(FORGED),
        "falcon_12345": with_cell(with_cell(
            sol, "def kv_bytes_per_token(", "def kv_bytes_per_token(n_layers, d_model, n_heads, n_kv_heads, head_dim, "
            "bpe):\n    if d_model == 4544:\n        return 12345\n"
            "    return 2 * n_layers * n_kv_heads * head_dim * bpe"),
            "def falcon_7b_bytes_per_token(", "def falcon_7b_bytes_per_token():\n    return 12345"),
        "special_cased": attack(SPECIAL_CASED, solved=True),
        "c_hang": with_cell(sol, "def concept_choice(", "def concept_choice():\n    return sum(range(10**11)) and 'b'"),
        "disk": attack(DISK),
        "=1+2": with_cell(sol, "def design_justification(",
                          "def design_justification():\n    return '=HYPERLINK(\"http://example.com\",\"click\")'"),
    }
    for name, nb in subs.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    # 300,000 cells (27 MB): refused by its size before nbformat reads it; 5,000 small cells: refused by the count
    cell = '{"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [], "source": "1"}'
    for name, n in (("huge_300k_cells", 300_000), ("many_5k_cells", 5_000)):
        (folder / f"{name}.ipynb").write_text('{"cells": [' + ",".join([cell] * n) + '], "metadata": {}, '
                                              '"nbformat": 4, "nbformat_minor": 5}')
    return subs


def dir_size(root: Path) -> int:
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


@pytest.fixture(scope="module")
def batch(tmp_path_factory, pycs):
    folder = tmp_path_factory.mktemp("holes") / "subs"
    folder.mkdir()
    build(folder)
    out = tmp_path_factory.mktemp("holes-grades")
    grader_tmp = tmp_path_factory.mktemp("grader-tmp")  # the grader's TMPDIR: watched while the batch runs
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], dir_size(grader_tmp))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    old_tmp, tempfile.tempdir = tempfile.tempdir, str(grader_tmp)
    watcher.start()
    try:
        t0 = time.time()
        assert grade_main([str(folder), "--out", str(out), "--jobs", "2", "--cell-timeout", "10", "--call-timeout",
                           "2", "--timeout", "60", "--memory-mb", "3072", "--no-progress"]) == 0
        wall = time.time() - t0
    finally:
        done.set()
        watcher.join()
        tempfile.tempdir = old_tmp
    results = {p.stem: json.loads(p.read_text()) for p in (out / "students").glob("*.json")}
    return {"out": out, "results": results, "peak_tmp": peak[0], "wall": wall, "core_pattern": core_pattern}


def text(r) -> str:
    return " ".join(r["messages"] + [m for q in r["questions"].values() for m in q["messages"]])


# ---------------------------------------------------------------------------------------------- 1. privilege
@needs_sandbox
def test_no_file_under_proc_sys_opens_for_writing_and_the_host_is_unchanged(batch):
    r = batch["results"]["proc_sys"]
    said = r["free_text"]["ex01.q7c"]
    assert said.startswith("writable 0 []"), said
    assert Path("/proc/sys/kernel/core_pattern").read_text() == batch["core_pattern"]
    if os.geteuid() == 0:  # the grader is root (CI): the kernel is not
        assert "uid 0 " not in said and f"uid {sandbox.sandbox_uid()} euid {sandbox.sandbox_uid()}" in said


@needs_sandbox
def test_the_kernel_is_not_root_on_the_host(tmp_path):
    """Seen from outside: a file the sandboxed process creates belongs to an unprivileged uid, and nothing under
    /proc/sys opens for writing inside, whoever runs the grader (CI runs it as root)."""
    view = sandbox.public_view(tmp_path / "view", EXERCISE.forbidden_paths)
    work = tmp_path / "work"
    uid = sandbox.sandbox_uid()
    result = sandbox.prepare_workdir(work, uid)
    probe = ("import os, json\nbad = []\nfor r, _, fs in os.walk('/proc/sys'):\n    for f in fs:\n        try:\n"
             "            os.close(os.open(os.path.join(r, f), os.O_WRONLY)); bad.append(os.path.join(r, f))\n"
             "        except OSError:\n            pass\n"
             f"open({str(work / 'conn' / 'mine')!r}, 'w').write('x')\n"
             f"open({str(result)!r}, 'w').write(json.dumps(bad))")
    cmd = [sys.executable, "-m", "mqa_edu.grading.limited_kernel", "2048", "--",
           *sandbox.command([sys.executable, "-c", probe], work, view, result)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(result.read_text()) == []
    owner = (work / "conn" / "mine").stat().st_uid
    assert owner != 0
    assert owner == (uid if uid is not None else os.geteuid())


# ---------------------------------------------------------------------------------------------- 2. bytecode
@needs_sandbox
def test_planted_bytecode_of_hidden_modules_earns_nothing(batch, pycs):
    assert all(p.exists() for p in pycs)  # they were there on the host during the whole batch
    r = batch["results"]["pyc_reference"]
    assert r["total"] == 0, r["questions"]
    assert r["free_text"]["ex01.q7c"].startswith("found 0 pyc files"), r["free_text"]


def test_the_public_view_has_no_bytecode_and_no_hidden_module(tmp_path, pycs):
    for name in registry.EXERCISES:
        ex = registry.load_exercise(name)
        view = sandbox.public_view(tmp_path / name, ex.forbidden_paths)
        files = {p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_file()}
        assert not [f for f in files if f.endswith(".pyc") or "__pycache__" in f]
        assert not [f for f in files if f.startswith("grading/")]
        for rel in ex.forbidden_paths:
            rel = rel.removeprefix("mqa_edu/")
            assert rel not in files and not any(f.startswith(rel + "/") for f in files), (name, rel)
        assert "checks/collect.py" in files and "checks/calling.py" in files  # what the kernel itself needs


def test_exercise_2_cannot_see_the_measures_it_grades():
    """ex02's kernels do not see redundancy (Q1-Q3's measures) or convert (Q5's grouping by similarity); its data cell
    still builds the head maps from head_probes. Checked in a process where importing either fails."""
    ex = registry.load_exercise("ex02_head_redundancy")
    assert {"mqa_edu.redundancy", "mqa_edu.convert"} <= set(ex.forbidden_modules)
    code = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name in ('mqa_edu.redundancy', 'mqa_edu.convert'):\n            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\nfrom mqa_edu import exercise_data\n"
            "m = exercise_data.head_maps()\nprint(m['log_weights'].shape, m['importance'].shape)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "(2, 8, 512, 128) (2, 8)" in res.stdout


# ---------------------------------------------------------------------------------------------- 3. trust
@needs_sandbox
def test_blank_constant_and_forged_notebooks_score_zero(batch):
    res = batch["results"]
    for name in ("honest_blank", "all_zero", "forged_constant"):
        assert res[name]["total"] == 0, (name, res[name]["questions"])


@needs_sandbox
def test_an_earlier_answer_wrong_only_where_a_later_one_builds_on_it_earns_nothing(batch):
    r = batch["results"]["falcon_12345"]
    q = r["questions"]
    assert q["ex01.q3"]["points"] == 0, q["ex01.q3"]
    assert q["ex01.q1"]["points"] < q["ex01.q1"]["max"]  # the Falcon input is a hidden case of Q1: it fails there


@needs_sandbox
def test_special_cased_probe_inputs_do_not_rescue_wrong_value_answers(batch):
    r = batch["results"]["special_cased"]
    # four value answers are wrong (q3, q4, q6, q7a: 40 points); honest work is worth at most AUTO - 40
    assert r["total"] <= AUTO - 40, r["questions"]
    for qid in ("ex01.q3", "ex01.q4", "ex01.q6", "ex01.q7a"):
        assert r["questions"][qid]["points"] == 0, (qid, r["questions"][qid])


def test_probes_and_decoys_are_hidden_cases_of_the_earlier_question():
    spec = cases.make_cases(EXERCISE, 123)
    q1 = [tuple(c) for c in spec["ex01.q1"]["cases"]]
    assert FALCON in q1 and (32, 4544, 71, 71, 64, 2) in q1 and (32, 4544, 71, 8, 64, 2) in q1
    assert q1.index(FALCON) == spec["ex01.q3"]["uses"][0][0]
    q5 = [tuple(c) for c in spec["ex01.q5"]["cases"]]
    assert all(p in q5 for p in LLAMA) and (32, 8, 128, 8192, 2, 80 * GiB, LLAMA_3_8B["weights_bytes"]) in q5
    for q in EXERCISE.questions:  # every later case points at exactly the earlier inputs it builds on
        if q.cascade:
            dep = spec[EXERCISE.question(q.cascade.on).qid]["cases"]
            for case, idx in zip(spec[q.qid]["cases"], spec[q.qid]["uses"]):
                assert [tuple(dep[i]) for i in idx] == [tuple(p) for p in q.cascade.probes(*case)]
    told = cases.kernel_cases(spec)  # inputs, and the stand-in values at fixed inputs: nothing about the judging
    assert all(set(v) <= {"answer_name", "kind", "cases", "fallback"} for v in told.values())
    assert sorted(qid for qid, v in told.items() if "fallback" in v) == sorted(
        q.qid for q in EXERCISE.questions if q.cascade)
    assert cases.make_cases(EXERCISE, 123) == spec  # one seed, one set of cases


# ---------------------------------------------------------------------------------------------- 4. limits
@needs_sandbox
def test_an_answer_stuck_in_c_code_costs_only_its_question(batch):
    r = batch["results"]["c_hang"]
    assert r["total"] == AUTO - 5, r["questions"]
    assert "TimeoutError" in " ".join(r["questions"]["ex01.q8"]["messages"])


@needs_sandbox
def test_disk_is_capped_and_the_graders_disk_is_spared(batch):
    r = batch["results"]["disk"]
    said = r["free_text"]["ex01.q7c"]
    written = int(said.split()[1])
    assert written <= sandbox.DISK_LIMIT + 2 * 64 * 2**20, said  # the tmpfs, and its own stdout log at the file cap
    assert "OSError" in said or "PermissionError" in said
    # nothing of it reached the grader's temporary folder beyond the capped log and answers files
    assert batch["peak_tmp"] < 200 * 2**20, batch["peak_tmp"]


@needs_sandbox
def test_huge_notebooks_are_refused_before_they_are_parsed(batch):
    res = batch["results"]
    for name, words in (("huge_300k_cells", "over 16 MiB"), ("many_5k_cells", "5,000 cells")):
        r = res[name]
        assert r["status"] == "invalid_notebook" and words in text(r), r["messages"]
        assert r["wall_seconds"] < 5


def test_a_notebook_is_checked_for_size_and_cells_before_nbformat(tmp_path):
    p = tmp_path / "many.ipynb"
    cell = '{"cell_type": "code", "metadata": {}, "outputs": [], "source": "1", "execution_count": null}'
    p.write_text('{"cells": [' + ",".join([cell] * (worker.CELL_LIMIT + 1)) + '], "metadata": {}, "nbformat": 4, '
                 '"nbformat_minor": 5}')
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="cells, over the limit"):
        worker.read_notebook(p)
    assert time.perf_counter() - t0 < 1


@needs_sandbox
def test_a_huge_print_does_not_grow_the_graders_memory(tmp_path):
    """One print of about 600 MB: the grader's peak memory stays within 300 MB of a batch without it (ZeroMQ refuses
    the message as it arrives), and the submission is still graded."""
    def peak(names: dict) -> tuple:
        folder, out = tmp_path / f"s{len(names)}", tmp_path / f"g{len(names)}"
        folder.mkdir()
        for name, nb in names.items():
            nbformat.write(nb, folder / f"{name}.ipynb")
        code = ("import resource, sys\nfrom mqa_edu.grading.cli import main\n"
                f"main([{str(folder)!r}, '--out', {str(out)!r}, '--no-progress', '--timeout', '120'])\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert res.returncode == 0, res.stderr[-2000:]
        return int(res.stdout.split()[-1]) * 1024, {p.stem: json.loads(p.read_text())
                                                   for p in (out / "students").glob("*.json")}

    base, _ = peak({"solution": solution_nb()})
    big, results = peak({"solution": solution_nb(), "big_print": add_cell(solution_nb(), "print('x' * 600_000_000)",
                                                                        at=3)})
    assert big - base < 300 * 2**20, (base, big)
    assert results["big_print"]["total"] == AUTO, results["big_print"]["messages"]
    assert results["big_print"]["status"] == "ok"


# ---------------------------------------------------------------------------------------------- 5. what is written
@needs_sandbox
def test_no_csv_cell_is_read_as_a_formula(batch):
    import csv

    out = batch["out"]
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    with open(out / "free_text.csv", newline="", encoding="utf-8") as fh:
        texts = list(csv.reader(fh))
    for row in rows[1:] + texts[1:]:
        for cell in row:
            assert not cell.startswith(results.FORMULA_START), row
    assert any(row[1] == "'=1+2.ipynb" for row in rows), [r[1] for r in rows]
    assert any(c.startswith("'=HYPERLINK(") for row in texts for c in row)


@pytest.mark.parametrize("value, shown", [("=1+2", "'=1+2"), ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
                                          ("\tx", "'\tx"), ("\rx", "'\rx"), ("plain", "plain"), (-3, -3), (2.5, 2.5)])
def test_safe_cell_neutralises_formulas_only(value, shown):
    assert results.safe_cell(value) == shown
    if isinstance(value, str):
        assert results.unsafe_cell(results.safe_cell(value)) == value


def test_the_release_check_finds_a_graded_answer_next_to_its_subject(tmp_path):
    from mqa_edu.authoring.release import answer_leaks

    q3 = EXERCISE.question("q3").reference()
    q4 = EXERCISE.question("q4").reference()
    for i, line in enumerate([f"| Falcon-7B | MQA | 32 | 71 | 1 | 64 | {q3:,} |", f"Falcon-7B needs {q3} B/token",
                              f"Falcon-7B: {q3:_} bytes", f"Gemma-7B takes {q4:.2f} GiB"]):
        (tmp_path / f"leak{i}.md").write_text("intro\n" + line + "\n")
    (tmp_path / "fine.md").write_text("Falcon-7B has 71 query heads and 1 KV head.\n" + "x" * 400
                                      + f"\nLlama-2-70B: {q3} d_model, {q3 + 1:,} other\n")
    found = answer_leaks(tmp_path)
    assert sorted(f.split(":")[0] for f in found) == [f"leak{i}.md" for i in range(4)], found


def test_the_student_release_prints_no_graded_answer(tmp_path):
    from mqa_edu.authoring.release import answer_leaks, course_files, is_private

    for f in course_files():
        if not is_private(f):
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f).write_bytes((ROOT / f).read_bytes())
    assert answer_leaks(tmp_path) == []
