"""The platform's auth manager: Flask-AppBuilder's, plus role-based assignment of human-in-the-loop tasks.

Airflow assigns a HITL task to user ids; the deploy DAG's approval step (approval.py) needs "anyone with the
Approver role, except whoever started this candidate" (separation of duties), which no list of ids fixed at
parse time can say. Its assignment holds `role:<role>` and `not:<username>` entries, read here: a user is
authorized when they hold one of the roles and are not excluded (or when their id is assigned, as in Airflow).
Airflow asks this only for tasks with assigned users; everything else is FAB's."""

from __future__ import annotations

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

from pipelines.orchestration.approval import EXCEPT, ROLE


class PlatformAuthManager(FabAuthManager):
    def is_authorized_hitl_task(self, *, assigned_users: set[str], user) -> bool:
        """Raises 403 with the reason for an excluded user (Airflow's own refusal does not say why)."""
        from fastapi import HTTPException

        roles = {entry.removeprefix(ROLE) for entry in assigned_users if entry.startswith(ROLE)}
        excluded = {entry.removeprefix(EXCEPT) for entry in assigned_users if entry.startswith(EXCEPT)}
        if user.get_name() in excluded:
            reason = (f"{user.get_name()} started this candidate (its training run or this release) and may not "
                      "approve it: separation of duties. Another Approver answers.")  # fmt: skip
            raise HTTPException(403, reason)
        held = {role.name for role in getattr(user, "roles", [])}
        return user.get_id() in assigned_users or bool(roles & held)
