"""Every dotted ``airflow_provider_motherduck...`` path the README, the docs and the examples name imports."""

from __future__ import annotations

import importlib
import re

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from tests.support import REPO_ROOT

SOURCES = [
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "docs").rglob("*.rst")),
    *sorted((REPO_ROOT / "example_dags").glob("*.py")),
]
PATH_RE = re.compile(r"\bairflow_provider_motherduck(?:\.[A-Za-z_]\w*)+")


def named_paths() -> dict[str, list[str]]:
    """Each dotted path to the files that name it."""
    found: dict[str, list[str]] = {}
    for source in SOURCES:
        for path in sorted(set(PATH_RE.findall(source.read_text()))):
            found.setdefault(path, []).append(str(source.relative_to(REPO_ROOT)))
    return found


NAMED = named_paths()


def resolve(dotted: str) -> object:
    """The module, or the attribute of the longest importable module prefix, that ``dotted`` names."""
    parts = dotted.split(".")
    cut = len(parts)
    while True:
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
            break
        except ModuleNotFoundError as err:
            if cut == 1 or not dotted.startswith(err.name or "\0"):
                raise  # a missing dependency, not a part of the path that is an attribute
            cut -= 1
    for name in parts[cut:]:
        found = getattr(found, name)
    return found


def test_the_docs_name_paths() -> None:
    assert "airflow_provider_motherduck.operators.onboarding.offboard_account_group" in NAMED
    assert len(NAMED) > 50


@pytest.mark.parametrize("dotted", sorted(NAMED))
def test_every_named_path_imports(dotted: str) -> None:
    try:
        resolve(dotted)
    except ImportError as err:
        if not AIRFLOW_V_3 and "needs Airflow 3.0 or later" in str(err):
            pytest.skip(f"{dotted}: Airflow 3 only, and importing it on Airflow 2 says so")
        pytest.fail(f"{dotted} (named in {', '.join(NAMED[dotted])}) does not import: {err}")
    except AttributeError as err:
        pytest.fail(f"{dotted} (named in {', '.join(NAMED[dotted])}) does not import: {err}")


@pytest.mark.parametrize(
    "dotted",
    [
        "airflow_provider_motherduck.operators.onboarding.no_such_thing",
        "airflow_provider_motherduck.no_such.Thing",
    ],
)
def test_a_wrong_path_is_caught(dotted: str) -> None:
    with pytest.raises(AttributeError):
        resolve(dotted)
