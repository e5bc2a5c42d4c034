"""The one module of `pipelines` that imports Airflow.

Bad data and bad configuration do not get better on a retry: such errors fail the task at
once (AirflowFailException), while anything else (a locked warehouse, a busy server) is
retried as the task's `retries` allow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pipelines.errors import (
    AccessDenied,
    ArtifactTampered,
    CanaryRolledBack,
    DeployFailed,
    EmptyPartitionError,
    NotEnoughData,
    NothingToDo,
    RegistryError,
    SettingsError,
    SignatureInvalid,
    SourceFormatError,
    StreamBatchMismatch,
    ValidationFailed,
)

NOT_RETRYABLE = (
    ValidationFailed, SourceFormatError, EmptyPartitionError, SettingsError,
    NotEnoughData, AccessDenied, ArtifactTampered, SignatureInvalid, RegistryError, DeployFailed, CanaryRolledBack,
    StreamBatchMismatch,
)  # fmt: skip
T = TypeVar("T")


def fail_fast_on_bad_data(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a task callable so that bad data or configuration fails it without retries, and a task with
    nothing to act on is skipped (with its reason in the log)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except NothingToDo as exc:
            raise AirflowSkipException(str(exc)) from exc
        except NOT_RETRYABLE as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


# The platform's people, as FAB roles. Each is exactly these permissions (synced, not just added).
def _platform_roles() -> dict[str, set[tuple[str, str]]]:
    from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride as Fab
    from airflow.providers.fab.www.security import permissions as p

    read_only = set(Fab.VIEWER_PERMISSIONS) | {
        (p.ACTION_CAN_READ, p.RESOURCE_AUDIT_LOG),
        (p.ACTION_CAN_ACCESS_MENU, p.RESOURCE_AUDIT_LOG),
        (p.ACTION_CAN_READ, p.RESOURCE_PLUGIN),  # the UI lists plugin views (the Models page) from /api/v2/plugins
    }
    run_control = {
        (p.ACTION_CAN_EDIT, p.RESOURCE_DAG),  # pause and unpause
        (p.ACTION_CAN_CREATE, p.RESOURCE_DAG_RUN),  # trigger
        (p.ACTION_CAN_EDIT, p.RESOURCE_DAG_RUN),
        (p.ACTION_CAN_EDIT, p.RESOURCE_TASK_INSTANCE),  # clear, mark
        (p.ACTION_CAN_DELETE, p.RESOURCE_TASK_INSTANCE),
    }
    # Answering a release's approval request (the deploy DAG's human-in-the-loop step): the Approver's alone.
    answer = {(p.ACTION_CAN_EDIT, p.RESOURCE_HITL_DETAIL)}
    return {
        # Reads everything, including the audit log; changes nothing.
        "Auditor": read_only,
        # Runs the platform: trigger, clear, pause. Does not see DAG code.
        "Operator": (read_only - {(p.ACTION_CAN_READ, p.RESOURCE_DAG_CODE)}) | run_control,
        # Authors DAGs (in git) and runs them: everything an Airflow "User" may do, but answer approvals.
        "MLEngineer": (read_only | set(Fab.USER_PERMISSIONS)) - answer,
        # Approves or rejects releases (and sees what they are about); Airflow needs edit on the DAG to answer.
        "Approver": read_only | answer | {(p.ACTION_CAN_EDIT, p.RESOURCE_DAG)},
    }


def sync_access(users: dict[str, tuple[str, str]]) -> None:
    """Create or update the platform roles, then create missing users {username: (roles, password)}, `roles` one
    role or several, comma-separated ("MLEngineer,Approver").

    Runs inside an Airflow process (it needs Airflow's configuration and metadata DB).
    """
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        for name, wanted in _platform_roles().items():
            role = security.find_role(name) or security.add_role(name)
            for permission in list(role.permissions):
                if (permission.action.name, permission.resource.name) not in wanted:
                    security.remove_permission_from_role(role, permission)
            for action, resource in sorted(wanted):
                permission = security.get_permission(action, resource) or security.create_permission(action, resource)
                if permission not in role.permissions:
                    security.add_permission_to_role(role, permission)
        for username, (role_names, password) in users.items():
            if security.find_user(username=username) is None:
                roles = [security.find_role(name.strip()) for name in role_names.split(",")]
                security.add_user(username, username, "", f"{username}@platform.local", roles, password)
