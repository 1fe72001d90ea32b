"""Checks on the shape of the code: the project's modules import each other without a circle, and the
unit tests mirror the modules they test."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "spark_jobs", "dags", "plugins")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports anywhere in it (inside functions too: a circle broken by
    a late import is still a circle of ideas)."""

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {owner(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {owner(f"{node.module}.{alias.name}") or owner(node.module) for alias in node.names}
    return {name for name in found if name}


def test_the_import_graph_has_no_circle() -> None:
    modules = project_modules()
    graph = {name: imported_modules(path, modules) - {name} for name, path in modules.items()}
    assert "app.hours" in graph and "spark_jobs.pipeline" in graph  # the walk found the code
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise AssertionError(f"modules import each other: {' -> '.join(error.args[1])}") from None


def test_the_hours_module_is_a_leaf() -> None:
    """Every module may use the forms of an hour, so they depend on nothing of the project."""
    modules = project_modules()
    assert imported_modules(modules["app.hours"], modules) == set()


def mirrored_module(test_file: Path) -> str | None:
    """What `tests/unit/<folder>/test_<name>[_<aspect>].py` tests: `<folder>/<name>.py`, or package
    `<folder>/<name>/`, or the folder's command line (`test_cli.py`: `__main__.py`), or the folder as
    a whole (`test_<folder>.py`); None when there is no such thing."""
    folder = ROOT / test_file.parent.relative_to(ROOT / "tests" / "unit")
    stem = test_file.stem.removeprefix("test_")
    if stem == "cli":
        return str(folder / "__main__.py") if (folder / "__main__.py").exists() else None
    if stem == folder.name and folder.is_dir():
        return str(folder)
    words = stem.split("_")
    for length in range(len(words), 0, -1):
        name = "_".join(words[:length])
        for candidate in (folder / f"{name}.py", folder / name):
            if candidate.exists():
                return str(candidate)
    return None


def test_unit_tests_mirror_the_modules() -> None:
    unit = ROOT / "tests" / "unit"
    nested = [path for path in unit.rglob("test_*.py") if path.parent != unit]
    assert len(nested) > 20  # the walk found them
    assert [str(path.relative_to(ROOT)) for path in nested if mirrored_module(path) is None] == []
