"""The Variable store: the in-memory one behaves as a mapping and as Airflow's Variables, the
installed one is what the provider uses, and the Airflow one talks to real Airflow."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_motherduck._compat import AIRFLOW_V_3
from airflow_provider_motherduck.workflows.delivery import (
    AirflowVariableStore,
    InMemoryVariableStore,
    SecretDestination,
    VariableStore,
    forget,
    use_variable_store,
    variable_store,
)


def test_in_memory_store_is_a_mapping_and_a_store() -> None:
    store = InMemoryVariableStore({"seeded": "1"})
    as_store: VariableStore = store
    as_store.set("k", "v", description="what it is")
    store["m"] = "w"
    assert (store.get("k"), store.get("absent"), dict(store)) == (
        "v",
        None,
        {"seeded": "1", "k": "v", "m": "w"},
    )
    assert store.descriptions["k"] == "what it is"
    as_store.delete("absent")  # absent is fine
    del store["m"]
    with pytest.raises(KeyError):
        del store["m"]
    assert (len(store), "k" in store, store.writes) == (
        2,
        True,
        ["set k", "set m", "delete absent", "delete m"],
    )


def test_repr_names_keys_never_values() -> None:
    store = InMemoryVariableStore({"md_token": "opaque-secret-value"})
    assert "opaque-secret-value" not in repr(store)
    assert "md_token" in repr(store)


def test_refused_writes_fail_like_a_database_then_pass() -> None:
    store = InMemoryVariableStore()
    store.refuse_write("k", 2)
    store.set("k", "first")
    with pytest.raises(RuntimeError, match="refused SET"):
        store.set("k", "second")
    store.set("k", "third")
    store.refuse_write("k", None)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            store.delete("k")
    store.allow_write("k")
    store.delete("k")
    assert "k" not in store


def test_text_only() -> None:
    with pytest.raises(TypeError, match="takes text"):
        InMemoryVariableStore().set("k", 3)  # type: ignore[arg-type]


def test_concurrent_writers_lose_nothing() -> None:
    store = InMemoryVariableStore()

    def write(n: int) -> None:
        for i in range(200):
            store.set(f"k{n}_{i}", str(i))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(store) == 800


def test_the_installed_store_serves_every_read_and_write(motherduck_variables: InMemoryVariableStore) -> None:
    assert variable_store() is motherduck_variables
    destination = SecretDestination("md_secret")
    destination.deliver("opaque-value", "test")
    assert motherduck_variables["md_secret"] == "opaque-value"
    assert forget("md_secret") == ["md_secret"]
    assert "md_secret" not in motherduck_variables


def test_none_installs_airflow_again() -> None:
    mine = InMemoryVariableStore()
    use_variable_store(mine)
    try:
        assert variable_store() is mine
    finally:
        use_variable_store(None)
    assert isinstance(variable_store(), AirflowVariableStore)


@pytest.mark.skipif(AIRFLOW_V_3, reason="outside the task runner, Airflow 3's Variables need a supervisor")
def test_airflow_store_reads_and_writes_airflow_variables(airflow_db: str) -> None:
    store = AirflowVariableStore()
    store.delete("md_store_test")
    assert store.get("md_store_test") is None
    store.set("md_store_test", "v1", description="from the store test")
    assert store.get("md_store_test") == "v1"
    store.delete("md_store_test")
    store.delete("md_store_test")  # absent is fine
    assert store.get("md_store_test") is None
