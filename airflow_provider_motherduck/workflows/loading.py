"""Loading a declaration: a mapping or list as it is, or JSON or YAML text (inline or a file), bounded.

The invariant: reading a declaration costs at most about ``max_bytes`` of input, whatever the
input holds, and every refusal is a short ``ValueError`` naming the task-facing field.

How it is kept:

* **Size**: a file's size is checked before it is read, and at most ``max_bytes + 1`` bytes are
  ever read (a file growing meanwhile, a pipe); text is measured before it is parsed.
* **YAML anchors and aliases are refused** at the first one, before anything is built: an alias
  re-uses a node, so a few hundred bytes of them expand into gigabytes (a "billion laughs").
  Declarations repeat themselves seldom enough to spell each part out.
* **Duplicate keys are an error** naming the key and its line, in YAML and JSON alike: silently
  keeping the last value would let a stray second ``service_accounts:`` empty a declaration.
* **Values in messages are excerpts** (:func:`~airflow_provider_motherduck.exceptions.excerpt`),
  never the whole text or a parser's quote of a long line.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from airflow_provider_motherduck.arguments import check_count
from airflow_provider_motherduck.exceptions import cut, excerpt, invalid

#: The largest declaration read by default (1 MiB: thousands of accounts).
MAX_DECLARATION_BYTES: Final = 1 << 20
#: File names read as a declaration (JSON is read as JSON, the rest as YAML).
DECLARATION_SUFFIXES: Final = (".json", ".yaml", ".yml")
SOURCE_FORMS: Final = "a mapping, its JSON or YAML text, or the path of a .json, .yaml or .yml file"
_RULES: Final = "YAML or JSON without anchors or aliases, each key once per mapping"


def declaration_path(source: Any) -> Path | None:
    """The file ``source`` names (a ``PathLike``, or a one-line string ending in ``.json``,
    ``.yaml`` or ``.yml``), or ``None`` for a mapping or inline text."""
    if isinstance(source, os.PathLike):
        return Path(source)
    if isinstance(source, str) and "\n" not in source and source.strip().endswith(DECLARATION_SUFFIXES):
        return Path(source.strip()).expanduser()
    return None


def read_declaration_file(
    path: Path, field: str = "desired", *, max_bytes: int = MAX_DECLARATION_BYTES
) -> str:
    """The text of a declaration file of at most ``max_bytes`` bytes, checked before it is read."""
    check_count(max_bytes, "max_bytes", 1)
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            data = b"" if size > max_bytes else file.read(max_bytes + 1)
    except OSError as err:
        raise invalid(field, str(path), f"cannot be read ({err.strerror or err})", SOURCE_FORMS) from None
    if size > max_bytes or len(data) > max_bytes:
        raise invalid(field, str(path), _too_large(max(size, len(data)), max_bytes), SOURCE_FORMS)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise invalid(field, str(path), f"not UTF-8 text (byte {err.start})", SOURCE_FORMS) from None


def load_declaration(source: Any, field: str = "desired", *, max_bytes: int = MAX_DECLARATION_BYTES) -> Any:
    """The declaration's data: a mapping or list as it is, a file (:func:`declaration_path`) read,
    other text parsed as JSON, else as YAML; all of it bounded as the module docstring says."""
    check_count(max_bytes, "max_bytes", 1)
    if isinstance(source, (Mapping, list, tuple)):
        return source
    path = declaration_path(source)
    if path is not None:
        text = read_declaration_file(path, field, max_bytes=max_bytes)
        return _parse(text, field, shown=str(path), json_only=path.suffix == ".json")
    if isinstance(source, str):
        # Each character is at least a byte: the cheap test first, then the exact one.
        if len(source) > max_bytes or len(encoded := source.encode("utf-8", "replace")) > max_bytes:
            size = len(source) if len(source) > max_bytes else len(encoded)
            raise invalid(
                field, source, _too_large(size, max_bytes, at_least=size == len(source)), SOURCE_FORMS
            )
        return _parse(source, field, shown=source, json_only=False)
    raise invalid(field, source, f"expected a mapping or text, got {type(source).__name__}", SOURCE_FORMS)


def _too_large(size: int, max_bytes: int, *, at_least: bool = False) -> str:
    return f"{'at least ' if at_least else ''}{size} bytes, more than max_bytes={max_bytes}"


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {excerpt(key)}")
        result[key] = value
    return result


def _parse(text: str, field: str, *, shown: str, json_only: bool) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as err:
        if json_only:
            raise invalid(field, shown, f"not JSON ({err})", SOURCE_FORMS) from None
    except ValueError as err:  # a duplicate key: JSON gives no line, its YAML reading names it
        raise invalid(field, shown, _yaml_refusal(text) or str(err), _RULES) from None
    import yaml  # ships with Airflow; imported only when a YAML declaration is read

    try:
        return yaml.load(text, Loader=_bounded_loader())  # a SafeLoader, bounded
    except yaml.YAMLError as err:
        raise invalid(field, shown, f"neither JSON nor YAML ({_yaml_problem(err)})", SOURCE_FORMS) from None
    except ValueError as err:  # the loader's refusals, or a value it cannot build (a bad date)
        raise invalid(field, shown, cut(str(err), 160), _RULES) from None


def _yaml_refusal(text: str) -> str | None:
    import yaml

    try:
        yaml.load(text, Loader=_bounded_loader())
    except yaml.YAMLError:
        pass
    except ValueError as err:
        return str(err)
    return None


def _at(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _yaml_problem(err: Any) -> str:
    """The parser's problem and where, without its quote of the input (a line can be long)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or type(err).__name__
    return cut(str(problem), 160) + _at(mark)


@functools.cache
def _bounded_loader() -> type[Any]:
    """A ``yaml.SafeLoader`` that refuses anchors, aliases and duplicate keys (built on first use)."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml has no type stubs here
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise ValueError(f"anchors and aliases (&name, *name) are not allowed{_at(event.start_mark)}")
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = lines.get(key)
                except TypeError:
                    break  # an unhashable key: SafeConstructor's own error says so
                if first is not None:
                    raise ValueError(f"duplicate key {excerpt(key)} at line {line} (first at line {first})")
                lines[key] = line
            return super().construct_mapping(node, deep=deep)

    return BoundedLoader
