"""Give a new service account data to read: a role, a restricted share, its grant and attachment.

1. ``create_role`` creates the custom role ``warehouse_readers`` (needs an Admin and MotherDuck's
   Business plan) and ``grant_explorer`` puts the preset role ``explorer`` into it, so its
   holders hold ``explorer`` through it.
2. ``create_share`` creates the restricted, hidden share ``warehouse_orders`` of the database
   ``warehouse`` holding only its table ``main.orders``, owned by the service account
   ``warehouse_owner`` (``as_user``: created as the owner, through a short-lived token).
3. ``onboard`` brings ``report_builder`` to its declared state: the user, a 90-day ``airflow``
   token in the Variable ``motherduck_token_report_builder``, the role, the owner's read grant on
   the share, and the share attached as the account itself under the alias ``warehouse_orders``.
4. ``count_orders`` reads the table through that attachment as ``report_builder`` and returns
   the row count.
5. ``access_report`` logs the account's access: its roles (direct or inherited), the shares it
   can read and through which grant, what it attached, and the rules it breaks.

Every SQL step runs over the connection's SQL transport (extra ``sql_transport``); acting as a
service account mints a 300-second token for it and revokes it before the task ends, so none is
left live. Safe to re-run: every step reads first, and a second run changes nothing.

Manages ``report_builder`` (the user, its ``airflow`` tokens, the Variable
``motherduck_token_report_builder`` and its attachment ``warehouse_orders``), the role
``warehouse_readers`` and the share ``warehouse_orders``; it reads the database ``warehouse`` of
``warehouse_owner``, an account it expects to exist (the demo seeds it). No other example names
them. Uses the ``motherduck_default`` connection.
"""

from __future__ import annotations

# [START example_motherduck_data_access]
import logging
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook
from airflow_provider_motherduck.operators import (
    MotherDuckAccessAuditOperator,
    MotherDuckCreateRoleOperator,
    MotherDuckCreateShareOperator,
    MotherDuckGrantRoleOperator,
    MotherDuckOnboardAccountOperator,
)

OWNER = "warehouse_owner"  # a service account owning the database DATABASE
DATABASE = "warehouse"
ROLE = "warehouse_readers"
SHARE = "warehouse_orders"
ACCOUNT = "report_builder"
ALIAS = "warehouse_orders"  # the account's name for the attached share
TABLE = f"{ALIAS}.main.orders"

log = logging.getLogger(__name__)

with DAG(
    dag_id="example_motherduck_data_access",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["example", "motherduck"],
    doc_md=__doc__,
):
    create_role = MotherDuckCreateRoleOperator(task_id="create_role", role=ROLE)
    grant_explorer = MotherDuckGrantRoleOperator(task_id="grant_explorer", role="explorer", to_role=ROLE)
    create_share = MotherDuckCreateShareOperator(
        task_id="create_share",
        share=SHARE,
        database=DATABASE,
        access="restricted",  # only those granted read it
        visibility="hidden",
        update="automatic",
        include=["main.orders"],  # a filtered share: this table only
        as_user=OWNER,
    )
    onboard = MotherDuckOnboardAccountOperator(
        task_id="onboard",
        username=ACCOUNT,
        token_name="airflow",
        ttl="90 days",
        variable_key=f"motherduck_token_{ACCOUNT}",
        roles=[ROLE],
        shares=[{"share": SHARE, "owner": OWNER, "alias": ALIAS}],
    )

    @task
    def count_orders() -> dict[str, object]:
        """Read through the attachment as the account: what it can reach, it can count."""
        hook = MotherDuckHook()
        try:
            rows = hook.count_rows(TABLE, as_user=ACCOUNT)
        finally:
            hook.close()
        log.info("%s reads %d row(s) of %s.", ACCOUNT, rows, TABLE)
        return {"username": ACCOUNT, "table": TABLE, "row_count": rows}

    access_report = MotherDuckAccessAuditOperator(
        task_id="access_report",
        usernames=[ACCOUNT],
        restricted_shares=[SHARE],  # breaks restricted_share_open if ever opened to the organisation
        read_attachments=True,
    )

    create_role >> grant_explorer
    [grant_explorer, create_share] >> onboard >> count_orders() >> access_report
# [END example_motherduck_data_access]
