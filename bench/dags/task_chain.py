"""The orchestration benchmark's DAG (bench/task_gap.py): ten chained tasks that do nothing, so that
the time between one task's end and the next one's start is Airflow's alone."""

import pendulum
from airflow.sdk import dag, task

STEPS = 10


def step(i: int) -> int:
    return i + 1


@dag(schedule=None, start_date=pendulum.datetime(2013, 1, 1, tz="UTC"), catchup=False, tags=["bench"],
     default_args={"retries": 0})  # fmt: skip
def bench_task_chain():
    value = 0
    for i in range(STEPS):
        value = task(step, task_id=f"step_{i}")(value)


bench_task_chain()
