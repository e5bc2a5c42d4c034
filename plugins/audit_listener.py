"""Airflow listener: every DAG-run and task-instance state change lands in the platform's audit ledger,
and a failed DAG run opens an incident (`dag:<dag id>`; the DAG's next successful run clears it), unless
the run opened one itself that says why (a canary rolled back: one cause, one incident).

Loaded by every Airflow process (scheduler for DAG runs, task runners for task instances);
the ledger code is imported on first use, so loading the plugin costs nothing.
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)


def _append(action: str, subject: str, details: dict) -> None:
    try:
        from pipelines.security.audit import audit_ledger
        from pipelines.settings import get_settings

        audit_ledger(get_settings()).append(action, subject, details, actor="airflow")
    except Exception:  # the run goes on, but loudly: an operator must see a gap in the trail
        log.exception("AUDIT LEDGER WRITE FAILED for %s %s", action, subject)


def _task(action: str, task_instance, previous_state, error=None) -> None:
    subject = f"{task_instance.dag_id}/{task_instance.run_id}/{task_instance.task_id}"
    details = {
        "previous_state": getattr(previous_state, "value", previous_state),
        "try_number": getattr(task_instance, "try_number", None),
        "map_index": getattr(task_instance, "map_index", -1),
    }
    if error is not None:
        details["error"] = str(error)[:2000]
    _append(action, subject, details)


def _dag_run(action: str, dag_run, msg: str) -> None:
    _append(action, f"{dag_run.dag_id}/{dag_run.run_id}",
            {"run_type": str(dag_run.run_type), "logical_date": str(dag_run.logical_date), "msg": msg})  # fmt: skip


def _incident(dag_run, msg: str, failed: bool) -> None:
    try:
        import datetime as dt

        from pipelines.alerting.incidents import Incidents, platform_event, usecase_of
        from pipelines.settings import get_settings

        settings, cause = get_settings(), f"dag:{dag_run.dag_id}"
        if failed:
            explained = Incidents(settings).explaining(f"{dag_run.dag_id}/{dag_run.run_id}")
            if explained:  # one cause, one incident: the run's own (a rollback) already says why it failed
                _append("dag_run.failure_explained", f"{dag_run.dag_id}/{dag_run.run_id}",
                        {"incidents": [i.id for i in explained], "causes": [i.cause for i in explained]})  # fmt: skip
                return
            summary = f"{dag_run.dag_id} run {dag_run.run_id} failed ({msg}): its failed tasks' logs say why"
            platform_event(settings, "DagRunFailed", cause, usecase_of(settings, dag_run.dag_id), summary)
        else:
            Incidents(settings).cleared(cause, dt.datetime.now(dt.UTC))
    except Exception:  # the run's outcome stands; the gap must be seen
        log.exception("INCIDENT NOT RECORDED for %s %s", dag_run.dag_id, dag_run.run_id)


class AuditListener:
    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        _task("task.running", task_instance, previous_state)

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        _task("task.success", task_instance, previous_state)

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error):
        _task("task.failed", task_instance, previous_state, error)

    @hookimpl
    def on_task_instance_skipped(self, previous_state, task_instance):
        _task("task.skipped", task_instance, previous_state)

    @hookimpl
    def on_dag_run_running(self, dag_run, msg):
        _dag_run("dag_run.running", dag_run, msg)

    @hookimpl
    def on_dag_run_success(self, dag_run, msg):
        _dag_run("dag_run.success", dag_run, msg)
        _incident(dag_run, msg, failed=False)

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg):
        _dag_run("dag_run.failed", dag_run, msg)
        _incident(dag_run, msg, failed=True)


class PlatformAuditPlugin(AirflowPlugin):
    name = "platform_audit"
    listeners = [AuditListener()]
