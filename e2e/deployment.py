"""A real Airflow 3.3 deployment on this machine: its settings, components, REST API and database.

The api-server, scheduler, dag-processor and triggerer (and, with CeleryExecutor, Celery workers)
run as separate processes of one ``AIRFLOW_HOME`` on a PostgreSQL metadata database; every port
is picked free on 127.0.0.1. DAGs are driven through the REST API (simple auth manager, every
user an admin); what the REST API does not show is read from the metadata database.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import requests
from cryptography.fernet import Fernet

from e2e.services import Service, free_port, python_argv, run, tail, wait_for

REPO = Path(__file__).resolve().parent.parent
E2E_DAGS = REPO / "e2e" / "dags"
EXAMPLE_DAGS = REPO / "example_dags"
WORKER_PYTHONPATH = REPO / "e2e" / "pythonpath"

FINISHED = ("success", "failed")


@dataclass
class Deployment:
    """One AIRFLOW_HOME and the processes running on it."""

    home: Path
    db_url: str
    broker_url: str
    connection: Mapping[str, Any]
    extra_env: Mapping[str, str] = field(default_factory=dict)
    fernet_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    api_port: int = field(default_factory=free_port)
    services: dict[str, Service] = field(default_factory=dict)
    #: Rows of short-lived tables (triggers) copied while they existed, for the secret scan.
    snapshots: list[tuple[str, Any]] = field(default_factory=list)
    executor: str = "LocalExecutor"
    _token: str | None = None

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags = self.home / "dags"
        self.logs = self.home / "logs"
        self.service_logs = self.home / "services"
        self._jwt_secret = secrets.token_hex(32)
        self._api_secret = secrets.token_hex(32)
        self._log_ports = (free_port(), free_port())
        self.http = requests.Session()

    # settings

    def env(self, **more: str) -> dict[str, str]:
        """The environment of every Airflow process: the whole configuration, no airflow.cfg edits."""
        trigger_port, worker_port = self._log_ports
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__API__SECRET_KEY": self._api_secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_port),
            # A crashed worker's task is failed (and retried) half a minute later, not after 5.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
            # A killed triggerer's triggers move to the new one within seconds.
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            # Parse each file once (the files do not change): the cores are for the tasks.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
            "AIRFLOW_CONN_MOTHERDUCK_DEFAULT": json.dumps(dict(self.connection)),
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
        base.pop("MOTHERDUCK_TOKEN", None)
        return {**base, **settings, **self.extra_env, **more}

    def install_dags(self) -> None:
        """The example DAGs (with their data files) and the e2e DAGs, side by side in one folder."""
        self.dags.mkdir(exist_ok=True)
        for source in (EXAMPLE_DAGS, E2E_DAGS):
            for path in source.iterdir():
                if path.suffix in (".py", ".json", ".yaml"):
                    shutil.copy(path, self.dags / path.name)

    def migrate(self) -> None:
        run(python_argv("db", "migrate"), env=self.env(), timeout=300)

    # components

    def _service(self, name: str, *args: str, **env: str) -> Service:
        service = Service(name, python_argv(*args), env=self.env(**env), log_dir=self.service_logs)
        self.services[name] = service
        return service

    def start(self, executor: str, workers: Sequence[str] = ()) -> None:
        """Start every component with ``executor``; return once all report healthy."""
        self.executor = executor
        self._service("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)).start()
        self._service("scheduler", "scheduler").start()
        self._service("dag-processor", "dag-processor").start()
        self._service("triggerer", "triggerer").start()
        for name in workers:
            self.start_worker(name)
        self.wait_healthy()
        for name in workers:
            self.wait_worker_ready(name)

    def start_worker(self, name: str) -> Service:
        """A Celery worker whose task instances report ``name`` as their hostname."""
        service = self.services.get(name)
        if service is None:
            service = self._service(
                name,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                "8",
                "--skip-serve-logs",
                "--without-gossip",
                "--without-mingle",
                E2E_WORKER_NAME=name,
                PYTHONPATH=str(WORKER_PYTHONPATH),
                AIRFLOW__CORE__HOSTNAME_CALLABLE="e2e_worker_hostname.worker_name",
            )
        return service.start()

    def wait_worker_ready(self, name: str, timeout: float = 120) -> None:
        service = self.services[name]
        wait_for(
            f"Celery worker {name} to be ready",
            lambda: " ready." in tail(service.log, 400),
            timeout=timeout,
            services=[service],
        )

    def restart(self, name: str) -> Service:
        """Start a stopped or killed component again, as it was started."""
        service = self.services[name]
        if service.alive():
            service.stop()
        return service.start()

    def stop(self) -> None:
        """Stop every component (workers first, the api-server last)."""
        order = sorted(self.services.values(), key=lambda s: s.name == "api-server")
        for service in order:
            service.stop()
        self.services.clear()
        self._token = None

    def components(self) -> list[Service]:
        return list(self.services.values())

    def describe(self) -> str:
        return "\n".join(s.describe() for s in self.components())

    def _health(self) -> bool:
        try:
            answer = self.http.get(self.url("/api/v2/monitor/health"), timeout=5)
        except requests.RequestException:
            return False
        if answer.status_code != 200:
            return False
        body = answer.json()
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((body.get(p) or {}).get("status") == "healthy" for p in parts)

    def wait_healthy(self, timeout: float = 180) -> None:
        wait_for(
            "every component to report healthy", self._health, timeout=timeout, services=self.components()
        )

    # REST API

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            answer = self.http.get(self.url("/auth/token"), timeout=30)
            answer.raise_for_status()
            self._token = str(answer.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    def api(self, method: str, path: str, body: Any = None, *, ok: Sequence[int] = (200,)) -> Any:
        """One REST call; a status outside ``ok`` raises with the answer's text."""
        answer = self.http.request(method, self.url(path), json=body, headers=self._headers(), timeout=60)
        if answer.status_code not in ok:
            raise AssertionError(f"{method} {path} answered {answer.status_code}: {answer.text[:2000]}")
        return answer.json() if answer.content else None

    def wait_dags(self, dag_ids: Sequence[str], timeout: float = 240) -> None:
        """Wait until the dag-processor has parsed every DAG; an import error fails at once."""

        def parsed() -> bool:
            errors = self.api("GET", "/api/v2/importErrors")
            if errors["total_entries"]:
                raise AssertionError(f"DAG import errors: {json.dumps(errors['import_errors'], indent=1)}")
            known = {d["dag_id"] for d in self.api("GET", "/api/v2/dags?limit=100")["dags"]}
            return set(dag_ids) <= known

        wait_for(
            f"DAGs {', '.join(dag_ids)} to be parsed", parsed, timeout=timeout, services=self.components()
        )

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Start a manual run (no logical date) and return its run id."""
        body = {"logical_date": None, "conf": dict(conf or {})}
        run_info = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        return str(run_info["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float, services: Sequence[Service] = ()) -> str:
        """Wait until a run has finished; fail with its failed tasks' logs unless it succeeded."""
        state = wait_for(
            f"{dag_id} run {run_id} to finish",
            lambda: (s := self.run_state(dag_id, run_id)) in FINISHED and s,
            timeout=timeout,
            services=list(services) or self.components(),
            details=lambda: self.run_details(dag_id, run_id),
        )
        if state != "success":
            raise AssertionError(f"{dag_id} run {run_id} ended {state}\n{self.run_details(dag_id, run_id)}")
        return state

    # the metadata database

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        parts = urlsplit(self.db_url)
        with closing(
            psycopg2.connect(
                host=parts.hostname,
                port=parts.port,
                user=parts.username,
                dbname=parts.path.lstrip("/"),
                connect_timeout=10,
            )
        ) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query, tuple(params))
                return list(cur.fetchall()) if cur.description else []

    def snapshot(self, table: str) -> None:
        """Keep a copy of every row of ``table`` as it is now."""
        self.snapshots.extend((table, row) for (row,) in self.sql(f'SELECT to_jsonb(t) FROM "{table}" t'))

    def task_instances(self, dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """Task instances of a DAG (of one run if given), from the metadata database."""
        query = (
            "SELECT run_id, task_id, map_index, state, try_number, hostname, start_date, end_date "
            "FROM task_instance WHERE dag_id = %s"
        )
        params: list[Any] = [dag_id]
        if run_id is not None:
            query += " AND run_id = %s"
            params.append(run_id)
        keys = ("run_id", "task_id", "map_index", "state", "try_number", "hostname", "start_date", "end_date")
        return [
            dict(zip(keys, row, strict=True))
            for row in self.sql(query + " ORDER BY task_id, map_index", params)
        ]

    def decrypt(self, value: str | bytes) -> str:
        """A value Airflow stored encrypted with the deployment's Fernet key."""
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return Fernet(self.fernet_key.encode()).decrypt(raw).decode()

    def variables(self, prefix: str = "") -> dict[str, str]:
        """Every Variable whose key starts with ``prefix``, decrypted."""
        rows = self.sql("SELECT key, val, is_encrypted FROM variable")
        return {
            key: self.decrypt(val) if encrypted else str(val)
            for key, val, encrypted in rows
            if key.startswith(prefix)
        }

    def variable(self, key: str) -> str | None:
        """One Variable's value, decrypted (None if it is not set)."""
        return self.variables(key).get(key)

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, attempt: int) -> Path:
        folder = self.logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        return folder / f"attempt={attempt}.log"

    def run_details(self, dag_id: str, run_id: str) -> str:
        """The run's task states, and the end of the logs of its tasks that did not succeed."""
        try:
            tis = self.task_instances(dag_id, run_id)
        except psycopg2.Error as err:
            return f"(task instances unreadable: {err})"
        lines = [f"task instances of {dag_id} {run_id}:"]
        shown = 0
        for ti in tis:
            lines.append(
                f"  {ti['task_id']}[{ti['map_index']}] {ti['state']} try {ti['try_number']} on {ti['hostname']}"
            )
            if ti["state"] not in ("success", "skipped") and shown < 3:
                shown += 1
                for attempt in range(1, max(int(ti["try_number"] or 1), 1) + 1):
                    log = self.task_log(dag_id, run_id, ti["task_id"], ti["map_index"], attempt)
                    lines.append(f"  --- {log}:\n{tail(log, 40)}")
        return "\n".join(lines)
