"""One error model: every exception class in ``exceptions.py``, drawn truly in its docstring, pickling intact."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import re

import pytest

import airflow_provider_motherduck
from airflow_provider_motherduck import exceptions

#: One instance of every exception class, with its fields set (Airflow pickles a task's error).
INSTANCES: list[BaseException] = [
    exceptions.MotherDuckError("boom"),
    exceptions.MotherDuckConfigError("no token"),
    exceptions.MotherDuckSQLError("no session"),
    *(
        cls("no such role", "DROP ROLE", "postgres", "check the name")
        for cls in (
            exceptions.MotherDuckSQLNotFoundError,
            exceptions.MotherDuckSQLExistsError,
            exceptions.MotherDuckSQLPermissionError,
            exceptions.MotherDuckPlanLimitError,
            exceptions.MotherDuckSQLUnsupportedError,
        )
    ),
    *(
        cls("gone", status_code=404, code="NOT_FOUND", issues=[{"path": ["a"], "message": "m"}], method="GET")
        for cls in (
            exceptions.MotherDuckAPIError,
            exceptions.MotherDuckAuthError,
            exceptions.MotherDuckNotFoundError,
            exceptions.MotherDuckConflictError,
            exceptions.MotherDuckRouteNotFoundError,
        )
    ),
    exceptions.TokenIssueError(
        "record lost", token={"id": "t1", "name": "airflow"}, revoked=False, delivered=True, problem="p"
    ),
    exceptions.SkippedError("not started"),
    exceptions.MotherDuckStoppedError("stopped", {"done": []}),
    exceptions.MotherDuckRotationError("part-way", {"still_live_ids": ["t1"], "revoked_ids": []}),
    exceptions.MotherDuckReconcileError("drift", {"plan": [{"action": "create_user"}]}),
    exceptions.SQLDriverError("connection reset", "SELECT 1"),
]


def own_exception_classes(module: object) -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == getattr(module, "__name__", None)
    }


def package_modules() -> list[str]:
    """Every module of the package but the emulator (``testing``: its own HTTP error model,
    independent of the client by design)."""
    prefix = airflow_provider_motherduck.__name__ + "."
    return [
        info.name
        for info in pkgutil.walk_packages(airflow_provider_motherduck.__path__, prefix)
        if not info.name.startswith(prefix + "testing")
    ]


def drawn_tree() -> dict[str, str]:
    """Each class in the module docstring's tree, to its parent there."""
    doc = exceptions.__doc__ or ""
    block = doc.split("The hierarchy::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"^(?P<indent>[ │├└─]*)(?P<name>\w+)", line)
        assert match, line
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[match["name"]] = stack[-1][1]
        stack.append((depth, match["name"]))
    return parents


def test_every_exception_class_of_the_package_is_defined_in_exceptions() -> None:
    elsewhere = {
        f"{module}.{name}"
        for module in package_modules()
        for name in own_exception_classes(importlib.import_module(module))
        # A module's private control flow never reaches a user.
        if module != exceptions.__name__ and not name.startswith("_")
    }
    assert not elsewhere, f"exception classes outside exceptions.py: {sorted(elsewhere)}"


def test_the_docstring_draws_every_class_under_its_real_parent() -> None:
    drawn = drawn_tree()
    real = {name: cls.__bases__[0].__name__ for name, cls in own_exception_classes(exceptions).items()}
    assert {name: drawn.get(name) for name in real} == real


@pytest.mark.parametrize("err", INSTANCES, ids=lambda err: type(err).__name__)
def test_pickling_keeps_the_class_the_message_and_the_fields(err: BaseException) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.__dict__) == (type(err), str(err), err.__dict__)


def test_every_class_has_a_pickling_case() -> None:
    assert {type(err) for err in INSTANCES} == set(own_exception_classes(exceptions).values())


def test_a_rotation_error_names_the_ids_still_live() -> None:
    assert exceptions.MotherDuckRotationError("x", {"still_live_ids": ["t1", "t2"]}).still_live == [
        "t1",
        "t2",
    ]


def test_advice_keeps_the_class_and_the_fields() -> None:
    err = exceptions.MotherDuckNotFoundError("gone", status_code=404, code="NOT_FOUND", path="/v1/users/x")
    advised = err.with_advice("check the username")
    assert type(advised) is type(err)
    assert (advised.code, advised.path, advised.message) == (
        "NOT_FOUND",
        "/v1/users/x",
        "gone | check the username",
    )
    assert str(advised).endswith("gone | check the username")
