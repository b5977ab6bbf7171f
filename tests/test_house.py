"""House rules that are one home per shared rule: every metric name in
``transforms.core.metric_names`` (no use site spells one out), one Clopper-Pearson bound, one
definition of each shared name; and the layout: no module over 500 lines, no import circle,
each layer importing only the layers beneath it, no import of another module's private names.
Reads the source (an AST walk); runs nothing.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

from transforms.core import metric_names

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("transforms/**/*.py"), *ROOT.glob("pipeline/**/*.py")])
METRIC_CALLS = {"counter", "distribution", "gauge"}  # Metrics.<kind>(namespace, name)
FILTER_CALLS = {"with_name", "with_namespace"}  # MetricsFilter().with_name(name)


@functools.cache
def _trees() -> list[tuple[pathlib.Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in SOURCES]


def _spelled_out(node: ast.expr) -> bool:
    """A string literal or f-string: a name written at the use site, not taken from its home."""
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _metric_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    attr, owner = node.func.attr, node.func.value
    if attr in METRIC_CALLS:
        return isinstance(owner, ast.Name) and owner.id == "Metrics"
    return attr in FILTER_CALLS


def _metric_name_compared(node: ast.AST) -> bool:
    """``counter.key.metric.name == "..."``: a metric read back by a spelled-out name."""
    if not isinstance(node, ast.Compare):
        return False
    left = node.left
    return (
        isinstance(left, ast.Attribute)
        and left.attr == "name"
        and isinstance(left.value, ast.Attribute)
        and left.value.attr == "metric"
        and any(_spelled_out(c) for c in node.comparators)
    )


def test_no_metric_name_is_spelled_out_where_it_is_used():
    calls, spelled = 0, []
    for path, tree in _trees():
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if _metric_call(node):
                calls += 1
                args = [*node.args, *(k.value for k in node.keywords)]
                spelled += [where for arg in args if _spelled_out(arg)]
            elif _metric_name_compared(node):
                spelled.append(where)
    assert spelled == []
    assert calls >= 15  # the walk sees the job's counters (it is not looking at nothing)


def test_metric_names_are_unique_and_all_listed():
    names = metric_names.NAMES
    assert len(set(names)) == len(names)
    constants = {
        value
        for name, value in vars(metric_names).items()
        if name.isupper() and not name.startswith("_") and isinstance(value, str)
    }
    assert constants - {metric_names.METRICS_NAMESPACE} == set(names)
    # A per-reason or per-status counter never lands on a fixed name.
    assert len(set(metric_names.PREFIXES)) == len(metric_names.PREFIXES)
    assert not [n for n in names for p in metric_names.PREFIXES if n.startswith(p)]
    assert metric_names.errors_by_reason("decode_error") == "errors.decode_error"
    assert metric_names.compared_by_status("mismatch") == "compare.mismatch"
    assert metric_names.METRICS_NAMESPACE == "batch_score"  # docs/dataflow.md names it


def _definitions(name: str) -> list[str]:
    """Where a function or a module-level constant called ``name`` is defined."""
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                found.append(str(path.relative_to(ROOT)))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found.append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(
    "name, home",
    [
        ("clopper_pearson_upper", "transforms/core/bounds.py"),
        ("finite_or_none", "transforms/core/bounds.py"),
        ("_finite_or_none", None),
        ("upper_bound", None),
        ("CONFIDENCE", "transforms/core/bounds.py"),
        ("PROBE_NAMES", "transforms/core/diagnosis.py"),
        ("METRICS_NAMESPACE", "transforms/core/metric_names.py"),
        ("percent", "transforms/core/wording.py"),
    ],
)
def test_each_shared_name_has_one_home(name, home):
    assert _definitions(name) == ([home] if home else [])


def test_the_binomial_bound_is_computed_in_one_place():
    users = [
        str(path.relative_to(ROOT))
        for path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "ppf"
    ]
    assert users == ["transforms/core/bounds.py"]


def test_no_module_is_over_500_lines():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in SOURCES}
    assert {path: n for path, n in sizes.items() if n > 500} == {}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at module level or inside a function."""
    modules = {_module_name(path) for path in SOURCES}
    graph: dict[str, set[str]] = {}
    for path, tree in _trees():
        name, targets = _module_name(path), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_circle():
    graph = _imports()
    circles = []
    for start in graph:  # a depth-first walk from each module back to itself
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in graph[node]:
                if target == start:
                    circles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert circles == []


# Who may import whom: the pure core at the bottom, shared I/O above it, the two jobs' wings
# and the reports above those, pipeline/ (the entry points) on top.
LAYERS = {
    "transforms.core": {"transforms", "transforms.core"},
    "transforms.io": {"transforms", "transforms.core", "transforms.io"},
    "transforms.report": {"transforms", "transforms.core", "transforms.io", "transforms.report"},
    "transforms.score": {"transforms", "transforms.core", "transforms.io", "transforms.score"},
    "transforms.compare": {"transforms", "transforms.core", "transforms.io", "transforms.compare"},
}


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2]) if module.startswith("transforms.") else module


def test_each_layer_imports_only_the_layers_beneath_it():
    wrong = [
        f"{module} -> {target}"
        for module, targets in _imports().items()
        if _layer(module) in LAYERS
        for target in sorted(targets)
        if _layer(target) not in LAYERS[_layer(module)]
    ]
    assert wrong == []
    # Workers run the wings: nothing they import may pull in the reports (matplotlib).
    assert not [m for m in _imports() if _layer(m) == "transforms.score" and "report" in m]


def test_no_module_imports_another_modules_private_names():
    files = [*SOURCES, *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py")]
    private = [
        f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").split(".")[0] in ("pipeline", "transforms")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []
