"""Every code block of the documentation is either included from tested code or run here.

The rules, for the reStructuredText sources under ``docs/``:

- **Python** appears only as ``.. doctest::`` blocks (with hidden ``.. testsetup::`` and
  ``.. testcleanup::`` blocks around them). This test runs them, page by page, in one namespace
  per page: set-up first, then each doctest in order, then the clean-up. Airflow's log lines,
  which it prints to stdout, are not part of the expected output.
- **Whole DAGs and test files** appear only through ``.. literalinclude::`` of a file that the
  test suite runs (``example_dags/``, ``tests/``, the package); its ``:start-after:`` /
  ``:end-before:`` markers or ``:pyobject:`` must exist, once. Every example DAG is shown
  somewhere.
- **Shell** appears only as ``.. code-block:: bash`` whose every command is on a small
  allow-list, each checked here: ``make TARGET`` (the target exists in the Makefile),
  ``pip install`` of this package and its declared extras, ``export AIRFLOW_CONN_...=...``
  (parsed by Airflow into a MotherDuck connection that the hook accepts), ``export VAR=...`` of
  a variable the docs explain, and ``python -m airflow_provider_motherduck.testing ...`` (parsed
  by the module's own argument parser).
- Nothing else: no ``::`` literal blocks, no other languages, no bare ``>>>`` blocks, no
  ``testcode``. Graphviz diagrams are not code blocks.

It needs no Sphinx, so it runs on every Airflow version the suite covers.
"""

from __future__ import annotations

import ast
import doctest
import json
import logging
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

DOCS = REPO_ROOT / "docs"
EXAMPLES = REPO_ROOT / "example_dags"
TESTED_ROOTS = (EXAMPLES, REPO_ROOT / "tests", REPO_ROOT / "airflow_provider_motherduck")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE  # docs/conf.py: doctest_default_flags
SHELL_LANGUAGES = ("bash", "console", "shell", "sh")
# Variables a bash block may export besides AIRFLOW_CONN_*: each is explained where it is used.
EXPORTABLE = {"MOTHERDUCK_TOKEN", "AIRFLOW__CORE__TEST_CONNECTION"}
# Pages whose every shell command a test of their own runs, in order (tests/docs/test_<page>.py).
RUN_WHOLE = {"getting-started.rst"}

# Directives whose body is more reST, which may hold code blocks of its own.
CONTAINERS = frozenset(
    [
        "note",
        "warning",
        "tip",
        "important",
        "admonition",
        "figure",
        "list-table",
        "only",
        "container",
        "topic",
        "sidebar",
        "rubric",
        "seealso",
    ]
)

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\.\s+(?P<name>[\w:-]+)::\s*(?P<arg>.*)$")
_OPTION = re.compile(r"^\s*:(?P<key>[\w-]+):\s*(?P<value>.*)$")
# Log lines that Airflow 3 (structlog) and Airflow 2 (logging) print to stdout.
_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT[\d:.]+Z? \[\s*\w+\s*\] .*|\[\d{4}-\d\d-\d\d[T ][\d:.,+]+\] \{[^}]*\} [A-Z]+ - .*)$"
)


@dataclass
class Block:
    """One directive or literal block of a page."""

    page: Path
    line: int  # 1-based line of the directive
    kind: str  # directive name, or "::" for a literal block
    argument: str
    options: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def where(self) -> str:
        return f"{self.page.relative_to(REPO_ROOT)}:{self.line}"


def pages() -> list[Path]:
    return sorted(
        p for p in DOCS.rglob("*") if p.is_file() and p.suffix in (".rst", ".md") and "_build" not in p.parts
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _take_indented(lines: list[str], start: int, parent_indent: int) -> tuple[list[str], int]:
    """Lines after ``start`` indented deeper than ``parent_indent`` (blank lines included)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > parent_indent):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], end


def _dedent(lines: list[str]) -> str:
    width = min((_indent(line) for line in lines if line.strip()), default=0)
    return "\n".join(line[width:] for line in lines)


def parse(page: Path) -> Iterator[Block]:
    """The directives and literal blocks of one reST page, nested ones included."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _DIRECTIVE.match(line)
        if match:
            indent = len(match["indent"])
            inner, end = _take_indented(lines, i + 1, indent)
            options: dict[str, str] = {}
            k = 0
            while k < len(inner) and (opt := _OPTION.match(inner[k])):
                options[opt["key"]] = opt["value"].strip()
                k += 1
            yield Block(
                page, i + 1, match["name"], match["arg"].strip(), options, _dedent(inner[k:]).strip("\n")
            )
            # Only the body of content directives can hold more blocks: look inside those.
            if match["name"] in CONTAINERS:
                i += 1 + k
                continue
            i = end
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            body, end = _take_indented(lines, i + 1, _indent(line))
            if any(b.strip() for b in body):
                yield Block(page, i + 1, "::", "", {}, _dedent(body).strip("\n"))
                i = end
                continue
        if line.lstrip().startswith(">>>"):
            yield Block(page, i + 1, ">>>", "", {}, line.strip())
        i += 1


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in parse(page)]


# -- the rules ------------------------------------------------------------------------------------


ALLOWED = {
    "doctest",
    "testsetup",
    "testcleanup",
    "literalinclude",
    "code-block",
    "code",
    "sourcecode",
}
CODE_LIKE = {"::", ">>>", "testcode", "testoutput", "parsed-literal", "highlight", "include"}


def test_docs_have_pages() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in pages()}
    assert "index.rst" in names
    assert not [n for n in names if n.endswith(".md")], "write pages in reST: the checks here read reST"


def test_every_code_block_is_included_or_executed() -> None:
    problems = []
    for block in all_blocks():
        if block.kind in CODE_LIKE:
            problems.append(f"{block.where()}: {block.kind} block: use .. doctest:: or .. literalinclude::")
        elif block.kind in ("code-block", "code", "sourcecode"):
            if block.argument not in SHELL_LANGUAGES:
                problems.append(
                    f"{block.where()}: code-block {block.argument!r}: only shell is allowed inline "
                    "(Python goes in .. doctest:: or .. literalinclude::)"
                )
        elif block.kind == "doctest" and block.argument:
            problems.append(f"{block.where()}: doctest groups are not used: one namespace per page")
        elif block.kind in ("testsetup", "testcleanup") and block.argument:
            problems.append(f"{block.where()}: {block.kind} groups are not used: one namespace per page")
    assert problems == []


# -- literalinclude --------------------------------------------------------------------------------


def _includes() -> list[Block]:
    return [b for b in all_blocks() if b.kind == "literalinclude"]


def _included_path(block: Block) -> Path:
    arg = block.argument
    return (DOCS / arg.lstrip("/")) if arg.startswith("/") else (block.page.parent / arg).resolve()


def test_literalincludes_come_from_tested_files_and_their_markers_exist() -> None:
    problems = []
    for block in _includes():
        path = _included_path(block)
        if not path.is_file():
            problems.append(f"{block.where()}: {block.argument} does not exist")
            continue
        if not any(path.is_relative_to(root) for root in TESTED_ROOTS):
            problems.append(f"{block.where()}: {block.argument} is not in a tested folder")
        text = path.read_text(encoding="utf-8")
        for key in ("start-after", "end-before", "start-at", "end-at"):
            marker = block.options.get(key)
            if marker is not None and text.count(marker) != 1:
                problems.append(f"{block.where()}: :{key}: {marker!r} found {text.count(marker)} times")
        if "pyobject" in block.options:
            names = {
                node.name
                for node in ast.walk(ast.parse(text))
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            }
            if block.options["pyobject"].split(".")[-1] not in names:
                problems.append(f"{block.where()}: no {block.options['pyobject']} in {block.argument}")
        if "lines" in block.options:
            problems.append(f"{block.where()}: :lines: drifts with the file: use markers or :pyobject:")
    assert problems == []


def test_every_example_dag_is_shown() -> None:
    shown = {_included_path(block) for block in _includes()}
    missing = [p.name for p in sorted(EXAMPLES.glob("*.py")) if p.resolve() not in shown]
    assert missing == [], "document these example DAGs (literalinclude them in docs/)"


def test_example_markers_are_balanced() -> None:
    for path in sorted(EXAMPLES.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        starts = re.findall(r"# \[START ([\w.-]+)\]", text)
        ends = re.findall(r"# \[END ([\w.-]+)\]", text)
        assert sorted(starts) == sorted(ends), path.name
        assert len(starts) == len(set(starts)), path.name


# -- shell blocks ----------------------------------------------------------------------------------


def _shell_blocks() -> list[Block]:
    return [
        b
        for b in all_blocks()
        if b.kind in ("code-block", "code", "sourcecode") and b.argument in SHELL_LANGUAGES
    ]


def _commands(body: str) -> Iterator[str]:
    joined = body.replace("\\\n", " ")
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if line and not line.startswith("#"):
            yield line


def _make_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", text, flags=re.MULTILINE))


def _check_pip(words: list[str]) -> list[str]:
    """Only this distribution, with extras it declares (read from its installed metadata)."""
    dist = metadata.metadata("airflow-provider-motherduck")
    name = dist["Name"]
    extras = set(dist.get_all("Provides-Extra") or [])
    problems = []
    for spec in words[2:]:
        match = re.fullmatch(r"([\w.-]+)(?:\[([\w,\s-]+)\])?", spec)
        if not match or match[1] != name:
            problems.append(f"pip installs only {name}, not {spec!r}")
        elif match[2] and not {e.strip() for e in match[2].split(",")} <= extras:
            problems.append(f"unknown extra in {spec!r}; declared: {sorted(extras)}")
    return problems


def _check_connection_env(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Let Airflow parse the variable as it would, then let the hook read its settings."""
    from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook

    conn_id = name.removeprefix("AIRFLOW_CONN_").lower()
    value = value.replace("<admin token>", "an-admin-token")
    monkeypatch.setenv(name, value)
    monkeypatch.delenv("MOTHERDUCK_TOKEN", raising=False)
    conn = MotherDuckHook.get_connection(conn_id)
    if conn.conn_type != "motherduck":
        return [f"{name}: conn_type is {conn.conn_type!r}, not 'motherduck'"]
    settings = MotherDuckHook(conn_id).settings  # raises on a bad URL, extra or missing token
    if settings.token != "an-admin-token":
        return [f"{name}: the token did not reach the hook"]
    if value.startswith("{"):
        json.loads(value)
    return []


def _check_command(command: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    words = shlex.split(command, comments=True)
    if not words:
        return []
    if words[0] == "make":
        unknown = [t for t in words[1:] if t not in _make_targets()]
        return [f"make target(s) {unknown} not in the Makefile"] if unknown else []
    if words[:2] == ["pip", "install"]:
        return _check_pip(words)
    if words[0] == "export" and len(words) == 2 and "=" in words[1]:
        name, value = words[1].split("=", 1)
        if name.startswith("AIRFLOW_CONN_"):
            return _check_connection_env(name, value, monkeypatch)
        return [] if name in EXPORTABLE else [f"export of {name} is not on the allow-list"]
    if words[:3] == ["python", "-m", "airflow_provider_motherduck.testing"]:
        from airflow_provider_motherduck.testing.__main__ import _parser

        try:
            _parser().parse_args(words[3:])
        except SystemExit:
            return [f"the emulator's parser refuses {words[3:]}"]
        return []
    return ["not on the allow-list of shell commands"]


def test_shell_blocks_run_only_allowed_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = []
    for block in _shell_blocks():
        if block.page.name in RUN_WHOLE:
            continue
        for command in _commands(block.body):
            problems += [f"{block.where()}: {command!r}: {p}" for p in _check_command(command, monkeypatch)]
    assert problems == []


# -- doctests --------------------------------------------------------------------------------------


class _Checker(doctest.OutputChecker):
    """Compares output without the log lines Airflow prints to stdout."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        kept = "".join(
            line for line in got.splitlines(keepends=True) if not _LOG_LINE.match(line.rstrip("\n"))
        )
        return super().check_output(want, kept, optionflags)

    def output_difference(self, example: doctest.Example, got: str, optionflags: int) -> str:
        kept = "".join(
            line for line in got.splitlines(keepends=True) if not _LOG_LINE.match(line.rstrip("\n"))
        )
        return super().output_difference(example, kept, optionflags)


def _flags(block: Block) -> int:
    flags = FLAGS
    for word in block.options.get("options", "").replace(",", " ").split():
        flag = doctest.OPTIONFLAGS_BY_NAME[word[1:]]
        flags = flags | flag if word.startswith("+") else flags & ~flag
    return flags


DOCTEST_PAGES = [p for p in pages() if any(b.kind == "doctest" for b in parse(p))]


def test_there_are_doctests() -> None:
    assert len(DOCTEST_PAGES) >= 5


@pytest.mark.parametrize("page", DOCTEST_PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_doctests_of_page(page: Path) -> None:
    blocks = list(parse(page))
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    saved_environment = dict(os.environ)
    name = page.relative_to(REPO_ROOT).as_posix()
    failed = attempted = 0
    report: list[str] = []
    logging.disable(logging.CRITICAL)  # Airflow 2 logs through logging; 3.x lines are filtered out
    try:
        for block in blocks:
            if block.kind == "testsetup":
                exec(compile(block.body, f"{name}:{block.line}", "exec"), namespace)
        for block in blocks:
            if block.kind != "doctest":
                continue
            test = doctest.DocTestParser().get_doctest(block.body, namespace, name, name, block.line)
            runner = doctest.DocTestRunner(checker=_Checker(), optionflags=_flags(block))
            out: list[str] = []
            result = runner.run(test, out=out.append, clear_globs=False)
            namespace.update(test.globs)  # the next block sees what this one defined
            failed += result.failed
            attempted += result.attempted
            report += out
    finally:
        try:
            for block in blocks:
                if block.kind == "testcleanup":
                    exec(compile(block.body, f"{name}:{block.line}", "exec"), namespace)
        finally:
            os.environ.clear()
            os.environ.update(saved_environment)
            logging.disable(logging.NOTSET)
    assert attempted > 0
    assert failed == 0, "".join(report)
