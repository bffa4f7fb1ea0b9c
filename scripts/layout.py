"""The package's layout: each module's size, the layers, and any import cycle.

The package is built in layers (:data:`LAYERS`, lowest first): a module may import from
its own layer and the layers below, never from one above, so that what a stage needs is
always beneath it and a contract two layers share lives in the lower one. Every
``import`` counts, including those inside functions and under ``TYPE_CHECKING``, since
each one ties the two modules together. Exits 1 when a module is longer than
``--max-lines``, imports from a layer above its own, or modules import each other in a
cycle, so ``make lint`` keeps all three out.

    python scripts/layout.py            # the table, then any problem
    python scripts/layout.py --quiet    # only the problems
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "streamer"

#: The layers, lowest first; a module is in the layer of the longest name that is it or
#: a package holding it. The API sits under the composition root (node.py), which builds
#: it as it builds every other part.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("streamer", "streamer.retry", "streamer.files"),  # version; backoff, outages; reads
    ("streamer.config",),
    ("streamer.sources",),
    ("streamer.vision",),
    ("streamer.reading",),
    ("streamer.events",),
    ("streamer.stores",),
    ("streamer.delivery",),
    (
        "streamer.pipeline",
        "streamer.reporter",
        "streamer.unread",
        "streamer.stills",
        "streamer.cameras",
    ),
    ("streamer.cluster",),
    ("streamer.api",),
    ("streamer.node",),
    ("streamer.service", "streamer.threaded"),
    ("streamer.evaluation", "streamer.training"),
    ("streamer.cli",),
    ("streamer.__main__",),
)


def layer(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``'s layer.

    Raises:
        KeyError: for a module no layer names (add it to :data:`LAYERS`).
    """
    best, found = -1, None
    for index, names in enumerate(LAYERS):
        for name in names:
            inside = module == name or (name != PACKAGE and module.startswith(name + "."))
            if inside and len(name) > best:
                best, found = len(name), index
    if found is None:
        raise KeyError(f"{module}: in no layer of scripts/layout.py LAYERS")
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Each import from a layer above the importer's, as ``a -> b``."""
    return [
        f"{source} -> {target}"
        for source, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer(target) > layer(source)
    ]


def module_name(path: Path) -> str:
    """``streamer/vision/detect.py`` → ``streamer.vision.detect``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (a name imported from a package counts
    as its module when it is one, else as the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def main() -> int:
    """Print the table and the problems; 1 when there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-lines", type=int, default=400)
    parser.add_argument("--quiet", action="store_true", help="only the problems")
    args = parser.parse_args()
    files = sorted((ROOT / PACKAGE).rglob("*.py"))
    names = {module_name(path): path for path in files}
    graph = {
        name: {target for target in imports(path, set(names)) if target != name}
        for name, path in names.items()
    }
    # A package imports its own modules to re-export them; that is not a cycle.
    for name in names:
        graph[name] = {
            t for t in graph[name] if not (names[name].name == "__init__.py" and t.startswith(name))
        }
    problems = []
    for path in names.values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if not args.quiet:
            print(f"{lines:5d}  {path.relative_to(ROOT)}")
        if lines > args.max_lines:
            problems.append(f"{path.relative_to(ROOT)}: {lines} lines (more than {args.max_lines})")
    try:
        problems += [f"import from a layer above: {line}" for line in upward(graph)]
    except KeyError as error:
        problems.append(str(error.args[0]))
    problems += [f"import cycle: {' <-> '.join(group)}" for group in cycles(graph)]
    if not args.quiet:
        print(f"{len(names)} modules, {sum(map(len, graph.values()))} imports between them")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
