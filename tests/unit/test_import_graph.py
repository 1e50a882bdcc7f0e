"""The package map's rule, checked over every import in jobs/ and plugins/ (docs/architecture.md):
packages import only packages below them, plugins never import a job's entry module, no cycles."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Lowest first: a package may import itself and the packages below it.
RANKS = {
    "core": 0,
    "config": 1,
    "runtime": 2,
    "tablestore": 3,
    "features": 4,
    "release": 5,
    "modeling": 6,
    "assistant": 7,
    "serving": 8,
}
ENTRY_RANK = 9  # jobs/<job>.py, jobs/__main__.py
NOT_ENTRY_MODULES = {"jobs.runnable"}  # the registry of jobs: a list, importable from everywhere


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``jobs`` module a file imports, wherever the import statement sits."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jobs":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "jobs"}
    return found


def rank(module: str) -> int:
    parts = module.split(".")
    if module in NOT_ENTRY_MODULES:
        return -1
    if len(parts) == 1:
        return -1  # the jobs package itself
    if parts[1] in RANKS:
        return RANKS[parts[1]]
    return ENTRY_RANK


def is_entry(module: str) -> bool:
    return rank(module) == ENTRY_RANK


def jobs_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in (ROOT / "jobs").rglob("*.py")}


def test_every_import_in_jobs_points_down():
    wrong = []
    for module, imported in sorted(jobs_graph().items()):
        for target in sorted(imported):
            if is_entry(module) and is_entry(target) and target != module:
                wrong.append(f"{module} imports the entry module {target}")
            elif not is_entry(module) and rank(target) > rank(module):
                wrong.append(f"{module} (rank {rank(module)}) imports {target} (rank {rank(target)})")
            elif rank(target) == rank(module) < ENTRY_RANK and module.split(".")[1] != target.split(".")[1]:
                wrong.append(f"{module} imports its sibling package's {target}")
    assert not wrong, "\n".join(wrong)


def test_plugins_and_dags_never_import_a_jobs_entry_module():
    wrong = [
        f"{path.relative_to(ROOT)} imports {target}"
        for folder in ("plugins", "dags")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for target in sorted(imports_of(path))
        if is_entry(target)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back():
    graph = jobs_graph()
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target in graph and target not in done:
                visit(target, [*trail, target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert not cycles, "\n".join(sorted(set(cycles)))


def test_no_name_in_jobs_shadows_a_standard_module():
    """spark-submit runs ``jobs/__main__.py`` as a script, which puts ``jobs/`` first on sys.path:
    a package ``jobs/platform/`` was then imported for the standard library's ``platform``."""
    names = {p.stem for p in (ROOT / "jobs").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert not names & set(sys.stdlib_module_names)


def test_no_function_uses_a_name_only_a_branch_of_it_imports():
    """An import inside an ``if`` makes its name local to the whole function: a path that skips the
    branch then fails with UnboundLocalError (``jobs.rollout traffic`` did, after an import moved)."""
    wrong = []
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        for func in ast.walk(ast.parse(path.read_text())):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            nested = [
                node
                for stmt in func.body
                if not isinstance(stmt, ast.Import | ast.ImportFrom)
                for node in ast.walk(stmt)
                if isinstance(node, ast.Import | ast.ImportFrom)
            ]
            for node in nested:
                names = {(alias.asname or alias.name).split(".")[0] for alias in node.names}
                for stmt in func.body:
                    used = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
                    if node not in ast.walk(stmt) and names & used:
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(names & used)}")
    assert not wrong, "\n".join(wrong)
