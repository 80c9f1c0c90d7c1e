"""The provider on a real Airflow 3.3 deployment: ``make e2e``.

``services`` starts and stops processes (PostgreSQL, Redis, Airflow's components); ``deployment``
configures Airflow and drives it through its REST API and metadata database; ``checks`` reads the
emulator's journal and state; ``issued`` records the secrets the emulator hands out; ``report``
gathers the summary table. ``dags/`` holds the e2e DAGs, installed beside the example DAGs;
``pythonpath/`` the Celery workers' hostname callable. The tests run in file order:
LocalExecutor, CeleryExecutor, then the secret scan.
"""
