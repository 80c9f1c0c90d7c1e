"""Size a Duckling down whenever its account goes idle: a DAG scheduled on an asset watcher.

The asset ``motherduck_etl_loader_idle`` is watched in Airflow's triggerer by
``MotherDuckActiveAccountsEventTrigger``: it fires each time ``etl_loader`` goes from busy to idle (no
Duckling active or cooling down any more), once per transition, looking every minute; watchers
and deferred sensors on the same connection share one request per interval. Each event runs this
DAG once: ``resize_down`` merges a ``standard`` read/write instance into the account's Duckling
config (read, merge, write; nothing is written when the size is standard already).

Needs Airflow 3 (asset watchers); on Airflow 2 this file defines no DAG. Uses the
``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_resize_when_idle]
from datetime import datetime

from airflow_provider_motherduck.operators import MotherDuckSetDucklingConfigOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, AssetWatcher
except ImportError:  # Airflow 2.11: no asset watchers
    AssetWatcher = None

if AssetWatcher is not None:
    from airflow_provider_motherduck.triggers import MotherDuckActiveAccountsEventTrigger

    # [START howto_trigger_motherduck_active_accounts_event]
    etl_loader_idle = Asset(
        "motherduck_etl_loader_idle",
        watchers=[
            AssetWatcher(
                name="etl_loader_idle",
                trigger=MotherDuckActiveAccountsEventTrigger(
                    usernames=["etl_loader"],
                    statuses=["active", "cooldown"],
                    expect_active=False,
                    poke_interval=60,
                ),
            )
        ],
    )
    # [END howto_trigger_motherduck_active_accounts_event]

    with DAG(
        dag_id="example_motherduck_resize_when_idle",
        schedule=[etl_loader_idle],
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["example", "motherduck"],
        doc_md=__doc__,
    ):
        resize_down = MotherDuckSetDucklingConfigOperator(
            task_id="resize_down",
            username="etl_loader",
            read_write={"instance_size": "standard"},
        )
# [END example_motherduck_resize_when_idle]
