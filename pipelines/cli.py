"""`platform` command line: run the platform locally, serve Airflow, or run one stage by hand."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from pipelines.commands import alerting as alerting_commands
from pipelines.commands import compute as compute_commands
from pipelines.commands import governance as governance_commands
from pipelines.commands import stream as stream_commands
from pipelines.errors import PlatformError
from pipelines.settings import REPO_ROOT, Settings, get_settings, settings_environment
from pipelines.usecases.scaffold import SOURCE_KINDS
from pipelines.usecases.spec import UseCase, resolve_usecase, windows, with_overrides

USECASE_HELP = "a spec under usecases/ (default: PLATFORM_DEFAULT_USECASE, or the only spec)"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2013-01-01") from None


def _days(text: str, least: int = 1) -> int:
    if not text.isdigit() or int(text) < least:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days; use a whole number of at least {least}")
    return int(text)


def cmd_run(args: argparse.Namespace) -> None:
    from pipelines.orchestration import local_airflow
    from pipelines.orchestration.summary import ingest_summary
    from pipelines.orchestration.training import latest_outcome, render
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import check_residency_at_startup
    from pipelines.security.vault import local_openbao

    settings = get_settings()
    if args.lead_time:  # every stage, DAG run and the service read the spec with it
        settings = with_overrides(settings, args.usecase, {"prediction.lead_time": args.lead_time})
        os.environ.update(settings_environment(settings))
    usecase = resolve_usecase(settings, args.usecase)
    args.start = args.start or usecase.ingest.first_day
    last = args.start + dt.timedelta(days=args.days - 1)
    if args.operate_days and args.operate_from is None:
        raise PlatformError("--operate-days needs --operate-from: the first day to operate (OPERATE_FROM)")
    if args.operate_days and args.operate_from <= last:
        raise PlatformError(
            f"--operate-from {args.operate_from} lies inside the first window ({args.start} .. {last}), whose days "
            f"the online store has already moved past; choose a later day (OPERATE_FROM) or OPERATE_DAYS=0"
        )
    check_residency_at_startup(settings)
    started = time.monotonic()
    print(f"Preparing Airflow (metadata DB {settings.airflow_dir / 'airflow.db'}) ...", flush=True)
    local_airflow.prepare(settings)
    print(
        f"Running {usecase.dag_id('ingest')} for {args.start} .. {last} through the Airflow scheduler ...", flush=True
    )
    runs = local_airflow.backfill(settings, usecase.dag_id("ingest"), args.start, last, usecase.tz)
    print(f"{len(runs)} DAG runs succeeded in {time.monotonic() - started:.0f} s.\n")
    print(ingest_summary(settings, usecase, args.start, last).render())
    first_week = _first_window(settings, usecase, args.days)
    windows = resolve_usecase(first_week, usecase.name).training.windows
    print(f"\nRunning {usecase.dag_id('training')} for the window ending {last} ({windows.train_days}/"
          f"{windows.validation_days}/{windows.holdout_days} days: the first days only) ...", flush=True)  # fmt: skip
    started = time.monotonic()
    local_airflow.test_run(first_week, usecase.dag_id("training"), {"last_day": last.isoformat()})
    print(f"Trained, gated and registered in {time.monotonic() - started:.0f} s.\n")
    outcome = latest_outcome(settings, last)
    print(render(outcome))
    serving = _serve_and_operate(settings, usecase, last, outcome, args)
    warehouse = settings.warehouse_path if settings.warehouse_target == "duckdb" else "PostgreSQL, schema marts"
    online = settings.feast_dir / "online_store.db" if settings.feast_env == "local" else settings.redis_url
    compliance = _compliance_report(settings, usecase)
    ledger = audit_ledger(settings)
    chain = ledger.verify()
    vault = settings.vault_addr
    if vault == local_openbao(settings).addr:
        vault = f"OpenBao under {settings.vault_dir} (stopped with this command; `make up` starts it again)"
    print(
        f"\nWhere to look:\n"
        f"  data root           {settings.data_root}\n"
        f"  raw partitions      {settings.raw_dir}\n"
        f"  warehouse           {warehouse}\n"
        f"  Feast online store  {online}\n"
        f"  Airflow task logs   {settings.airflow_dir / 'logs'}\n"
        f"  model registry      {settings.artifact_uri}/registry  (`.venv/bin/platform models list`)\n"
        f"  audit ledger        {ledger}: {chain.records} records, chain intact (`platform audit-verify`)\n"
        f"  secrets and keys    {vault}\n"
        f"  Airflow UI          `make up`, then http://127.0.0.1:{settings.airflow_api_port}\n"
        f"  prediction log      {settings.data_root / 'predictions'}\n"
        f"  compliance evidence {compliance} (also on the Models page of the Airflow UI)"
    )
    if serving:
        print(f"\nWith `make up`, the champion answers at http://127.0.0.1:{settings.serving_port}:\n{serving}")


def _first_window(settings: Settings, usecase: UseCase, days: int) -> Settings:
    """`settings` with the spec's training windows shrunk to the first `days` ingested days when they are
    fewer (the spec's are for months of history), in the spec's proportions: at least 1 day to early-stop
    and 2 to judge, the rest to fit (flights' 21/7/7 on 7 days: 4/1/2). Overrides already set win."""
    spec = usecase.training.windows
    total = spec.train_days + spec.validation_days + spec.holdout_days
    if days >= total:
        return settings
    if days < 4:
        raise PlatformError(f"--days {days}: the first model needs at least 4 ingested days (fit, early-stop, judge)")
    validation = max(1, round(days * spec.validation_days / total))
    holdout = max(2, round(days * spec.holdout_days / total))
    chosen = settings.usecase_overrides.get(usecase.name, {})
    shrunk = windows(days - validation - holdout, validation, holdout)
    return with_overrides(settings, usecase.name, {k: v for k, v in shrunk.items() if k not in chosen})


def _compliance_report(settings: Settings, usecase: UseCase) -> str:
    """The use case's compliance evidence pack, written as the operator (who may match the ledger's decrypts to the
    Vault audit device) of the platform's own OpenBao; where it is, and whether it verified."""
    from pydantic import SecretStr

    from pipelines.governance.evidence import write_report
    from pipelines.security.vault import issue_credentials, local_openbao

    server = local_openbao(settings)
    if settings.vault_addr != server.addr:
        return "`platform compliance-report <use case> --out DIR`, as the operator of your Vault"
    role_id, secret_id = issue_credentials(server.root(), "operator")
    operator = settings.model_copy(update={"vault_role_id": role_id, "vault_secret_id": SecretStr(secret_id)})
    out = settings.data_root / "compliance" / usecase.name
    doc = write_report(operator, usecase.name, out, vault_audit=server.audit_file)
    verdict = "verified" if doc["integrity"]["ok"] else "INTEGRITY FAILURE: " + "; ".join(doc["integrity"]["problems"])
    return f"{out / 'compliance.html'} ({verdict})"


def _serving_identity(settings):
    """Serving AppRole credentials, issued by the platform's own OpenBao (None with an external Vault).

    It also records the local service and a fresh deployer key (admin, predict) as the
    model_service connection, through which the deploy DAG reloads and smoke-tests the service.
    """
    from pipelines.security.vault import issue_credentials, local_openbao
    from serving.auth import create_key
    from serving.client import register_service

    server = local_openbao(settings)
    if settings.vault_addr != server.addr:
        return None
    root = server.root()
    register_service(root, settings, settings.serving_port, create_key(root, "deployer", ["admin", "predict"]))
    return issue_credentials(root, "serving")


def _serve_and_operate(settings, usecase: UseCase, last: dt.date, outcome: dict,
                       args: argparse.Namespace) -> str | None:  # fmt: skip
    """Start the model service; release what training moved through the deploy DAG (under replayed
    traffic, which the canary judges); serve the next day's flights; then, with --operate-days,
    operate a later period day by day (pipelines.orchestration.operations). Returns a curl example."""
    from pipelines.orchestration.deploy import deployment_report
    from pipelines.orchestration.operations import real_time, release
    from pipelines.security.vault import local_openbao
    from serving.auth import create_key
    from serving.local import running_service, wait_ready
    from serving.replay import day_requests, replay

    identity = _serving_identity(settings)
    if identity is None:
        print("\nServing is started by `make run` only with the platform's own OpenBao; see README (Serving).")
        return None
    demo_key = create_key(local_openbao(settings).root(), "demo", ["predict"])
    log = settings.data_root / "serving" / "service.log"
    next_day = last + dt.timedelta(days=1)
    print(f"\nServing on http://127.0.0.1:{settings.serving_port} ...", flush=True)
    with running_service(settings, *identity, settings.serving_port, log=log) as base, \
            real_time(settings, usecase) as realtime:  # fmt: skip
        moved = next(((alias, outcome[alias]) for alias in ("champion", "challenger") if outcome.get(alias)), None)
        if moved:
            wait_ready(base)
            print(f"Running {usecase.dag_id('deploy')} for {moved[0]} v{moved[1]} under replayed traffic ...",
                  flush=True)  # fmt: skip
            released = release(settings, usecase, base, demo_key, moved[1], moved[0], next_day)
            print(released.render() + ".")
            if released.canary is not None:
                print(released.canary.render())
                print(f"  canary report: {deployment_report(settings, usecase.name, released.version)}")
        status = wait_ready(base)["usecases"][usecase.name]
        served = ", ".join(f"{v['name']} v{v['version']} {v['weight']:g}%" for v in status["variants"])
        if realtime:
            print(f"Serving {next_day}, the day after the last ingested one: each flight {usecase.prediction.label},"
                  " the stream replayed up to that instant first")  # fmt: skip
        else:
            print(f"Serving {next_day}, the day after the last ingested one (the store holds what was known at its "
                  "start)")  # fmt: skip
        report = replay(
            settings, usecase, next_day, base, demo_key, until=realtime.until(next_day) if realtime else None
        )
        print(f"Served {usecase.name} ({served}): {report.render()}", flush=True)
        if realtime:
            print(realtime.summary(), flush=True)
        if args.operate_days:
            _operate_later(settings, usecase, args, base, demo_key, realtime)
    example = json.dumps({usecase.serving.batch: day_requests(settings, usecase, next_day)[:1]})
    return (
        f"  curl -s http://127.0.0.1:{settings.serving_port}{usecase.serving.route} "
        f"-H 'Authorization: Bearer {demo_key}' \\\n"
        f"       -H 'Content-Type: application/json' -d '{example}'"
    )


def _operate_later(settings, usecase: UseCase, args: argparse.Namespace, base: str, key: str, realtime) -> None:
    """Build the history up to --operate-from, then operate --operate-days days from it."""
    from pipelines.features.store import materialize
    from pipelines.orchestration import monitoring
    from pipelines.orchestration.bulk import build_days
    from pipelines.orchestration.operations import operate

    first = args.operate_from
    last = first + dt.timedelta(days=args.operate_days - 1)
    if monitoring.day_folder(settings, usecase.name, first).exists():
        print(
            f"\n{first} .. {last} were operated by an earlier `make run` (the online store has moved past them): "
            f"see {monitoring.day_folder(settings, usecase.name, first).parent}; `make clean` to operate them again."
        )
        return
    history_end = first - dt.timedelta(days=1)
    history_start = args.start + dt.timedelta(days=args.days)
    if history_start <= history_end:
        print(
            f"\nBuilding the history {history_start} .. {history_end} in bulk (land, load, dbt, Feast export; "
            "without the GX checkpoints the ingest DAG runs on every operated day) ...",
            flush=True,
        )
        log = settings.data_root / "history.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out, contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # ibis, inside Feast's materialization
            seconds = build_days(settings, usecase, history_start, history_end, validate=False)
            materialize(settings, usecase, dt.datetime.combine(first, dt.time(), usecase.tz))
        print(f"Built in {seconds:.0f} s ({log}); the online store holds what was known at {first} 00:00.")
    windows = usecase.training.windows  # months of history now: the spec's windows
    print(
        f"\nOperating {first} .. {last}: each day served through the model service, then the ingest DAG, "
        f"then the monitoring DAG; a retrain request runs the training DAG ({windows.train_days}/"
        f"{windows.validation_days}/{windows.holdout_days}-day window) and releases what passes the gate "
        "through the deploy DAG ...",
        flush=True,
    )
    operated = operate(settings, usecase, first, last, base, key, realtime=realtime)
    requests = [d for d in operated if d.decision["retrain"]]
    if not requests:
        print(f"No retrain requested in {len(operated)} days: the policy saw no persisting breach.")
    reports = monitoring.day_folder(settings, usecase.name, first).parent
    print(f"Drift and performance reports: {reports}/<day>/report.html; training: {settings.data_root / 'training'}")


def cmd_up(args: argparse.Namespace) -> None:
    from pipelines.orchestration import local_airflow
    from pipelines.security.store import check_residency_at_startup

    settings = get_settings()
    check_residency_at_startup(settings)
    local_airflow.prepare(settings)
    from pipelines.usecases.spec import available

    usecases = [resolve_usecase(settings, name) for name in available(settings.usecases_dir)]
    for usecase in usecases:  # ingest runs daily; a streamed use case's watcher runs in the triggerer
        for kind in ("ingest", *(("reconciliation",) if usecase.streaming is not None else ())):
            local_airflow.airflow(settings, "dags", "unpause", usecase.dag_id(kind))
    stopping = []
    for stop_signal in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a service manager stopping us
        signal.signal(stop_signal, lambda *_: stopping.append(True))
    components = ("api-server", "scheduler", "dag-processor", "triggerer")
    identity = _serving_identity(settings)
    with contextlib.ExitStack() as stack:
        processes = stack.enter_context(local_airflow.services(settings, *components))
        print(f"Airflow is up: http://127.0.0.1:{settings.airflow_api_port}")
        print(f"  login: {local_airflow.ADMIN_USER} / {local_airflow.admin_password(settings)}")
        print(f"  approvals (a demo second identity, role Approver): {local_airflow.DEMO_APPROVER} / "
              f"{local_airflow.local_password(settings, local_airflow.DEMO_APPROVER)}")  # fmt: skip
        if identity:
            from serving.local import running_service

            log = settings.data_root / "serving" / "service.log"
            base = stack.enter_context(running_service(settings, *identity, settings.serving_port, log=log))
            print(f"Model service: {base} (/status says what it serves; keys: `platform api-key NAME --scope predict`)")
        from pipelines.streaming.service import processor_ports, running_processor

        ports = processor_ports(settings, usecases)
        for streamed in (u for u in usecases if u.name in ports):
            mine = settings.model_copy(update={"stream_processor_port": ports[streamed.name]})
            log = settings.data_root / "streaming" / f"{streamed.name}-processor.log"
            stack.enter_context(running_processor(mine, streamed, log=log))
            print(f"Stream processor of {streamed.name}: http://127.0.0.1:{ports[streamed.name]}/healthz "
                  f"(`platform stream replay {streamed.name} --from ... --to ...` publishes events)")  # fmt: skip
        from pipelines.alerting.stack import MonitoringUnavailable, running_monitoring

        try:
            monitoring = stack.enter_context(running_monitoring(settings, usecases, serving=identity is not None))
            print(f"Prometheus: {monitoring.prometheus} (/targets, /alerts); Alertmanager: {monitoring.alertmanager}, "
                  f"notifying {monitoring.receiver} (each notification goes into the ledger)")  # fmt: skip
        except MonitoringUnavailable as exc:
            print(f"Prometheus and Alertmanager not started: {exc}")
        print(f"  logs: {settings.airflow_dir}/*.log, {settings.data_root / 'serving'}   Stop with Ctrl-C.", flush=True)
        while not stopping:
            exited = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
            if exited:
                raise local_airflow.AirflowRunFailed(f"Airflow exited {exited}; see {settings.airflow_dir}/*.log")
            time.sleep(1)
        print("Stopping Airflow ...", flush=True)
    print("Airflow stopped.")


def cmd_stage(args: argparse.Namespace) -> None:
    from pipelines.orchestration import ingest

    stage = {
        "land": ingest.land,
        "validate": ingest.validate,
        "transform": ingest.transform,
        "materialize": ingest.materialize,
    }[args.command]
    print(json.dumps(stage(args.usecase, args.date), indent=2, default=str))


def cmd_summary(args: argparse.Namespace) -> None:
    from pipelines.orchestration.summary import ingest_summary

    settings = get_settings()
    usecase = resolve_usecase(settings, args.usecase)
    start = args.start or usecase.ingest.first_day
    print(ingest_summary(settings, usecase, start, start + dt.timedelta(days=args.days - 1)).render())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, help_text in (
        ("run", cmd_run, "run the ingest DAG through Airflow for a window of days and print a summary"),
        ("summary", cmd_summary, "print what landed, validated, was built and materialized"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--start", type=_date, help="the first day (default: the spec's ingest.first_day)")
        command.add_argument("--days", type=_days, default=7)
        command.add_argument("--usecase", help=USECASE_HELP)
        command.set_defaults(handler=handler)
        if name == "run":
            command.add_argument(
                "--operate-from",
                type=_date,
                help="after the first window, operate days from this one (history built up to it)",
            )
            command.add_argument(
                "--lead-time",
                help="predict this long before each request's time (prediction.lead_time, e.g. PT2H), with the "
                "stream processor running; default: the spec's",
            )
            command.add_argument(
                "--operate-days",
                type=lambda text: _days(text, least=0),
                default=0,
                help="days to operate from --operate-from (0: none); stops after a release",
            )
    commands.add_parser(
        "up", help="serve Airflow (UI on 127.0.0.1:8080, PLATFORM_AIRFLOW_API_PORT) until Ctrl-C"
    ).set_defaults(handler=cmd_up)
    for name in ("land", "validate", "transform", "materialize"):
        command = commands.add_parser(name, help=f"the {name} stage of a use case's ingest DAG for one date")
        command.add_argument("date", type=_date)
        command.add_argument("--usecase", help=USECASE_HELP)
        command.set_defaults(handler=cmd_stage)
    commands.add_parser(
        "audit-verify", help="verify the audit ledger's hash chain; names the first broken or missing record"
    ).set_defaults(handler=cmd_audit_verify)
    models = commands.add_parser("models", help="the model registry: list, show, promote, rollback")
    actions = models.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="versions with gate outcome and metrics, and the aliases")
    listing.add_argument("model", nargs="?")
    show = actions.add_parser("show", help="a version's verified manifest (lineage, metrics, gate report)")
    show.add_argument("model")
    show.add_argument("version", help="a number, or champion / challenger")
    promote = actions.add_parser("promote", help="point an alias at a version (refused for rejected ones)")
    promote.add_argument("model")
    promote.add_argument("version", type=int)
    actions.add_parser("approvals", help="releases waiting for an Approver (the deploy DAG's approval step)")
    rollback = actions.add_parser("rollback", help="point an alias back at the version it held before")
    rollback.add_argument("model")
    for command in (promote, rollback):
        command.add_argument("--alias", default="champion", choices=["champion", "challenger"])
        command.add_argument("--reason", default="by hand (platform models)")
    models.set_defaults(handler=cmd_models)
    replay = commands.add_parser("replay", help="send a day's requests to the model service as consumer traffic")
    replay.add_argument("day", type=_date)
    replay.add_argument("--usecase", help=USECASE_HELP)
    replay.add_argument("--url", help="the service (default http://127.0.0.1:PLATFORM_SERVING_PORT)")
    replay.add_argument("--batch", type=int, default=100)
    replay.set_defaults(handler=cmd_replay)
    ab = commands.add_parser("ab-report", help="compare served variants on the landed outcomes of their items")
    ab.add_argument("first", type=_date, help="first day (of the items' local time)")
    ab.add_argument("last", type=_date, help="last day")
    ab.add_argument("--usecase", help=USECASE_HELP)
    ab.add_argument("--json", action="store_true", help="print the report as JSON")
    ab.set_defaults(handler=cmd_ab_report)
    scaffold = commands.add_parser(
        "new-usecase", help="write a new use case's skeleton (spec, dbt models, Feast definitions, suite, DAGs, test)"
    )
    scaffold.add_argument("name", help="lowercase letters, digits and _, e.g. taxi_fares")
    scaffold.add_argument("--title", help="a human title (default: from the name)")
    scaffold.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository (default: this one)")
    scaffold.add_argument("--source", default="package_file", choices=SOURCE_KINDS,
                          help="where its raw table is read (default: a package file)")  # fmt: skip
    scaffold.set_defaults(handler=cmd_new_usecase)
    api_key = commands.add_parser("api-key", help="create a serving API key (operator); prints it once")
    api_key.add_argument("name")
    api_key.add_argument(
        "--scope", action="append", required=True, help="predict (every use case), predict:<use case> or admin"
    )
    api_key.set_defaults(handler=cmd_api_keys)
    bootstrap = commands.add_parser(
        "vault-bootstrap", help="bootstrap VAULT_ADDR with VAULT_TOKEN (mounts, keys, policies, AppRole); idempotent"
    )
    bootstrap.add_argument("--audit-file", type=Path, help="enable a file audit device writing here (Vault only)")
    bootstrap.set_defaults(handler=cmd_vault_bootstrap)
    commands.add_parser(
        "rotate-keys", help="rotate the Transit keys for artifacts and manifests (operator)"
    ).set_defaults(handler=cmd_keys)
    commands.add_parser(
        "rewrap", help="rewrap every sealed artifact's data key to the newest key version (operator)"
    ).set_defaults(handler=cmd_keys)
    stream_commands.add_commands(commands)
    alerting_commands.add_commands(commands)
    governance_commands.add_commands(commands)
    compute_commands.add_commands(commands)
    return parser


def cmd_audit_verify(args: argparse.Namespace) -> None:
    from pipelines.security.audit import audit_ledger

    ledger = audit_ledger(get_settings())
    report = ledger.verify()
    print(f"{ledger}: {report.records} records, chain intact, head {report.head}")


def cmd_keys(args: argparse.Namespace) -> None:
    from pipelines.security.artifacts import SealedArtifacts, rotate_keys
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault

    settings = get_settings()
    vault, ledger = Vault.from_settings(settings), audit_ledger(settings)
    if args.command == "rotate-keys":
        versions = rotate_keys(vault)
        ledger.append("keys.rotate", "transit", versions)
        print("rotated: " + ", ".join(f"{name} now at version {v}" for name, v in versions.items()))
    else:
        counts = SealedArtifacts(artifact_store(settings, ledger), vault, ledger).rewrap_all()
        print(f"rewrapped {counts['rewrapped']} artifacts; {counts['current']} were already on the newest key")


def cmd_vault_bootstrap(args: argparse.Namespace) -> None:
    from pipelines.security.vault import Vault, bootstrap, local_openbao

    settings = get_settings()
    if settings.vault_addr == local_openbao(settings).addr:
        print(f"the platform's own OpenBao ({settings.vault_addr}) is bootstrapped at every start; nothing to do")
        return
    role_ids = bootstrap(Vault.from_settings(settings), audit_file=args.audit_file)
    print(f"bootstrapped {settings.vault_addr}: mounts platform/ (KV v2) and transit/, keys, policies, AppRole roles")
    for role, role_id in role_ids.items():
        print(f"  role {role:<9} role_id {role_id}")


def cmd_models(args: argparse.Namespace) -> None:
    from pipelines.registry.registry import Registry
    from pipelines.security.audit import audit_ledger
    from pipelines.security.store import artifact_store
    from pipelines.security.vault import Vault

    settings = get_settings()
    if args.action == "approvals":
        from pipelines.governance.approvals import pending

        waiting = pending(settings)
        for request in waiting:
            refused = f"; not {', '.join(request['excluded'])}" if request["excluded"] else ""
            print(f"{request['model']} as {request['alias']}: asked {request['requested_at']} by {request['run']}, "
                  f"answered by an Approver{refused} within {request['timeout_s']:.0f} s")  # fmt: skip
        print(f"{len(waiting)} release(s) waiting for approval (Airflow UI: Required Actions)")
        return
    ledger = audit_ledger(settings)
    registry = Registry(artifact_store(settings, ledger), Vault.from_settings(settings), ledger)
    if args.action == "list":
        for model in [args.model] if args.model else registry.models():
            aliases = {a: (registry.alias(model, a) or {}).get("version") for a in ("champion", "challenger")}
            print(f"{model}: " + ", ".join(f"{a} v{v}" for a, v in aliases.items() if v) or f"{model}: no aliases")
            metric = resolve_usecase(settings, model).primary_metric
            for version in registry.versions(model):
                m = registry.manifest(model, version)
                print(
                    f"  v{version:<4} {m['family']:<8} {'passed' if m['gate']['passed'] else 'REJECTED':<9}"
                    f"{metric} {m['metrics']['holdout'][metric]:.4f}  "
                    f"window {m['training']['window']['train_start']}..{m['training']['window']['holdout_end']}  "
                    f"registered {m['registered_at']}"
                )
    elif args.action == "show":
        print(json.dumps(registry.manifest(args.model, _version(registry, args.model, args.version)), indent=2))
    elif args.action == "promote":
        moved = registry.promote(args.model, int(args.version), args.alias, reason=args.reason)
        print(f"{args.model} {args.alias} is now v{moved['version']}")
    else:
        moved = registry.rollback(args.model, args.alias, reason=args.reason)
        print(f"{args.model} {args.alias} rolled back to v{moved['version']}")


def _version(registry, model: str, ref: str) -> int:
    """A version number, or an alias name (champion, challenger)."""
    if ref.isdigit():
        return int(ref)
    current = registry.alias(model, ref)
    if current is None:
        raise PlatformError(f"{model} has no {ref}")
    return current["version"]


def cmd_ab_report(args: argparse.Namespace) -> None:
    from pipelines.deploy.analysis import ab_report, render
    from pipelines.features.store import labels
    from serving import predictions

    settings = get_settings()
    usecase = resolve_usecase(settings, args.usecase)
    log = predictions.read(settings, usecase)
    if len(log):
        day = log[usecase.serving.time].dt.date
        log = log[(day >= args.first) & (day <= args.last)]
    if not len(log):
        raise PlatformError(f"no logged {usecase.name} predictions for {args.first} .. {args.last}")
    report = ab_report(usecase, log, labels(settings, usecase, args.first, args.last))
    print(json.dumps(report, indent=2) if args.json else render(report))


def cmd_new_usecase(args: argparse.Namespace) -> None:
    from pipelines.usecases.scaffold import new_usecase

    written = new_usecase(args.root, args.name, args.title, args.source)
    print(f"Use case {args.name}: wrote {len(written)} files")
    for path in written:
        print(f"  {path.relative_to(args.root)}")
    print(
        f"Its DAGs parse already. Replace the TODOs (README: Add a use case), then run its data tests:\n"
        f"  .venv/bin/python -m pytest tests/usecases/test_{args.name}.py"
    )


def cmd_api_keys(args: argparse.Namespace) -> None:
    from pipelines.security.vault import Vault
    from serving.auth import create_key

    key = create_key(Vault.from_settings(get_settings()), args.name, args.scope)
    print(f"API key {args.name!r} ({', '.join(args.scope)}): {key}\nIt is shown once; Vault keeps only its SHA-256.")


def cmd_replay(args: argparse.Namespace) -> None:
    from serving.replay import replay

    key = os.environ.get("PLATFORM_API_KEY")
    if not key:
        raise PlatformError(
            "set PLATFORM_API_KEY to a key with the predict scope (`platform api-key NAME --scope predict`)"
        )
    settings = get_settings()
    url = args.url or f"http://127.0.0.1:{settings.serving_port}"
    print(replay(settings, resolve_usecase(settings, args.usecase), args.day, url, key, batch=args.batch).render())


OPERATOR_COMMANDS = {"rotate-keys", "rewrap", "api-key", "compliance-report"}
AUTHORING_COMMANDS = {"new-usecase"}  # write files only: no Vault needed


@contextlib.contextmanager
def _vault_for_process(role: str) -> Iterator[None]:
    """Start (or reach) Vault and give this process and its children its identity."""
    from pipelines.security.vault import platform_vault, vault_environment

    with platform_vault(get_settings(), role) as settings:
        os.environ.update(settings_environment(settings))
        os.environ.update(vault_environment(settings))
        get_settings.cache_clear()
        yield


def default_usecase(settings: Settings) -> str:
    """PLATFORM_DEFAULT_USECASE, or the only spec under the use-case folder; else the choice is the user's."""
    from pipelines.usecases.spec import available

    known = available(settings.usecases_dir)
    if settings.default_usecase or len(known) == 1:
        return settings.default_usecase or known[0]
    raise PlatformError(f"name a use case with --usecase (known: {', '.join(known)}), or set PLATFORM_DEFAULT_USECASE")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if "usecase" in args and args.usecase is None:
            args.usecase = default_usecase(get_settings())
        if args.command in AUTHORING_COMMANDS | compute_commands.NO_VAULT_COMMANDS:
            args.handler(args)
            return 0
        role = ("operator" if args.command in OPERATOR_COMMANDS else
                "privacy" if args.command in governance_commands.PRIVACY_COMMANDS else "training")  # fmt: skip
        with _vault_for_process(role):
            args.handler(args)
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
