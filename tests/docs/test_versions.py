"""One truth about the supported Airflow versions: what the README, docs/index.rst and
pyproject.toml say is what CI runs.

CI's list is read from the build itself: ``.ci/run`` runs ``make test`` (the ``test-3.3`` and
``test-2.11`` targets) and ``make test-<minor>`` for each of the Makefile's ``OLDER_MINORS``; each
target's virtualenv is installed from ``requirements/airflow-<minor>.txt``, whose
``apache-airflow==`` pin is the version tested.
"""

from __future__ import annotations

import re

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.support import REPO_ROOT

VERSION = re.compile(r"\b(\d+\.\d+\.\d+)\b")


def ci_versions() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    run = re.findall(r"^make ([\w.-]+)$", ci, flags=re.MULTILINE)
    older = re.search(r"^OLDER_MINORS := (.+)$", makefile, flags=re.MULTILINE)
    assert older, "OLDER_MINORS is not in the Makefile"
    minors = []
    if "test" in run:
        test = re.search(r"^test: (.+)$", makefile, flags=re.MULTILINE)
        assert test, "the Makefile has no test target"
        minors += [t.removeprefix("test-") for t in test[1].split() if t.startswith("test-")]
    minors += [m for m in older[1].split() if f"test-{m}" in run]
    pins = set()
    for minor in minors:
        lock = (REPO_ROOT / "requirements" / f"airflow-{minor}.txt").read_text(encoding="utf-8")
        pin = re.search(r"^apache-airflow==(\S+)", lock, flags=re.MULTILINE)
        assert pin, f"requirements/airflow-{minor}.txt pins no apache-airflow"
        pins.add(pin[1])
    return pins


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_ci_runs_2_11_and_each_airflow_3_minor() -> None:
    assert {Version(v).release[:2] for v in ci_versions()} == {(2, 11), (3, 0), (3, 1), (3, 2), (3, 3)}


def test_readme_says_what_ci_runs() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = _section(readme, "| Airflow | tested in CI |", "\n\n")
    assert set(VERSION.findall(table)) == ci_versions()
    supported = re.search(
        r"Supported: \*\*Airflow 2\.11 and every Airflow 3 minor \((3\.\d+) to (3\.\d+)\)\*\*", readme
    )
    assert supported, "the README's 'Supported:' line changed: update this test"
    first, last = (int(minor.split(".")[1]) for minor in supported.groups())
    said = {(2, 11)} | {(3, minor) for minor in range(first, last + 1)}
    assert said == {Version(v).release[:2] for v in ci_versions()}


def test_docs_index_says_what_ci_runs() -> None:
    index = (REPO_ROOT / "docs" / "index.rst").read_text(encoding="utf-8")
    cell = _section(index, "   * - Apache Airflow", "   * - Python")
    assert set(VERSION.findall(cell)) == ci_versions()


def test_pyproject_says_what_ci_runs_and_allows_it() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    comment = re.search(r"^# Supported range: .*tested on (.+)\.$", pyproject, flags=re.MULTILINE)
    assert comment, "pyproject.toml's 'Supported range' comment changed: update this test"
    assert set(VERSION.findall(comment[1])) == ci_versions()
    requirement = re.search(r'"apache-airflow([<>=!~][^"]*)"', pyproject)
    assert requirement
    assert all(Version(v) in SpecifierSet(requirement[1]) for v in ci_versions())
