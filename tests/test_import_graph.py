"""The import graph of mrgen/ and commands/: layered, without cycles.

Every ``import`` and ``from ... import`` of every module is collected with ``ast``, at module
level and inside functions alike (a lazy import inside a function is still a dependency; it
only defers the cost), with relative imports resolved. ``from pkg import name`` is an edge to
``pkg.name`` when that is a module, else to ``pkg``. Imports of anything outside mrgen/ and
commands/ are ignored.

A package's ``__init__`` is a module of its own (``mrgen.deepen``). Importing
``mrgen.deepen.model`` also runs ``mrgen/deepen/__init__.py`` first, but that implicit edge
from a module to its parent packages is NOT added: Python creates the package object before
it runs any submodule, so an ``__init__`` that re-exports its submodules (``mrgen.djsense``
imports ``.model``) is no cycle with them, yet with the implicit edges every such package
would count as one. An import written back to a package (``from ..djsense import X``) is an
edge like any other.

The layers:
(a) no cycle anywhere (the first one found is printed);
(b) the library never imports the command line (no ``mrgen`` module imports ``commands``);
(c) command modules are independent of one another: a command module imports only the
    shared CLI infrastructure (``commands.cli``, ``options``, ``checks``, ``interrupt``), and
    neither does the infrastructure import a command module; only the registrars
    (``commands.main``, ``manpages``, ``train``, ``__main__``) import command modules, to
    register them.
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mrgen", "commands")
INFRASTRUCTURE = {f"commands.{name}" for name in ("cli", "options", "checks", "interrupt",
                                                  "allocator", "batch")}
REGISTRARS = {f"commands.{name}" for name in ("main", "manpages", "train", "__main__")}


def module_files() -> dict[str, Path]:
    """Module name -> file, for every .py under the packages (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _base_package(module: str, path: Path, level: int) -> str:
    """The package a relative import of ``level`` dots in ``module`` starts from."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return package


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports, anywhere in its file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _base_package(module, path, node.level)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in known else source)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle [a, b, ..., a] of the directed graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}          # 1: on the current path, 2: finished
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(following) == 1:
                return path[path.index(following):] + [following]
            elif following not in state:
                state[following] = 1
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return None


def _is_command(module: str) -> bool:
    return (module.startswith("commands.") and module not in INFRASTRUCTURE
            and module not in REGISTRARS)


def test_the_graph_is_collected():
    graph = import_graph()
    assert "mrgen.model_files" in graph
    assert "mrgen.training.engine" in graph["mrgen.training.prior"]      # relative, module level
    assert "mrgen.model_files" in graph["mrgen.priors.loading"]          # inside a function
    assert "mrgen.io.roles" in graph["mrgen.io"]                         # from . import module
    assert "commands.main" in graph["commands.__main__"]                 # from .module import


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_library_does_not_import_the_commands():
    graph = import_graph()
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items()
                    if module.split(".")[0] == "mrgen"
                    for target in targets if target.split(".")[0] == "commands")
    assert not upward, "mrgen imports commands: " + ", ".join(upward)


def test_command_modules_import_only_the_shared_infrastructure():
    graph = import_graph()
    crossing = sorted(f"{module} -> {target}" for module, targets in graph.items()
                      if module.startswith("commands.") and module not in REGISTRARS
                      for target in targets if _is_command(target))
    assert not crossing, "command modules import command modules: " + ", ".join(crossing)


MAX_COMMAND_BODY = 40


def command_bodies() -> dict[str, int]:
    """Lines of each subcommand function's body (after its docstring), by 'module.function'."""
    bodies = {}
    for module, path in module_files().items():
        if not module.startswith("commands."):
            continue
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", "") == "command"
                    for d in node.decorator_list):
                first = node.body[0]
                has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                start = node.body[1].lineno if has_doc else first.lineno
                bodies[f"{module}.{node.name}"] = node.end_lineno - start + 1
    return bodies


def test_commands_are_thin_shells():
    """A command parses, reads, calls an application function of mrgen/ and saves: its body
    fits in 40 lines; the logic lives in mrgen/apps/."""
    bodies = command_bodies()
    assert len(bodies) >= 15, sorted(bodies)
    long = {name: lines for name, lines in bodies.items() if lines > MAX_COMMAND_BODY}
    assert not long, f"command bodies over {MAX_COMMAND_BODY} lines: {long}"
