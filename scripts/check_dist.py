"""Check an installed wheel as a user meets it (``make dist`` runs this in its clean virtualenv).

Outside the repository, in a throwaway AIRFLOW_HOME: the package is the installed one, Airflow
lists it as a provider with its hook and connection type, the pytest plugin's entry point is
there, and every example DAG parses with no import error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import distribution, entry_points
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"
DISTRIBUTION = "airflow-provider-motherduck"


def airflow(*args: str) -> str:
    """``airflow ARGS`` in this virtualenv; its standard output, or the whole output if it fails."""
    cli = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        sys.exit(f"airflow {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def json_rows(*args: str) -> list[dict[str, str]]:
    """The JSON list that ``airflow ... -o json`` prints on one line, among any log lines."""
    out = airflow(*args, "-o", "json")
    for line in out.splitlines():
        if line.startswith(("[{", "[]")):
            rows: list[dict[str, str]] = json.loads(line)
            return rows
    sys.exit(f"no JSON list in the output of airflow {' '.join(args)}:\n{out}")


def main() -> None:
    import airflow_provider_motherduck as package

    version = distribution(DISTRIBUTION).version
    where = Path(package.__file__).resolve()
    if Path(sys.prefix).resolve() not in where.parents:
        sys.exit(f"{package.__name__} was imported from {where}, not from the installed wheel")
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    if plugins.get("motherduck") != "airflow_provider_motherduck.testing.pytest_plugin":
        sys.exit(f"no motherduck pytest11 entry point: {plugins}")

    home = Path(tempfile.mkdtemp(prefix="md-dist-home-"))
    try:
        shutil.copytree(EXAMPLES, home / "dags")
        os.environ.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            }
        )
        providers = {row["package_name"]: row["version"] for row in json_rows("providers", "list")}
        if providers.get(DISTRIBUTION) != version:
            sys.exit(f"{DISTRIBUTION} {version} not in `airflow providers list`: {providers}")
        hooks = {row["connection_type"]: row["class"] for row in json_rows("providers", "hooks")}
        if hooks.get("motherduck") != "airflow_provider_motherduck.hooks.motherduck.MotherDuckHook":
            sys.exit(f"no motherduck connection type in `airflow providers hooks`: {hooks}")

        airflow("db", "migrate")  # the CLI's DAG commands refuse to start without it, --local too
        errors = json_rows("dags", "list-import-errors", "--local")
        if errors:
            sys.exit(f"example DAGs failed to import: {errors}")
        dag_ids = sorted(row["dag_id"] for row in json_rows("dags", "list", "--local"))
        expected = sorted(p.stem for p in EXAMPLES.glob("example_*.py"))
        if dag_ids != expected:
            sys.exit(f"`airflow dags list` shows {dag_ids}, expected {expected}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"{DISTRIBUTION} {version}: installed from the wheel, listed as a provider with the motherduck "
        f"connection type, pytest plugin registered, {len(dag_ids)} example DAGs parsed"
    )


if __name__ == "__main__":
    main()
