"""Loading a config: YAML, ``${VAR}`` substitution, validation, one line per error."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from streamer.config.base import ConfigError, mask_url
from streamer.config.daemon import Config
from streamer.files import read_regular

#: The largest config file read: far more than any real config (2,000 cameras take 100 kB).
MAX_CONFIG_BYTES = 10_000_000

#: A message that starts with the key path it is about (a check across sections).
_KEY_PATH = re.compile(r"^[a-z_]+(\.[A-Za-z0-9_]+)+: ")
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value: Any, path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree.

    Raises:
        ConfigError: when a variable without a default is not set.
    """
    if isinstance(value, dict):
        return {
            key: substitute_env(item, f"{path}.{key}" if path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            substitute_env(item, f"{path}.{index}" if path else str(index))
            for index, item in enumerate(value)
        ]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")

    return _ENV_PATTERN.sub(replace, value)


def format_validation_error(error: ValidationError) -> str:
    """One ``key.path: message (got value)`` line per problem. A camera that inherits a
    bad global setting is not named again: the global key's line says it."""
    lines = []
    problems = error.errors()
    globals_ = {(p["loc"], p["msg"], repr(p.get("input"))) for p in problems}
    for problem in problems:
        loc = problem["loc"]
        if (
            loc[:1] == ("cameras",)
            and (loc[2:], problem["msg"], repr(problem.get("input"))) in globals_
        ):
            continue
        location = ".".join(str(part) for part in loc) or "<root>"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        got = problem.get("input")
        shown = mask_url(got) if isinstance(got, str) else got
        suffix = "" if problem["type"] in {"missing", "extra_forbidden"} else f" (got {shown!r})"
        if isinstance(got, dict | list):
            suffix = ""
        if location == "<root>" and _KEY_PATH.match(message):
            location, _, message = message.partition(": ")  # the check named the key
        lines.append(f"{location}: {message}{suffix}")
    return "\n".join(lines)


def parse_config(data: Any) -> Config:
    """Validate a parsed YAML tree (after ``${VAR}`` substitution) into a :class:`Config`.

    Raises:
        ConfigError: naming each bad key path and value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"<root>: expected a mapping of settings (got {type(data).__name__})")
    try:
        return Config.model_validate(substitute_env(data))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def load_config(path: Path | None) -> Config:
    """Load and validate the YAML file at ``path``; ``None`` gives the embedded defaults.

    Raises:
        ConfigError: when the file cannot be read or parsed, or a value is invalid.
    """
    if path is None:
        return Config()
    try:
        text = read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 (byte {error.start})") from None
    try:
        data = read_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f": line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}{where}: {reason}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    except ValueError as error:  # an integer of thousands of digits
        raise ConfigError(f"{path}: {error}") from None
    return parse_config(data)


#: Nodes a config may hold once its aliases are expanded: far more than any real config,
#: far fewer than a "billion laughs" (a few hundred bytes that expand to gigabytes).
MAX_NODES = 100_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also refuses duplicate keys (YAML says a mapping's keys
    are unique; PyYAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool | None):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> Any:
    """The YAML document in ``text``, refusing duplicate keys and alias bombs.

    Raises:
        yaml.YAMLError: naming the line.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_NODES:
            raise yaml.YAMLError(f"more than {MAX_NODES} values once its aliases are expanded")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many nodes ``node`` stands for with its aliases expanded (an alias is the node it
    names again, so each node is counted once per reference, without expanding it).

    Raises:
        yaml.YAMLError: when an alias names a node that holds it (a config is a tree).
    """
    if id(node) in open_:
        raise yaml.YAMLError(
            f"line {node.start_mark.line + 1}: an alias refers to the value that holds it"
        )
    if id(node) in sizes:
        return sizes[id(node)]
    open_.add(id(node))
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value
        )
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes, open_) for item in node.value)
    open_.discard(id(node))
    sizes[id(node)] = min(size, MAX_NODES + 1)
    return sizes[id(node)]
