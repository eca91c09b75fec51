"""auditlake in Airflow (2.x or 3.x): every hour, one task per Zendesk subdomain, all into one lake.

The tasks run on the workers, which need the `auditlake` binary on PATH (or use the image with a
KubernetesPodOperator), the OAuth client's secret in a file (README, "Authentication") and the
object store's credentials in their usual environment (an instance profile, IRSA, ...).
Subdomains never block each other: each holds its own lease on the lake.
"""

from datetime import datetime, timedelta, timezone

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

SUBDOMAINS = ["acme", "acme-eu"]
DEST = "s3://audit-lake/zendesk"
SINCE = "2024-01-01"

# Only what is not secret: the secret itself stays in the file the variable names.
ZENDESK_ENV = {
    "ZENDESK_OAUTH_CLIENT_ID": "auditlake",
    "ZENDESK_OAUTH_CLIENT_SECRET_FILE": "/run/secrets/zendesk-client-secret",
    "AWS_REGION": "eu-west-1",
}

with DAG(
    dag_id="auditlake",
    schedule="17 * * * *",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    # Each run exports every window not done yet: no backfill of past intervals is needed.
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["zendesk", "audit"],
):
    for subdomain in SUBDOMAINS:
        BashOperator(
            task_id=f"export_{subdomain.replace('-', '_')}",
            bash_command=f"auditlake export --subdomain {subdomain} --dest {DEST} --since {SINCE}",
            env=ZENDESK_ENV,
            # Keep the worker's own environment (PATH, the object store's credentials).
            append_env=True,
        )
