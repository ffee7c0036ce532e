"""The package's layout shows its layers (issue 20): an import graph of mqa_edu has no circle and no upward import,
and the top level holds only the taught modules, notebook support and the sub-packages."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mqa_edu"

# lowest first: a module may import its own layer or a lower one, never a higher one
LAYERS = {
    "core": 0,  # the taught modules (01-10) and what they stand on
    "support": 1,  # notebook support: figures and widgets
    "checks": 2,  # check cells, and the grader's code inside a kernel
    "grading": 3,  # the grader and the private exercise definitions
    "studies": 3,  # the research behind 08-10
    "authoring": 4,  # tools for the course's authors
}
SUPPORT = {"plots", "widgets"}
TAUGHT = {"heads", "numpy_attention", "attention", "rotary", "model", "kv_cache", "generate", "sizing", "convert",
          "latent", "decode_kernel", "redundancy", "head_probes", "data", "train", "pretrained", "uptrain",
          "exercise_data", "device", "bench", "stats"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "support" if len(parts) > 1 and parts[1] in SUPPORT else "core"


def imports(path: Path, unresolved: list | None = None) -> set[str]:
    """Every mqa_edu module ``path`` imports, at module level or inside a function; an import of a module that does
    not exist (a relative import left behind when a module moved) is added to ``unresolved``."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mqa_edu")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mqa_edu"):
                names = [f"{target}.{a.name}" for a in node.names]
                found |= {n for n in names if n in MODULES} or {target}
                if target not in MODULES and unresolved is not None:
                    unresolved.append(f"{here}: from {'.' * node.level}{node.module or ''} (line {node.lineno})")
    return {n for n in found if n != here and n in MODULES}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def upward_imports(graph) -> list:
    """(a, b) where module a imports b of a higher layer, or of the other layer at its height (grading, studies)."""
    return [(a, b) for a, targets in graph.items() for b in targets
            if LAYERS[layer(b)] > LAYERS[layer(a)] or {layer(a), layer(b)} == {"grading", "studies"}]


def circles(graph) -> list:
    """Every import circle found by a depth-first walk (a package and its own modules do not count)."""
    state, stack, found = {}, [], []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if m.startswith(n + ".") or n.startswith(m + "."):
                continue  # a package and its own modules
            if state.get(m) == "open":
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return found


def test_every_import_of_the_package_resolves():
    """A module moved into a sub-package must not keep a relative import that points at nothing (inside a function,
    it fails only when that function runs)."""
    unresolved = []
    for path in PACKAGE.rglob("*.py"):
        imports(path, unresolved)
    assert unresolved == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(GRAPH) == []


def test_the_import_graph_has_no_circle():
    assert circles(GRAPH) == []


def test_the_top_level_holds_taught_modules_support_and_sub_packages():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == TAUGHT | SUPPORT, sorted(top ^ (TAUGHT | SUPPORT))
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == {"checks", "grading", "studies", "authoring"}, packages
    readme = (PACKAGE.parent / "README.md").read_text()
    for name in sorted(TAUGHT | SUPPORT):
        assert f"`{name}.py`" in readme, f"README's module table has no row for {name}.py"
    for name in sorted(packages):
        assert f"`{name}/`" in readme, f"README's module table has no row for {name}/"


def test_the_checks_see_a_planted_circle_and_upward_import():
    """The two checks above can fail: the import of experiments.py and uptrain.py before issue 20, and a check that
    imported the grader, are found; relative imports are resolved."""
    planted = {**GRAPH, "mqa_edu.uptrain": GRAPH["mqa_edu.uptrain"] | {"mqa_edu.studies.tradeoff"},
               "mqa_edu.studies.tradeoff": GRAPH["mqa_edu.studies.tradeoff"] | {"mqa_edu.uptrain"}}
    assert [c for c in circles(planted) if "mqa_edu.uptrain" in c]
    assert ("mqa_edu.uptrain", "mqa_edu.studies.tradeoff") in upward_imports(planted)
    planted = {**GRAPH, "mqa_edu.checks.cell": GRAPH["mqa_edu.checks.cell"] | {"mqa_edu.grading.cli"}}
    assert upward_imports(planted) == [("mqa_edu.checks.cell", "mqa_edu.grading.cli")]
    assert "mqa_edu.heads" in GRAPH["mqa_edu.attention"]
    assert "mqa_edu.checks.judging" in GRAPH["mqa_edu.grading.scoring"]


def test_ruff_passes_with_the_configured_rules():
    """pyproject.toml's [tool.ruff]: pyflakes, pycodestyle, bugbear, isort, pyupgrade and a complexity limit."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
