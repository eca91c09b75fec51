"""auditlake in Airflow (2.x or 3.x) for many Zendesk accounts from one file: every hour, one mapped
task per account of accounts.toml (dynamic task mapping), each `auditlake export --config FILE
--account SUBDOMAIN`. The accounts are read when the DAG runs, so adding one to the file needs no
DAG change; each task's failure, retries and logs are its account's.

The workers need the `auditlake` binary on PATH, the file at ACCOUNTS_FILE (a mounted config), the
secrets it names, and the object store's credentials in their usual environment.
"""

import os
import tomllib
from datetime import datetime, timedelta, timezone

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.operators.bash import BashOperator

ACCOUNTS_FILE = os.environ.get("AUDITLAKE_ACCOUNTS_FILE", "/etc/auditlake/accounts.toml")


def subdomains(path):
    """The subdomains of the file's [[account]] tables, in its order."""
    with open(path, "rb") as f:
        return [account["subdomain"] for account in tomllib.load(f).get("account", [])]


with DAG(
    dag_id="auditlake_accounts",
    schedule="17 * * * *",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["zendesk", "audit"],
):

    @task
    def accounts():
        return [
            f"auditlake export --config {ACCOUNTS_FILE} --account {subdomain}"
            for subdomain in subdomains(ACCOUNTS_FILE)
        ]

    BashOperator.partial(
        task_id="export",
        # Keep the worker's own environment (PATH, the variables the file names).
        append_env=True,
        # At most this many accounts at once on the workers.
        max_active_tis_per_dag=8,
    ).expand(bash_command=accounts())
