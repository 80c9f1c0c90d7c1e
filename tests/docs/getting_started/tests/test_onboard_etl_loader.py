"""A first test: the onboarding DAG against the emulator, with the provider's pytest fixtures."""

from __future__ import annotations

import runpy
from pathlib import Path

from airflow_provider_motherduck.testing import MotherDuckEmulator

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "onboard_etl_loader.py"


def test_onboarding_twice_makes_one_account_with_one_token(
    motherduck_emulator: MotherDuckEmulator, motherduck_connection: str, motherduck_dag_run
) -> None:
    dag = runpy.run_path(str(DAG_FILE))["dag"]

    first = motherduck_dag_run(dag)
    writes = len([r for r in motherduck_emulator.journal if r.method != "GET"])
    second = motherduck_dag_run(dag)

    assert first.states == second.states == {"onboard": "success"}
    assert motherduck_emulator.users() == ["admin", "etl_loader"]
    assert [t["name"] for t in motherduck_emulator.tokens("etl_loader")] == ["airflow"]
    assert motherduck_emulator.duckling_config("etl_loader")["read_write"]["instance_size"] == "standard"
    assert len([r for r in motherduck_emulator.journal if r.method != "GET"]) == writes  # 2nd run: no write
