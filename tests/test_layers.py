"""The house rule "one adapter per outside system", checked by scanning every import.

Each outside library may be imported only by its adapter module(s); the pure core (spec, plans,
pacer, histogram, analysis, manifest patching) imports none of them. A new import elsewhere fails
here with the file and line, so the seams stay where STYLE.md draws them.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("coordinator", "workers", "analysis", "promote", "deploy")

# outside library -> the only modules (paths from the repo root) allowed to import it
ADAPTERS = {
    "ray": {"coordinator/ray_pool.py"},
    # deploy/kube.py: kubernetes_asyncio's transport errors (aiohttp.ClientError) are caught there
    "aiohttp": {"workers/transport_aiohttp.py", "promote/service.py", "deploy/kube.py",
                "coordinator/prometheus.py"},
    "uvloop": {"workers/load_worker.py"},
    "httptools": {"workers/raw_engine.py"},
    "github": {"promote/github.py"},
    "requests": {"promote/github.py"},
    "kubernetes_asyncio": {"deploy/kube.py"},
    "grpc": {"workers/transport_grpc.py"},
    "grpc_reflection": {"workers/transport_grpc.py"},
    "google": {"coordinator/grpc_schema.py"},  # protobuf (grpc_tools runs as a subprocess)
}
PURE = ("analysis/", "coordinator/spec.py", "coordinator/split.py", "coordinator/units.py",
        "workers/histogram.py", "workers/pacer.py", "workers/plan.py", "workers/run_state.py",
        "promote/patch.py", "promote/flow.py", "promote/spec.py", "promote/errors.py",
        "deploy/manifests.py", "deploy/errors.py", "coordinator/errors.py",
        "coordinator/dark_launch.py", "coordinator/grpc_spec.py", "coordinator/metrics_spec.py",
        "coordinator/run_metrics.py")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Returns (top-level module, line) for every import statement in the file, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def sources() -> list[Path]:
    """Returns every Python file of the five packages."""
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_outside_libraries_are_imported_only_by_their_adapters() -> None:
    """No module outside an adapter imports ray, aiohttp, uvloop, httptools, github or
    kubernetes_asyncio."""
    stray = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
             for path in sources() for module, line in imports_of(path)
             if module in ADAPTERS and str(path.relative_to(ROOT)) not in ADAPTERS[module]]
    assert stray == []


@pytest.mark.parametrize("module", sorted(ADAPTERS))
def test_each_adapter_exists_and_uses_its_library(module: str) -> None:
    """Every listed adapter really imports its library, so the table above cannot go stale."""
    for adapter in ADAPTERS[module]:
        assert module in {name for name, _ in imports_of(ROOT / adapter)}, adapter


def test_the_pure_core_imports_no_adapter_module() -> None:
    """Pure modules import neither an outside library nor an adapter of one (I/O at the edges)."""
    adapter_modules = {a[:-3].replace("/", ".") for files in ADAPTERS.values() for a in files}
    pure = [p for p in sources() if str(p.relative_to(ROOT)).startswith(PURE)]
    assert len(pure) > 15
    stray = []
    for path in pure:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            bad = {n for n in names if n.split(".")[0] in ADAPTERS or n in adapter_modules}
            stray += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in sorted(bad)]
    assert stray == []


# package -> the packages it may import: imports point down (STYLE.md), coordinator at the top
LAYERS = {
    "coordinator": {"coordinator", "promote", "deploy", "analysis", "workers"},
    "promote": {"promote", "analysis", "workers"},
    "deploy": {"deploy", "analysis", "workers"},
    "analysis": {"analysis", "workers"},
    "workers": {"workers"},
}


def upward_imports(package: str, path: Path) -> list[tuple[str, int]]:
    """Returns (package, line) for each import in ``path`` of a package above ``package`` (or
    beside it: promote and deploy do not import each other), nested imports included."""
    return [(module, line) for module, line in imports_of(path)
            if module in LAYERS and module not in LAYERS[package]]


def test_imports_point_down() -> None:
    """No module of analysis, promote, deploy or workers imports a package above it (coordinator
    above all), so the errors and the spec each package uses live in it or below it."""
    below = [path for path in sources() if path.relative_to(ROOT).parts[0] != "coordinator"]
    assert len(below) > 40
    stray = [f"{path.relative_to(ROOT)}:{line}: imports {module}" for path in below
             for module, line in upward_imports(path.relative_to(ROOT).parts[0], path)]
    assert stray == []


@pytest.mark.parametrize(("package", "source", "found"), [
    pytest.param("analysis", "from coordinator.errors import SpecError\n", ("coordinator", 1),
                 id="analysis-imports-coordinator"),
    pytest.param("promote", "def f():\n    import coordinator.spec\n", ("coordinator", 2),
                 id="nested-import-of-coordinator"),
    pytest.param("workers", "from analysis import stats\n", ("analysis", 1),
                 id="workers-import-analysis"),
    pytest.param("deploy", "from promote.errors import PromotionError\n", ("promote", 1),
                 id="deploy-imports-promote"),
    pytest.param("promote", "from analysis.errors import ResultsError\nimport os\n", None,
                 id="downward-import-is-fine"),
])
def test_an_upward_import_is_caught(tmp_path: Path, package: str, source: str,
                                    found: tuple[str, int] | None) -> None:
    """The check flags an upward (or sideways) import, and only that, in a module of ``package``."""
    module = tmp_path / "probe.py"
    module.write_text(source, encoding="utf-8")
    assert upward_imports(package, module) == ([found] if found else [])
def module_name(path: Path) -> str:
    """Returns the dotted module name of a source file (``workers.raw_engine``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Returns, for each module of the five packages, the modules of its own package it imports
    (at the top or inside a function: a deferred import still ties the two together)."""
    paths = {module_name(p): p for p in sources()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name.split(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets
                       if t in paths and t != name and t.split(".")[0] == package}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Returns each import loop once, as the modules on it from the alphabetically first
    (``a -> b -> a`` as ``["a", "b"]``), found by a depth-first walk from every module."""
    found: set[tuple[str, ...]] = set()

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph[path[-1]]):
            if nxt == path[0]:
                start = path.index(min(path))
                found.add(tuple(path[start:] + path[:start]))
            elif nxt not in path and nxt > path[0]:
                walk([*path, nxt])

    for module in sorted(graph):
        walk([module])
    return sorted(list(c) for c in found)


@pytest.mark.parametrize(("graph", "expected"), [
    pytest.param({"a": {"b"}, "b": {"a"}}, [["a", "b"]], id="two-modules"),
    pytest.param({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]], id="three-modules"),
    pytest.param({"a": {"b", "c"}, "b": {"c"}, "c": set()}, [], id="diamond-no-loop"),
    pytest.param({"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}, [["a", "b"], ["b", "c"]],
                 id="two-loops-through-one-module"),
])
def test_cycles_finds_every_loop_and_nothing_else(graph: dict[str, set[str]],
                                                  expected: list[list[str]]) -> None:
    """The loop finder reports each loop of a small graph once and a loop-free graph as none."""
    assert cycles(graph) == expected


def test_no_two_modules_of_a_package_import_each_other() -> None:
    """No import loop inside a package, even through a deferred import: shared pieces live in a
    module of their own (workers.run_state, analysis.formatting, analysis.outcomes)."""
    graph = import_graph()
    assert {"workers.raw_engine", "workers.run_state"} <= set(graph)
    assert "workers.run_state" in graph["workers.raw_engine"]  # the graph sees real imports
    assert cycles(graph) == []


def _strict_modules() -> set[str]:
    """Return the modules pyproject.toml's mypy override with the strict flags names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [strict] = [o for o in config["tool"]["mypy"]["overrides"] if o.get("disallow_untyped_defs")]
    return set(strict["module"])


def test_mypy_is_strict_on_exactly_the_pure_core() -> None:
    """The modules mypy checks strictly are the pure core listed here, no more and no fewer."""
    pure = {p.removesuffix("/").removesuffix(".py").replace("/", ".") for p in PURE}
    expected = {f"{name}.*" if not (ROOT / f"{name.replace('.', '/')}.py").exists() else name
                for name in pure}
    assert _strict_modules() == expected
