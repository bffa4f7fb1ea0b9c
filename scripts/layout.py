"""The package's layout: each module's size, and any import cycle between modules.

Every ``import`` counts, including those inside functions and under ``TYPE_CHECKING``,
since each one ties the two modules together. Exits 1 when a module is longer than
``--max-lines`` or modules import each other in a cycle, so ``make lint`` keeps both out.

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
    problems += [f"import cycle: {' <-> '.join(group)}" for group in cycles(graph)]
    if not args.quiet:
        print(f"{len(names)} modules, {sum(map(len, graph.values()))} imports between them")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
