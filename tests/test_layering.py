"""Imports run one way: base ← model ← weights ← runtime ← pipeline ← export ← ui / cli (and the
other commands). A lower layer importing a higher one — anywhere in a file, lazy imports inside
functions included — fails here, and so does any import circle between modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sam3dbody_gui"
ROOT = PACKAGE.name

# Highest layer first wins: the first entry whose prefix matches names the module's layer.
LAYER_OF_PREFIX = [
    ("ui", "app"), ("cli", "app"), ("bench", "app"), ("bench_people", "app"), ("bench_cpu", "app"), ("bench_video", "app"), ("bench_targets", "app"), ("compare", "app"), ("__main__", "app"), ("batch", "app"),
    ("export", "export"),
    ("video", "pipeline"),
    ("pipeline", "pipeline"),
    ("runtime", "runtime"),
    # The weights code beside the model: the Hub, model folders, checkpoint reading, verification,
    # the synthetic model generator.
    ("hub", "weights"), ("hub_detector", "weights"), ("hub_errors", "weights"), ("hub_http", "weights"),
    ("hub_local", "weights"), ("hub_repos", "weights"), ("synthetic", "weights"), ("model.detector", "weights"),
    ("model.detector_folder", "weights"), ("model.model_folder", "weights"),
    ("model.checkpoint_file", "weights"), ("model.verify", "weights"), ("model.file_checks", "weights"),
    ("model.mhr_rig", "weights"),
    ("model", "model"),
    ("errors", "base"), ("device", "base"), ("mesh_math", "base"), ("bundled", "base"), ("app_paths", "base"),
    ("units", "base"), ("atomic_file", "base"), ("box_overlap", "base"),
]
ORDER = ["base", "model", "weights", "runtime", "pipeline", "export", "app"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    for prefix, layer in LAYER_OF_PREFIX:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise AssertionError(f"sam3dbody_gui.{module} has no layer: add it to LAYER_OF_PREFIX")


def imports_in(source: str, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Modules of the package that `source` (the text of `module`) imports: relative and absolute,
    at any depth (lazy imports inside functions too)."""
    here = module.split(".")
    package = here if is_package else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [p for p in base if p] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == ROOT:
                target = node.module.split(".")[1:]
            else:
                continue
            name = ".".join(target)
            for alias in node.names:  # `from . import x` may name a module
                sub = f"{name}.{alias.name}" if name else alias.name
                found.add(sub if sub in modules else name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    found.add(".".join(alias.name.split(".")[1:]))
    return {m for m in found if m in modules and m != module}


def _graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_in(f.read_text(encoding="utf-8"), module_name(f), f.name == "__init__.py", modules)
            for f in files}


def test_every_import_runs_downward():
    upward = []
    for module, targets in _graph().items():
        if not module:
            continue
        rank = ORDER.index(layer_of(module))
        for target in sorted(t for t in targets if t):
            if ORDER.index(layer_of(target)) > rank:
                upward.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = _graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, "import circles: " + "; ".join(" ↔ ".join(c) for c in circles)


def test_the_checker_sees_an_upward_import():
    """The scan itself: lazy imports inside a function are found, relative and absolute."""
    modules = {module_name(f) for f in PACKAGE.rglob("*.py")}
    source = "def f():\n    from ..ui import app\n    import sam3dbody_gui.cli\n    from .layers import LayerNorm2d\n"
    assert imports_in(source, "model.backbone", False, modules) == {"ui.app", "cli", "model.layers"}
    assert layer_of("model.backbone") == "model" and layer_of("ui.app") == "app"
    assert ORDER.index(layer_of("ui.app")) > ORDER.index(layer_of("model.backbone"))
