"""mqa-grade against submissions written to attack it, graded in one batch with --jobs 2 inside the sandbox.

For every attack: no submission scores above its honest work, no submission changes another's row, no process it
starts survives the batch, no file outside its private folders changes, and the batch finishes with one row per
submitted file."""
import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mqa_edu.grading.cli import main as grade_main
from tests.test_grading import AUTO, EXERCISE_NB, ROOT, add_cell, needs_sandbox, solution_nb, with_cell

pytestmark = needs_sandbox

SECRET = "grader-secret-" + os.urandom(6).hex()  # in the grader's environment during the batch
MARKER = "7e5.123"  # `sleep 7e5.123`: a process a submission tried to leave behind
REFERENCE = ROOT / "mqa_edu" / "grading" / "exercises" / "ex01_cache_sizing.py"

# Answers computed from the course's reference module, by whatever route reached it: if any route works, the blank
# exercise that runs this scores points it did not earn.
USE_REFERENCE = '''
def _define_from(source):
    ns = {}
    exec(compile(source, "ref", "exec"), ns)
    g = globals()
    g["kv_bytes_per_token"] = ns["_bpt"]
    g["kv_cache_bytes"] = ns["_cache"]
    g["max_batch"] = ns["_max_batch"]
    q = {x.qid: x for x in ns["QUESTIONS"]}
    for qid, name in (("ex01.q3", "falcon_7b_bytes_per_token"), ("ex01.q4", "gemma_7b_cache_gib"),
                      ("ex01.q6", "extra_sequences_gqa"), ("ex01.q7a", "design_n_kv_heads"),
                      ("ex01.q7b", "design_cache_dtype"), ("ex01.q8", "concept_choice")):
        g[name] = q[qid].reference
'''


def attack(body: str, solved: bool = False):
    """The blank exercise (honest score 0) or the solution (honest AUTO) with an attacking cell appended."""
    nb = solution_nb() if solved else nbformat.read(EXERCISE_NB, as_version=4)
    return add_cell(nb, body, at=len(nb.cells))


def build(folder: Path, out: Path):
    subs = {
        "honest_solution": solution_nb(),
        "honest_blank": nbformat.read(EXERCISE_NB, as_version=4),
        # --- escaping the audit hook to reach the reference answers
        "ref_subprocess": attack(USE_REFERENCE + f"import subprocess\n_define_from(subprocess.run(['cat', "
                                 f"{str(REFERENCE)!r}], capture_output=True, text=True).stdout)"),
        "ref_second_python": attack(USE_REFERENCE + "import subprocess, sys\n_define_from(subprocess.run([sys."
                                    f"executable, '-c', 'print(open({str(REFERENCE)!r}).read())'], capture_output="
                                    "True, text=True).stdout)"),
        "ref_ctypes": attack(USE_REFERENCE + "import ctypes, os\nlibc = ctypes.CDLL(None)\n"
                             f"fd = libc.open({str(REFERENCE).encode()!r}, os.O_RDONLY)\n"
                             "buf = ctypes.create_string_buffer(1 << 20)\nn = libc.read(fd, buf, 1 << 20)\n"
                             "_define_from(buf.raw[:max(n, 0)].decode())"),
        "ref_dir_fd": attack(USE_REFERENCE + f"import os\nd = os.open({str(REFERENCE.parent)!r}, os.O_RDONLY)\n"
                             f"fd = os.open({REFERENCE.name!r}, os.O_RDONLY, dir_fd=d)\n"
                             "_define_from(os.read(fd, 1 << 20).decode())"),
        "ref_gc_hook": attack(USE_REFERENCE + "import gc, sys\nfor o in gc.get_objects():\n"
                              "    if callable(o) and getattr(o, '__name__', '') == 'hook' and o.__closure__:\n"
                              "        for c in o.__closure__:\n"
                              "            if isinstance(c.cell_contents, tuple):\n"
                              "                c.cell_contents = ()\n"
                              "import importlib\nimport mqa_edu.grading.exercises.ex01_cache_sizing as m\n"
                              "_define_from(open(m.__file__).read())"),
        "ref_thread_import": attack("import threading\nres = {}\n"
                                    "def grab():\n    from mqa_edu.sizing import ModelSpec, bytes_per_token\n"
                                    "    res['f'] = lambda nl, d, h, kv, hd, b: bytes_per_token("
                                    "ModelSpec('m', nl, d, h, kv, hd), b)\n"
                                    "t = threading.Thread(target=grab)\nt.start()\nt.join()\n"
                                    "kv_bytes_per_token = res['f']"),
        # --- reaching other submissions and kernels
        "read_classmate": attack(f"import glob, json\nfor p in glob.glob({str(folder)!r} + '/**/*.ipynb', "
                                 "recursive=True):\n    nb = json.load(open(p))\n"
                                 "    for c in nb['cells']:\n        if c['cell_type'] == 'code' and "
                                 "'BEGIN SOLUTION' not in ''.join(c['source']):\n"
                                 "            try:\n                exec(''.join(c['source']))\n"
                                 "            except Exception:\n                pass"),
        # (it kills only kernels and graders it can see: outside a sandbox that would be the whole batch)
        "sibling_kernels": attack("import glob, os, signal\nfound = glob.glob('/tmp/**/kernel.json', recursive=True)\n"
                                  "for d in os.listdir('/proc'):\n    try:\n"
                                  "        cmd = open(f'/proc/{d}/cmdline', 'rb').read()\n"
                                  "        if int(d) != os.getpid() and (b'ipykernel' in cmd "
                                  "or b'mqa_edu.grading' in cmd):\n            os.kill(int(d), signal.SIGKILL)\n"
                                  "    except Exception:\n        pass"),
        "kill_grader": attack("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", solved=True),
        "plant_startup": attack("import os\nfor d in (os.path.expanduser('~/.ipython/profile_default/startup'), "
                                "'/root/.ipython/profile_default/startup'):\n    try:\n"
                                "        os.makedirs(d, exist_ok=True)\n"
                                "        open(d + '/00-gift.py', 'w').write('concept_choice = lambda: \"b\"')\n"
                                "    except Exception:\n        pass"),
        "history": attack("import glob, sqlite3\ntexts = []\nfor p in glob.glob('/root/.ipython/**/history.sqlite',"
                          " recursive=True) + glob.glob('/home/**/history.sqlite', recursive=True):\n"
                          "    texts += [r[0] for r in sqlite3.connect(p).execute('select source from input')]\n"
                          "for t in texts:\n    try:\n        exec(t)\n    except Exception:\n        pass"),
        # --- forging results
        "forge_output": attack(f"import json, glob\nfor p in glob.glob({str(out)!r} + '/students/*.json'):\n"
                               "    try:\n        r = json.load(open(p)); r['total'] = 0; json.dump(r, open(p, 'w'))\n"
                               "    except Exception:\n        pass\n"
                               f"open({str(out)!r} + '/students/nobody.json', 'w').write('{{}}')"),
        "forge_later": attack(f"import subprocess\nsubprocess.Popen(['setsid', 'sh', '-c', 'sleep {MARKER}; "
                              f"echo forged > {out}/students/honest_blank.json'])"),
        "forge_extract_garbage": attack("for k in list(globals()):\n    if k.startswith('_mqa_extract_'):\n"
                                        "        def forged(cases, result, timeout):\n"
                                        "            open(result, 'w').write('{not json')\n"
                                        "        globals()[k] = forged"),
        "forge_extract_fifo": attack("import os\nfor k in list(globals()):\n    if k.startswith('_mqa_extract_'):\n"
                                     "        def forged(cases, result, timeout):\n            os.mkfifo(result)\n"
                                     "        globals()[k] = forged"),
        "forge_extract_structure": attack("import json\nfor k in list(globals()):\n"
                                          "    if k.startswith('_mqa_extract_'):\n"
                                          "        def forged(cases, result, timeout):\n"
                                          "            json.dump({'ex01.q1': {'results': 7}, 'ex01.q3': [1], "
                                          "'ex01.q8': {'results': [{'value': {'__opaque__': 1}}]}}, open(result, "
                                          "'w'))\n        globals()[k] = forged"),
        "refill_workdir": attack("import os, threading\ndef fill():\n    i = 0\n    while True:\n"
                                 "        i += 1\n        try:\n            open(f'junk{i}', 'w').write('x')\n"
                                 "        except Exception:\n            pass\n"
                                 "threading.Thread(target=fill, daemon=True).start()", solved=True),
        # --- reading and writing what is not its own
        "env_secret": with_cell(solution_nb(), "def design_justification(",
                                "import os\ndef design_justification():\n"
                                "    return 'ENV ' + repr(dict(os.environ)) + ' padding to twenty characters'"),
        "write_grader": attack("import glob\nfor p in glob.glob('/work/**/mqa_edu/grading/*.py', recursive=True) + "
                               f"[{str(ROOT / 'mqa_edu' / 'grading' / 'cli.py')!r}]:\n    try:\n"
                               "        open(p, 'a').write('\\n# pwned\\n')\n    except Exception:\n        pass"),
        "many_processes": attack(f"import subprocess\nprocs = []\ntry:\n    for i in range(400):\n"
                                 f"        procs.append(subprocess.Popen(['sleep', '{MARKER}']))\n"
                                 "except OSError:\n    pass\n"
                                 "def design_justification():\n"
                                 "    return f'started {len(procs)} processes before the limit stopped me'"),
        "network": attack("import socket\ns = socket.create_connection(('1.1.1.1', 80), timeout=2)"),
        # --- one bad answer costs one question
        "bad_values": with_cell(with_cell(with_cell(with_cell(
            solution_nb(), "def falcon_7b_bytes_per_token(", "def falcon_7b_bytes_per_token():\n    return 10**5000"),
            "def gemma_7b_cache_gib(", "class Evil:\n    def __repr__(self):\n        raise RuntimeError('no')\n"
            "def gemma_7b_cache_gib():\n    return Evil()"),
            "def max_batch(", "class Bad(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\n"
            "def max_batch(*args):\n    raise Bad()"),
            "def extra_sequences_gqa(", "class Loop:\n    shape = ()\n    def item(self):\n        return self\n"
            "def extra_sequences_gqa():\n    return Loop()"),
        "hanging_repr": with_cell(solution_nb(), "def concept_choice(",
                                  "class Slow:\n    def __repr__(self):\n        while True:\n            pass\n"
                                  "def concept_choice():\n    return Slow()"),
        "huge_text": with_cell(with_cell(solution_nb(), "def design_justification(",
                                         "def design_justification():\n    return 'y' * 20_000_000"),
                               "def concept_choice(", "def concept_choice():\n"
                               "    raise ValueError('x' * 2_000_000)"),
    }
    for name, nb in subs.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    v3 = nbformat.v3.convert.downgrade(copy.deepcopy(solution_nb()))
    (folder / "nbformat3.ipynb").write_text(json.dumps(v3))
    # file names and file types
    for odd in ("..ipynb", "...ipynb", "-rf.ipynb"):
        nbformat.write(solution_nb(), folder / odd)
    os.makedirs(folder / b"caf\xe9".decode("utf-8", "surrogateescape"), exist_ok=True)
    nbformat.write(solution_nb(), folder / (b"caf\xe9".decode("utf-8", "surrogateescape")) / "hw.ipynb")
    (folder / "folder.ipynb").mkdir()
    os.mkfifo(folder / "pipe.ipynb")
    os.symlink(folder / "missing.json", folder / "dangling.ipynb")
    outside = folder.parent / "outside.ipynb"
    nbformat.write(solution_nb(), outside)
    os.symlink(outside, folder / "link_outside.ipynb")
    os.symlink(folder / "honest_solution.ipynb", folder / "link_inside.ipynb")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "socket.ipynb"))
    sock.close()
    return len(subs) + 1 + 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1


def tree_digest(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts and "__pycache__" not in p.parts \
                and ".pytest_cache" not in p.parts and ".hypothesis" not in p.parts:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def survivors():
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if MARKER.encode() in (d / "cmdline").read_bytes():
                    found.append(d.name)
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacks") / "subs"
    folder.mkdir()
    out = tmp_path_factory.mktemp("attack-grades")
    n_expected = build(folder, out)
    (out / "students").mkdir(parents=True)
    (out / "students" / "planted_garbage.json").write_text("{broken")  # left over, malformed: must not crash
    before = tree_digest(ROOT)
    os.environ["MQA_TEST_SECRET"] = SECRET
    try:
        argv = [str(folder), "--out", str(out), "--jobs", "2", "--cell-timeout", "5", "--call-timeout", "2",
                "--timeout", "40", "--memory-mb", "3072", "--no-progress"]
        t0 = time.time()
        assert grade_main(argv) == 0
        wall = time.time() - t0
    finally:
        os.environ.pop("MQA_TEST_SECRET")
    time.sleep(1)
    results = {p.stem: json.loads(p.read_text()) for p in (out / "students").glob("*.json")
               if p.name != "planted_garbage.json"}
    return folder, out, results, n_expected, before, wall


def test_one_row_per_submitted_file(batch):
    folder, out, results, n_expected, _, _ = batch
    rows = (out / "grades.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(rows) == n_expected + 1, rows[0]
    assert all(r.split(",")[-2] == "bubblewrap" or "bubblewrap" in r for r in rows[1:])


def test_no_attack_scores_above_honest_work(batch):
    results = batch[2]
    assert results["honest_solution"]["total"] == AUTO
    for name in ("ref_subprocess", "ref_second_python", "ref_ctypes", "ref_dir_fd", "ref_gc_hook", "read_classmate",
                 "history", "plant_startup", "forge_output", "forge_later", "forge_extract_garbage",
                 "forge_extract_fifo", "forge_extract_structure", "sibling_kernels", "write_grader", "network"):
        assert results[name]["total"] == 0, (name, results[name]["questions"])
    assert results["ref_thread_import"]["questions"]["ex01.q1"]["points"] == 0
    assert results["honest_blank"]["total"] == 0  # no startup file or leftover process reached it


def test_attacks_change_no_other_row_and_no_file(batch):
    folder, out, results, _, before, _ = batch
    assert "nobody" not in results
    assert results["honest_solution"]["total"] == AUTO and results["honest_blank"]["status"] == "ok"
    assert tree_digest(ROOT) == before  # the grader's sources, the solutions, the reference: untouched
    for r in results.values():
        assert r["isolation"] == "bubblewrap"


def test_no_process_survives(batch):
    assert survivors() == []


def test_secrets_of_the_grader_stay_outside(batch):
    text = json.dumps(batch[2]["env_secret"])
    assert SECRET not in text and "MQA_TEST_SECRET" not in text
    assert batch[2]["env_secret"]["questions"]["ex01.q7c"]["messages"][0].startswith("collected for the instructor")


def test_a_killed_kernel_costs_only_its_own_row(batch):
    r = batch[2]["kill_grader"]
    assert r["status"] in ("kernel_died", "error", "ok") and r["total"] <= 100
    assert batch[2]["honest_solution"]["total"] == AUTO


def test_one_bad_answer_costs_one_question(batch):
    r = batch[2]["bad_values"]
    assert r["total"] == AUTO - 10 - 10 - 15 - 10, r["questions"]
    assert "digits" in " ".join(r["questions"]["ex01.q3"]["messages"])
    r = batch[2]["hanging_repr"]
    assert r["total"] == AUTO - 5 and "TimeoutError" in " ".join(r["questions"]["ex01.q8"]["messages"])


def test_caps_hold_for_everything_written(batch):
    out = batch[1]
    r = batch[2]["huge_text"]
    # q8 raises a 2 MB message (-5); the replaced design cell drops q7a and q7b (-15); the 20 MB text is capped
    assert r["total"] == AUTO - 5 - 15
    size = (out / "students" / "huge_text.json").stat().st_size
    assert size < 200_000, size
    assert len(r["free_text"]["ex01.q7c"]) < 25_000


def test_nbformat3_is_upgraded_and_graded(batch):
    assert batch[2]["nbformat3"]["total"] == AUTO


def test_file_names_become_safe_unique_ids(batch):
    folder, out, results, _, _, _ = batch
    ids = set(results)
    assert not any(i in (".", "..") or i.startswith(".") or "/" in i for i in ids)
    for p in (out / "gradescope").iterdir():
        assert p.parent == out / "gradescope" and (p / "results.json").is_file()
    assert sum(1 for i in ids if results[i]["total"] == AUTO) >= 6  # the odd names and the non-UTF-8 folder


@pytest.mark.parametrize("name, words", [
    ("folder", "folder named like a notebook"), ("pipe", "not a regular file"), ("socket", "not a regular file"),
    ("dangling", "leads nowhere"), ("link_outside", "outside the submissions folder")])
def test_special_files_get_a_row_with_a_reason(batch, name, words):
    r = batch[2][name]
    assert r["status"] == "not_a_notebook_file" and words in " ".join(r["messages"])


def test_a_link_inside_the_folder_gets_a_row_that_names_its_target(batch):
    """An unpacked zip keeps a link to a classmate's file as a link: by default it is not graded as their work."""
    r = batch[2]["link_inside"]
    assert r["status"] == "not_a_notebook_file" and r["total"] == 0
    assert "a link to honest_solution.ipynb" in " ".join(r["messages"]) and "--follow-links" in " ".join(r["messages"])


def test_follow_links_grades_a_link_as_its_target(batch, tmp_path):
    folder = batch[0]
    out = tmp_path / "g"
    assert grade_main([str(folder / "link_inside.ipynb"), str(folder / "honest_solution.ipynb"), "--out", str(out),
                       "--follow-links", "--no-progress"]) == 0
    r = json.loads((out / "students" / "link_inside.json").read_text())
    assert r["total"] == AUTO and "graded as the file it leads to, honest_solution.ipynb" in r["messages"][0]


def test_rerun_trusts_only_results_whose_hash_matches(batch, tmp_path):
    folder, out, results, _, _, _ = batch
    argv = [str(folder), "--out", str(out), "--no-progress"]
    student = out / "students" / "honest_blank.json"
    forged = json.loads(student.read_text())
    forged["total"] = 100
    forged["sha256"] = "0" * 64  # a result for another file than the one present now
    student.write_text(json.dumps(forged))
    assert grade_main(argv) == 0
    again = json.loads(student.read_text())
    assert again["total"] == 0 and again["sha256"] != "0" * 64


def cgroups_writable() -> bool:
    from mqa_edu.grading.limited_kernel import cgroup_dirs
    return all(os.access(os.path.dirname(path), os.W_OK) for path, _ in cgroup_dirs("probe"))


def test_processes_are_capped_where_cgroups_allow(batch):
    text = batch[2]["many_processes"]["free_text"]["ex01.q7c"]
    started = int(text.split()[1])
    if cgroups_writable():
        from mqa_edu.grading.limited_kernel import MAX_PROCESSES
        assert started < MAX_PROCESSES, text
    else:  # an ordinary user without a delegated cgroup: bounded by the timeouts only (see the README)
        assert started <= 400
    assert survivors() == []


def test_the_sandbox_works_wherever_the_course_lives(tmp_path):
    """The sandbox mounts an empty /tmp and /home; a course (and its environment) under /tmp or /home must still be
    visible inside it. A clean clone under /tmp, graded by its own copy of the grader, gives the solution its points."""
    from mqa_edu.authoring.release import course_files
    clone = tmp_path / "course"
    for f in course_files():
        (clone / f).parent.mkdir(parents=True, exist_ok=True)
        (clone / f).write_bytes((ROOT / f).read_bytes())
    env = {**os.environ, "PYTHONPATH": str(clone)}
    res = subprocess.run([sys.executable, "-m", "mqa_edu.grading.cli", "solutions", "--out", str(tmp_path / "g"),
                          "--no-progress"], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads((tmp_path / "g" / "students" / "ex01_cache_sizing.json").read_text())
    assert r["total"] == AUTO and r["isolation"] == "bubblewrap", r["messages"]
