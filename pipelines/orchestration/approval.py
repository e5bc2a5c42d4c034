"""The deploy DAG's approval step: Airflow's human-in-the-loop ApprovalOperator (standard provider, Airflow 3.3),
asking about the candidate the run releases. The Airflow UI shows it under the run's Required Actions; the answer
comes through the UI or the REST API (`PATCH /api/v2/hitlDetails/...`).

Only the Approver role may answer (its FAB permission on HITL details, and the platform's auth manager, which
reads the assignment `role:Approver` with the exclusions `not:<user>` this step sets: whoever started the training
run that registered the candidate, or this release, is refused). Approve: the release goes on. Reject: it is
skipped. No answer within the spec's `deploy.approval_timeout`: the step fails (rejected, an incident).
Every request and answer is a ledger record naming the person (pipelines/governance/approvals.py)."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

ROLE, EXCEPT = "role:", "not:"


class CandidateApproval(ApprovalOperator):
    def __init__(self, *, usecase: str, target_task: str, **kwargs) -> None:
        super().__init__(subject="Release a candidate?", **kwargs)
        self.usecase, self.target_task = usecase, target_task

    def _request(self, context):
        from pipelines.governance.approvals import approval_request
        from pipelines.settings import get_settings

        alias, version = context["ti"].xcom_pull(task_ids=self.target_task)
        run = context["dag_run"]
        return approval_request(get_settings(), self.usecase, alias, version, f"{run.dag_id}/{run.run_id}",
                                getattr(run, "triggering_user_name", None))  # fmt: skip

    def execute(self, context) -> Any:
        from pipelines.governance.approvals import APPROVER_ROLE, record_request
        from pipelines.settings import get_settings

        request = self._request(context)
        self.subject, self.body = request.subject, request.body
        refused = [{"id": f"{EXCEPT}{who}", "name": f"not {who}"} for who in request.excluded]
        self.assigned_users = [{"id": f"{ROLE}{APPROVER_ROLE}", "name": f"any {APPROVER_ROLE}"}, *refused]
        record_request(get_settings(), request, self.response_timeout.total_seconds())
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        from pipelines.governance.approvals import record_answer
        from pipelines.settings import get_settings

        request = self._request(context)
        if "error" in event:
            record_answer(get_settings(), request, "approval.timed_out", None, None)
            return super().execute_complete(context, event)  # raises: no answer in time rejects
        result = super().execute_complete(context, event)
        user = result["responded_by_user"] or {}
        action = "approval.approved" if result["chosen_options"] == [self.APPROVE] else "approval.rejected"
        record_answer(get_settings(), request, action, user.get("name") or user.get("id"),
                      str(result["responded_at"]))  # fmt: skip
        return result
