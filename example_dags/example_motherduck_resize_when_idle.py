"""Size a Duckling down whenever its account goes idle: a DAG scheduled on an asset watcher.

The asset ``motherduck_notebook_runner_idle`` is watched in Airflow's triggerer by
``MotherDuckActiveAccountsEventTrigger``: it fires each time ``notebook_runner`` (the account the
analysts' notebooks query with) goes from busy to idle (no Duckling active or cooling down any
more), once per transition, looking every minute; watchers and deferred sensors on the same
connection share one request per interval. Each event runs this DAG once: ``resize_down`` merges
a ``standard`` read/write instance into the account's Duckling config (read, merge, write;
nothing is written when the size is standard already).

Manages ``notebook_runner``'s read/write instance size; no other example writes to that account.
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
    notebook_runner_idle = Asset(
        "motherduck_notebook_runner_idle",
        watchers=[
            AssetWatcher(
                name="notebook_runner_idle",
                trigger=MotherDuckActiveAccountsEventTrigger(
                    usernames=["notebook_runner"],
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
        schedule=[notebook_runner_idle],
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["example", "motherduck"],
        doc_md=__doc__,
    ):
        resize_down = MotherDuckSetDucklingConfigOperator(
            task_id="resize_down",
            username="notebook_runner",
            read_write={"instance_size": "standard"},
        )
# [END example_motherduck_resize_when_idle]
