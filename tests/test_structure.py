"""The package's layout holds: no import circle, a thin runtime, no stdlib shadowing, one home for defaults."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import trtsr

PACKAGE = Path(trtsr.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _module_level(tree: ast.Module):
    """The nodes that run when the module is imported: its body, without function and class bodies."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))


def _imports(path: Path, modules: dict[str, Path], importer: str = "") -> set[str]:
    """trtsr modules that `path` imports anywhere (module level or inside functions), and the packages above
    each of them, whose `__init__` runs first (those the importer is inside have run already). A package's
    own `__init__` counts only what it imports when it runs (a lazy `__getattr__` import is not an edge: it
    loads only the name asked for)."""
    found = set()
    tree = ast.parse(path.read_text())
    nodes = _module_level(tree) if path.name == "__init__.py" else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` depends on a.b.c when c is a module, else on a.b itself
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            above = {".".join(parts[:end]) for end in range(1, len(parts))}
            inside = {p for p in above if importer.startswith(p + ".")}
            found.update(m for m in (above - inside) | {name} if m in modules)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules, name) - {name} for name, path in modules.items()}


def test_the_import_graph_has_no_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert circles == []


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in graph[node]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_runtime_reaches_neither_export_nor_the_builder_nor_the_pipeline():
    graph = _graph()
    runtime = [name for name in graph if name == "trtsr.runtime" or name.startswith("trtsr.runtime.")]
    assert len(runtime) >= 4  # the package, tiling, images, engine I/O
    forbidden = ("trtsr.export", "trtsr.engines.builder", "trtsr.engines.cache", "trtsr.pipeline", "trtsr.models",
                 "trtsr.training", "trtsr.cli", "trtsr.sessions")
    for name in runtime:
        bad = sorted(m for m in _reachable(name, graph) if m.startswith(forbidden))
        assert bad == [], f"{name} reaches {bad}"


def test_the_sessions_reach_neither_export_nor_the_builder_nor_the_pipeline():
    """One module per backend; only the torch session reaches the models (it runs them)."""
    graph = _graph()
    sessions = sorted(name for name in graph if name.startswith("trtsr.sessions."))
    assert sessions == ["trtsr.sessions.base", "trtsr.sessions.engine_session", "trtsr.sessions.onnxruntime_session",
                        "trtsr.sessions.torch_session"]
    forbidden = ("trtsr.export", "trtsr.engines.builder", "trtsr.engines.cache", "trtsr.pipeline", "trtsr.training",
                 "trtsr.cli")
    for name in [*sessions, "trtsr.sessions"]:
        models = () if name.endswith("torch_session") else ("trtsr.models",)
        bad = sorted(m for m in _reachable(name, graph) if m.startswith(forbidden + models))
        assert bad == [], f"{name} reaches {bad}"


def test_every_session_follows_the_protocol():
    from trtsr.sessions import Session, SessionBase
    from trtsr.sessions.engine_session import EngineSession
    from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession
    from trtsr.sessions.torch_session import TorchSession

    for cls in (EngineSession, OnnxRuntimeSession, TorchSession):
        assert issubclass(cls, SessionBase)
        assert list(inspect.signature(cls.infer).parameters) == ["self", "picture", "w"]
    from trtsr.paths import shipped_onnx

    with OnnxRuntimeSession(shipped_onnx()) as session:
        assert isinstance(session, Session)


RUN_A_SESSION = """
from trtsr.paths import shipped_onnx
from trtsr.runtime import run_tiled
from trtsr.sessions.onnxruntime_session import OnnxRuntimeSession
session = OnnxRuntimeSession(shipped_onnx())
out = run_tiled(np.zeros((40, 40, 3), np.float32), lambda tile: session.infer(tile, session.guidance), scale=4,
                tile=24, overlap=8)
assert out.shape == (160, 160, 3)
"""
OPEN_AN_ENGINE = """
from trtsr.errors import TrtsrError
from trtsr.sessions.engine_session import EngineSession
try:
    EngineSession.open('missing.engine')
except TrtsrError as exc:
    assert 'engine not found' in str(exc)
import trtsr.engines.backend, trtsr.engines.metadata
"""
RUN_THE_UPSCALER = """
from trtsr import Upscaler
image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
results = {}
for w in (1.8, 3.0, None):  # the default, another guidance, no PadCFG: all from shipped graphs
    with Upscaler('default', backend='onnxruntime', guidance=w) as up:
        results[w] = up.upscale(image).astype(int)
        assert results[w].shape == (80, 96, 3)
assert abs(results[1.8] - results[3.0]).max() > 1 and abs(results[1.8] - results[None]).max() > 1
for scale in (2, 3):  # every scale the default model is trained for ships too
    for w in (1.8, None):
        with Upscaler('default', backend='onnxruntime', scale=scale, guidance=w) as up:
            assert up.upscale(image).shape == (20 * scale, 24 * scale, 3)
"""
THIRD_PARTY = ("torch", "onnx", "diffusers", "onnxscript")


@pytest.mark.parametrize(("code", "also_forbidden"), [
    # the runtime alone: not even the rooms that export, build or orchestrate
    (RUN_A_SESSION, ("trtsr.export", "trtsr.engines.builder", "trtsr.engines.cache", "trtsr.pipeline",
                     "trtsr.models")),
    # the Python API on the shipped graph: a run-only install has no torch, onnx or diffusers
    (RUN_THE_UPSCALER, ("trtsr.export", "trtsr.models")),
    # opening an engine reads its metadata and loads its backend, not the builder or the cache
    (OPEN_AN_ENGINE, ("trtsr.export", "trtsr.engines.builder", "trtsr.engines.cache", "trtsr.pipeline",
                      "trtsr.models")),
], ids=["runtime", "upscaler", "engine"])
def test_running_the_shipped_graph_loads_no_torch_onnx_or_exporter(code, also_forbidden):
    check = (
        "import sys, numpy as np\n" + code
        + f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {THIRD_PARTY!r}"
        + f" or m.startswith({also_forbidden!r}))\nprint('LOADED', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout


def test_no_module_shadows_the_standard_library():
    shadowing = sorted(
        _module_name(p) for p in PACKAGE.rglob("*.py")
        if not p.stem.startswith("__") and p.stem in sys.stdlib_module_names
    )
    assert shadowing == []


def test_the_default_guidance_is_written_only_in_defaults():
    """Numbers, not strings: help texts may quote the paper's 1.8, code reads defaults.GUIDANCE."""
    from trtsr import defaults

    places = []
    for path in PACKAGE.rglob("*.py"):
        if path == Path(defaults.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == defaults.GUIDANCE and type(node.value) is float:
                places.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert places == []
