"""The documentation: README.md and the mkdocs site in docs/.

The configuration reference must be what the models give and name every key; every
relative link must reach a file and every anchor a heading (as both mkdocs and GitHub
name them); the README stays a five-minute read; and the site builds with
``mkdocs build --strict``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from streamer.config import CAMERA_OVERRIDABLE, Config, parse_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
REFERENCE = DOCS / "configuration-reference.md"
PAGES = sorted([README, *DOCS.glob("*.md")])
#: What keeps the README a five-minute read.
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


def load_script(name: str) -> ModuleType:
    """A module of ``scripts/`` (not a package), loaded from its file."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (where a ``[x](y)`` is not a link)."""
    return FENCE.sub("", text)


# --- the configuration reference ---------------------------------------------------------


def test_reference_is_what_the_models_give() -> None:
    generator = load_script("config_reference")
    assert REFERENCE.read_text(encoding="utf-8") == generator.render(), (
        "docs/configuration-reference.md is out of date: run python scripts/config_reference.py"
    )


def schema_paths(schema: dict[str, Any]) -> set[str]:
    """Every key path the config accepts, read from its JSON schema (apart from the
    reference's own walk of the models): ``[]`` for a list's items, ``.<name>`` for a
    mapping's values, and a camera's copy of a global section as the section alone."""
    definitions = schema["$defs"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = definitions[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def objects(node: dict[str, Any], path: str) -> Iterator[tuple[dict[str, Any], str]]:
        """The objects a value may be, with the path their keys hang under."""
        node = resolve(node)
        for branch in node.get("anyOf", []):
            yield from objects(branch, path)
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            yield from objects(node["items"], path + "[]")
        if "properties" in node:
            yield node, path
        values = [node.get("additionalProperties"), *node.get("patternProperties", {}).values()]
        for value in values:
            if isinstance(value, dict):
                yield from objects(value, path + ".<name>")

    found: set[str] = set()

    def walk(node: dict[str, Any], path: str) -> None:
        for model, prefix in objects(node, path):
            for name, child in model["properties"].items():
                key = f"{prefix}.{name}" if prefix else name
                found.add(key)
                if prefix == "cameras[]" and name in CAMERA_OVERRIDABLE:
                    continue  # the global section's keys, described once at the top
                walk(child, key)

    walk(schema, "")
    return found


def documented_paths() -> set[str]:
    """The key in the first column of every table row of the reference."""
    rows = re.findall(r"^\| `([^`]+)` \|", REFERENCE.read_text(encoding="utf-8"), re.MULTILINE)
    return set(rows)


def test_reference_names_every_key() -> None:
    want = schema_paths(Config.model_json_schema())
    have = documented_paths()
    assert len(want) > 100, "the schema walk found too few keys to be trusted"
    assert not want - have, f"keys missing from the reference: {sorted(want - have)}"
    assert not have - want, f"keys in the reference the models lack: {sorted(have - want)}"


def test_reference_notes_the_sections_a_camera_overrides() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    for section in CAMERA_OVERRIDABLE:
        assert f"under `cameras[].{section}`" in text, section


#: A row of a page's table of the main keys: | `section.key` | default | meaning |
KNOB = re.compile(r"^\| `([a-z_]+)\.([a-z_]+)` \| ([^|]+?) \|", re.MULTILINE)


@pytest.mark.parametrize(
    "page", [p for p in PAGES if p != REFERENCE], ids=lambda page: str(page.relative_to(ROOT))
)
def test_the_defaults_pages_give_are_the_models(page: Path) -> None:
    camera = Config().cameras[0].model_dump(mode="json")
    for section, key, default in KNOB.findall(page.read_text(encoding="utf-8")):
        if section not in camera or key not in (camera[section] or {}):
            continue  # not a camera's key (or a table of something else)
        value = camera[section][key]
        given = yaml.safe_load(default.strip("`"))
        assert given == value, f"{section}.{key}: the page says {default}, the model {value}"


# --- links and anchors -------------------------------------------------------------------


def heading_text(markdown: str) -> str:
    """A heading's text as a reader sees it: no code marks, emphasis or link targets."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return text.replace("`", "").replace("*", "")


def markdown_id(text: str) -> str:
    """The id Python-Markdown's toc extension (mkdocs) gives a heading."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def github_id(text: str) -> str:
    """The id GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> tuple[set[str], set[str]]:
    """The heading ids of a page, as mkdocs and as GitHub give them."""
    texts = [heading_text(match[1]) for match in HEADING.findall(prose(page.read_text()))]
    return {markdown_id(t) for t in texts}, {github_id(t) for t in texts}


def links(page: Path) -> list[str]:
    """The link targets of a page's prose (not in code)."""
    return LINK.findall(CODE_SPAN.sub("", prose(page.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:: not this repository's
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and file.suffix == ".md":
            by_mkdocs, by_github = anchors(file)
            if anchor not in by_mkdocs or anchor not in by_github:
                broken.append(f"{target}: no heading with that id")
    assert not broken, f"{page.name}: " + "; ".join(broken)


# --- the README --------------------------------------------------------------------------


def test_readme_is_a_five_minute_read() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_readme_configs_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert blocks, "the README shows no config"
    for block in blocks:
        for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", block):
            monkeypatch.setenv(name, "secret")
        parse_config(yaml.safe_load(block))


# --- the site ----------------------------------------------------------------------------


def test_every_http_route_is_documented() -> None:
    """Each route the API registers is in the endpoint table of the operations page."""
    register = re.compile(r"add_(get|post|put|delete|patch)\(\s*\"([^\"]+)\"")
    routes = {
        (method.upper(), path)
        for source in (ROOT / "streamer").rglob("*.py")
        for method, path in register.findall(source.read_text(encoding="utf-8"))
    }
    assert len(routes) > 10, "no routes found: has the API stopped using router.add_*?"
    page = (DOCS / "operations.md").read_text(encoding="utf-8")
    missing = []
    for method, path in sorted(routes):
        shown = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: m[1].upper(), path)
        if f"`{method} {shown}`" not in page:
            missing.append(f"{method} {shown}")
    assert not missing, f"routes not in docs/operations.md: {missing}"


def test_architecture_names_every_layer() -> None:
    """The architecture page describes the layers scripts/layout.py enforces."""
    layers = load_script("layout").LAYERS
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    missing = [
        name
        for names in layers
        for name in names
        if f"`{name.removeprefix('streamer.')}`" not in page
    ]
    assert not missing, f"layers not described in docs/architecture.md: {missing}"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs-material is not installed (it is in the dev extra: pip install -e '.[dev]')",
)
def test_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "configuration-reference" / "index.html").exists()
