"""How tokens are named: run markers, the rotated name of a run, and "the logical name".

A rotation names the token it creates ``<token_name>@<marker>``, the marker naming the logical
run: the DAG run's logical date (``20250101T000000Z``, microseconds added when there are any) or,
for runs without one, ``run-`` and 16 hex digits of the SHA-256 of the run id. Retries, cleared
tasks and ``airflow dags test`` of the same logical date all find the token of "their" run.

The logical name ``token_name`` covers the token named exactly ``token_name`` (made before
rotation was adopted) and those named ``token_name@<marker>``. ``airflow@prod`` is not a rotation
of ``airflow``: rotate each logical name with one task only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

from airflow_provider_motherduck.exceptions import MotherDuckError, invalid
from airflow_provider_motherduck.validation import TOKEN_NAME_MAX_LENGTH, check_token_name

#: Between the logical token name and the run marker in a token's MotherDuck name.
MARKER_SEPARATOR: Final = "@"
#: The longest suffix a run marker adds: ``@20250101T000000.123456Z``.
MARKER_MAX_LENGTH: Final = 24
#: The longest logical ``token_name`` that leaves room for the marker.
LOGICAL_NAME_MAX_LENGTH: Final = TOKEN_NAME_MAX_LENGTH - MARKER_MAX_LENGTH
_MARKER_RE = r"(?:\d{8}T\d{6}(?:\.\d{6})?Z|run-[0-9a-f]{16})"


def run_marker(context: Mapping[str, Any]) -> str:
    """The marker of the logical run in ``context``: its logical date, else a digest of its run id."""
    dag_run = context.get("dag_run")
    logical = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    if isinstance(logical, datetime):
        moment = logical.astimezone(timezone.utc) if logical.tzinfo else logical.replace(tzinfo=timezone.utc)
        fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
        return moment.strftime("%Y%m%dT%H%M%S") + fraction + "Z"
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None)
    if isinstance(run_id, str) and run_id:
        return "run-" + hashlib.sha256(run_id.encode()).hexdigest()[:16]
    raise MotherDuckError(
        "The task context has neither a logical date nor a run_id: the rotation cannot tell one run "
        "from another, so a retry could not find the token it made. Run it as an Airflow task."
    )


def rotated_name(token_name: str, marker: str) -> str:
    """The MotherDuck name of the token a run creates: ``<token_name>@<marker>``."""
    return f"{token_name}{MARKER_SEPARATOR}{marker}"


def name_pattern(token_name: str) -> re.Pattern[str]:
    """Matches the MotherDuck names of the logical name: the bare name or the name with a run marker."""
    return re.compile(re.escape(token_name) + f"(?:{re.escape(MARKER_SEPARATOR)}{_MARKER_RE})?")


def check_logical_name(value: Any, field: str = "token_name") -> str:
    """A valid token name short enough to take a run marker."""
    name = check_token_name(value, field)
    if len(name) > LOGICAL_NAME_MAX_LENGTH:
        raise invalid(
            field,
            name[:20] + "...",
            f"it has {len(name)} characters, leaving no room for the run marker (up to "
            f"{MARKER_MAX_LENGTH} more)",
            f"1 to {LOGICAL_NAME_MAX_LENGTH} characters",
        )
    return name
