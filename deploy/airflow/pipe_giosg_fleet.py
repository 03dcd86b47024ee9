"""Airflow DAG: the giosg fleet export as N parallel `pipe run --shard K/N` tasks.

Each task exports the accounts of its shard (stable hash of the account `id`), so the tasks
together cover every account exactly once and never write the same state document. Exit codes
(docs/design.md §7): 0 ok, 1 failed, 2 bad config, 3 partial (some account or conversation could not
be completed: the rest is committed), 4 dead letters with `fail_on_dead_letters`. Airflow fails
the task on any non-zero code; a retry resumes from the shard's checkpoints.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

SHARDS = 3
PIPELINE = "/opt/pipe/pipelines/giosg-fleet.toml"

with DAG(
    dag_id="pipe_giosg_fleet",
    start_date=datetime(2026, 1, 1),
    schedule="15 2 * * *",
    catchup=False,
    max_active_runs=1,  # two runs for one account could not both advance its state
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
) as dag:
    for k in range(SHARDS):
        BashOperator(
            task_id=f"export_shard_{k}",
            bash_command=f"pipe run {PIPELINE} --shard {k}/{SHARDS} --log-format json",
            env={"PIPE_BUCKET": "analytics-raw"},
            append_env=True,
        )
