"""The DAGs of a use case, built from its spec (usecases/<name>/usecase.yaml).

A use case's DAG files are one call each (`ingest_dag("<name>")`, ...). The builders read
the spec at parse time (a YAML file: the DAG files' top level stays light) for ids, schedules,
time zone, owner and tags, and show the spec in each DAG's docs in the Airflow UI; the tasks
import the heavy stages when they run. The DAGs chain through the use case's assets:
ingest → `<name>_features` → training → `<name>_model` → deploy; monitoring → `<name>_retrain`
→ training. A use case with streams has a fifth DAG, its reconciliation, scheduled on the
`<name>_stream_days` asset that an asset watcher on the broker updates as the streams pass each day.
Deploy → `<name>_champion` → batch scoring, which also runs each evening for the next day's schedule; housekeeping
applies the spec's retention.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipelines.orchestration.airflow_adapter import fail_fast_on_bad_data
from pipelines.settings import REPO_ROOT, get_settings
from pipelines.usecases.spec import UseCase, resolve_usecase, spec_path

INGEST_DOC = """Daily ingest: land → validate (Great Expectations) → transform (warehouse load + dbt build) →
materialize (Feast), for the local operations day of each data interval. A failed validation
stops the run: nothing is loaded, built or materialized. With streams in the spec, reconcile_stream
compares the values the stream processor wrote for the day with the marts dbt rebuilt, and fails
naming every difference (skipped for a day the stream did not see); materialize leaves a streamed
view's online values to its stream once the stream is past the day. Each run processes the day
named by its logical date: scheduled and backfill runs and a manual run for a chosen date alike."""

BACKFILL_DOC = """Backfill a range of days in four tasks instead of four a day: trigger it with
`{"first_day": "2013-01-01", "last_day": "2013-03-31"}`. land → validate → transform → materialize, as the
ingest DAG, over the whole range: each day is still its own landed partition, validated by its suite; a
partition that fails stops the run before anything is loaded, naming it (a re-run lands the days again,
unchanged). transform loads the range and rebuilds the use case's marts from the raw tables in one dbt
build (the marts day-by-day builds make), so it costs the data loaded, not the days asked for; materialize
brings the online store to the end of the last day and updates the features asset, as the ingest DAG's
does. It shares the ingest DAG's pools: the two never write the warehouse or the online store at once."""

TRAINING_DOC = """Training: dataset → one candidate per model family of the spec → gate → registry.
Runs when new features land, when drift monitoring asks for a retrain, and on the spec's schedule.
The window ends at the day the triggering event names (or the run's `last_day` parameter, or the
newest landed day): fitted on the earliest days, early-stopped on the next, judged with the
champion on the latest (the spec's `training.windows`). Every candidate is registered, signed and
encrypted; only one that passes the gate moves an alias (champion if there is none, else challenger)."""

DEPLOY_DOC = """Deployment: Bento build → release, on every model event (or by hand with `{"version": n}`).
With the spec's `deploy.approval: required`, a person with the Approver role answers the `approve` step first
(Required Actions in the Airflow UI: the candidate's gate report, metrics beside the champion's, lineage);
whoever started its training or this release may not; a rejection skips the release, no answer within
`deploy.approval_timeout` fails it. A first champion goes live at once. A challenger is smoke-tested in
shadow (scored on real requests, never returned), then walked through the canary steps (PLATFORM_CANARY_STEPS, each
watched for PLATFORM_CANARY_OBSERVE_SECONDS): its live error rate, scoring latency and prediction
distribution against the champion's from the prediction log. A breach puts all traffic back on
the champion and fails the run with the reasons; passing every step promotes it. Every move is in
the audit ledger."""

MONITORING_DOC = """Daily drift and performance monitoring of the champion, for the day before the run (or the
`day` parameter): its live answers from the prediction log against the reference sample
registered with the model → alibi-detect in the drift virtualenv (KS per feature with Bonferroni
correction, chi-squared for the spec's categorical features, MMD on a bounded sample, drift of the
predictions) → performance on the landed labels → the spec's retraining policy (effect sizes
beyond the drift normal between reference days, weighted by the model's reliance on each feature;
log loss and calibration; consecutive days, cooldown, one request in flight) → an HTML report. A
retrain emits the use case's retrain asset; the training DAG is scheduled on it."""


RECONCILIATION_DOC = """Reconciliation of the stream with the batch, for each day the stream processor has announced
complete (every stream past the day's end): an asset watcher in the triggerer reads the announcements
from the broker (pipelines/orchestration/stream_days.py) and each one updates the stream-days asset,
which schedules this DAG; nothing polls. Every feature row stamped in the day is compared with the
marts dbt built, key by key and column by column; a difference fails the run naming keys and both
values. A day the batch has not built yet is left to the ingest DAG's reconcile_stream, which runs
after the build. Run it by hand for one day with `{"day": "YYYY-MM-DD"}`."""


HOUSEKEEPING_DOC = """Housekeeping of the day (the spec's `retention`, counted back from this run's day): raw partitions
older than `raw_days`, logged answers to items older than `prediction_log_days` and model versions beyond the
newest `registry_versions` are deleted; a raw partition in the lineage of the live champion or challenger, and
those versions themselves, are kept (the run's log and the ledger say so). Every deletion is a ledger record."""


def usecase(name: str) -> UseCase:
    """The spec as this platform runs it (PLATFORM_USECASE_OVERRIDES applied); a bad spec fails the parse."""
    return resolve_usecase(get_settings(), name)


def assets(spec: UseCase) -> tuple[Asset, Asset, Asset]:
    """The use case's features, retrain and model assets."""
    return (
        Asset(f"{spec.name}_features", uri=f"feast://{spec.name}/{spec.features.feature_service}"),
        Asset(f"{spec.name}_retrain", uri=f"platform://{spec.name}/retrain"),
        Asset(f"{spec.name}_model", uri=f"registry://{spec.name}"),
    )


def champion(spec: UseCase) -> Asset:
    """The use case's champion: updated by the deploy DAG when a release makes a version the champion."""
    return Asset(f"{spec.name}_champion", uri=f"registry://{spec.name}/champion")


def stream_days(spec: UseCase) -> Asset:
    """The use case's stream-days asset: updated, through its watcher, for each day its streams have passed."""
    from airflow.sdk import AssetWatcher

    from pipelines.orchestration.stream_days import StreamDaysTrigger
    from pipelines.streaming.broker import days_key

    settings = get_settings()
    trigger = StreamDaysTrigger(settings.stream_broker_url, days_key(settings, spec.name))
    return Asset(f"{spec.name}_stream_days", uri=f"platform://{spec.name}/stream-days",
                 watchers=[AssetWatcher(name=f"{spec.name}_stream_days", trigger=trigger)])  # fmt: skip


def _doc(spec: UseCase, kind: str, what: str) -> str:
    overrides = get_settings().usecase_overrides.get(spec.name)
    shown = f" with PLATFORM_USECASE_OVERRIDES {overrides}" if overrides else ""
    path = spec_path(get_settings().usecases_dir, spec.name)
    path = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    return (
        f"# {spec.title}: {kind}\n\n{spec.description}\n\n## This DAG\n\n{what}\n\n"
        f"## Use-case spec\n\n`{path}`"
        f"{shown}:\n\n```yaml\n{spec.as_yaml()}```\n"
    )


def _args(spec: UseCase, retries: int, retry_delay: pendulum.Duration, timeout: pendulum.Duration) -> dict:
    return {"owner": spec.owner, "retries": retries, "retry_delay": retry_delay, "execution_timeout": timeout}


def _midnight(day: dt.date, spec: UseCase) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, tz=spec.timezone)


def _events(triggering_asset_events) -> list[dict]:
    return [dict(e.extra or {}) for batch in (triggering_asset_events or {}).values() for e in batch]


def ingest_dag(name: str) -> DAG:
    from airflow.timetables.interval import CronDataIntervalTimetable  # each builder imports its own timetable

    spec = usecase(name)
    features, _, _ = assets(spec)
    tz = spec.tz

    @dag(
        dag_id=spec.dag_id("ingest"),
        # One run per local day, after it ends, covering [midnight, next midnight) in the spec's time zone.
        schedule=CronDataIntervalTimetable(spec.ingest.schedule, timezone=spec.timezone),
        start_date=_midnight(spec.ingest.first_day, spec),
        end_date=_midnight(spec.ingest.last_day, spec),
        catchup=False,
        max_active_runs=spec.ingest.max_active_runs,
        default_args=_args(spec, 2, pendulum.duration(seconds=30), pendulum.duration(minutes=20)),
        tags=[spec.name, "ingest", "features"],
        doc_md=_doc(spec, "ingest", INGEST_DOC),
    )
    def ingest():
        @task
        @fail_fast_on_bad_data
        def land(logical_date=None) -> dict:
            from pipelines.orchestration import ingest

            return ingest.land(name, logical_date.astimezone(tz).date())

        @task
        @fail_fast_on_bad_data
        def validate(landed: dict, logical_date=None) -> dict:
            from pipelines.orchestration import ingest

            return ingest.validate(name, logical_date.astimezone(tz).date(), landed["relanded"])

        # Trailing features need the previous days in the warehouse: one day at a time, in order.
        @task(pool="warehouse", depends_on_past=True)
        @fail_fast_on_bad_data
        def transform(validated: dict, logical_date=None) -> dict:
            from pipelines.orchestration import ingest

            return ingest.transform(name, logical_date.astimezone(tz).date(), validated["relanded"])

        @task(pool="feature_store", depends_on_past=True, outlets=[features])
        def materialize(transformed: dict, logical_date=None, outlet_events=None) -> dict:
            from pipelines.orchestration import ingest

            day = logical_date.astimezone(tz).date()
            outlet_events[features].extra = {"day": day.isoformat()}  # the training DAG's window ends here
            return ingest.materialize(name, day)

        transformed = transform(validate(land()))
        materialize(transformed)
        if spec.streaming is not None:

            @task
            @fail_fast_on_bad_data
            def reconcile_stream(transformed: dict, logical_date=None) -> list[str]:
                """The stream's values of the day against the batch's marts; skipped for a day it did not see."""
                from pipelines.orchestration import ingest

                return ingest.reconcile_stream(name, logical_date.astimezone(tz).date())

            reconcile_stream(transformed)

    return ingest()


def backfill_dag(name: str) -> DAG:
    spec = usecase(name)
    features, _, _ = assets(spec)

    @dag(
        dag_id=spec.dag_id("backfill"),
        schedule=None,  # triggered with the range: {"first_day": "YYYY-MM-DD", "last_day": "YYYY-MM-DD"}
        start_date=_midnight(spec.ingest.first_day, spec),
        catchup=False,
        max_active_runs=1,
        default_args=_args(spec, 1, pendulum.duration(minutes=1), pendulum.duration(hours=4)),
        params={"first_day": spec.ingest.first_day.isoformat(), "last_day": spec.ingest.first_day.isoformat()},
        tags=[spec.name, "ingest", "backfill", "features"],
        doc_md=_doc(spec, "backfill", BACKFILL_DOC),
    )
    def backfill():
        def window(params) -> tuple[dt.date, dt.date]:
            return dt.date.fromisoformat(params["first_day"]), dt.date.fromisoformat(params["last_day"])

        @task
        @fail_fast_on_bad_data
        def land(params=None) -> dict:
            from pipelines.orchestration import ingest

            return ingest.land_days(name, *window(params))

        @task
        @fail_fast_on_bad_data
        def validate(landed: dict, params=None) -> dict:
            from pipelines.orchestration import ingest

            return ingest.validate_days(name, *window(params), landed["relanded"])

        @task(pool="warehouse")
        @fail_fast_on_bad_data
        def transform(validated: dict, params=None) -> dict:
            from pipelines.orchestration import ingest

            return ingest.transform_days(name, *window(params), validated["relanded"])

        @task(pool="feature_store", outlets=[features])
        def materialize(transformed: dict, params=None, outlet_events=None) -> dict:
            from pipelines.orchestration import ingest

            _, last = window(params)
            outlet_events[features].extra = {"day": last.isoformat()}  # the training DAG's window ends here
            return ingest.materialize(name, last)

        materialize(transform(validate(land())))

    return backfill()


def reconciliation_dag(name: str) -> DAG:
    spec = usecase(name)
    if spec.streaming is None:
        from pipelines.errors import SettingsError

        raise SettingsError(
            f"use case {name} declares no streams (its spec's `streaming`): it has nothing to reconcile"
        )
    days = stream_days(spec)

    @dag(
        dag_id=spec.dag_id("reconciliation"),
        schedule=[days],
        start_date=_midnight(spec.ingest.first_day, spec),
        catchup=False,
        max_active_runs=1,
        default_args=_args(spec, 1, pendulum.duration(minutes=1), pendulum.duration(minutes=30)),
        params={"day": None},
        tags=[spec.name, "streaming", "reconciliation"],
        doc_md=_doc(spec, "reconciliation", RECONCILIATION_DOC),
    )
    def reconciliation():
        @task
        @fail_fast_on_bad_data
        def reconcile(params=None, triggering_asset_events=None) -> list[str]:
            from pipelines.orchestration import ingest

            announced = [e["payload"]["day"] for e in _events(triggering_asset_events) if e.get("payload")]
            chosen = [params["day"]] if params and params.get("day") else announced
            return ingest.reconcile_stream_days(name, sorted({dt.date.fromisoformat(str(d)) for d in chosen}))

        reconcile()

    return reconciliation()


def housekeeping_dag(name: str) -> DAG:
    from airflow.timetables.interval import CronDataIntervalTimetable

    spec = usecase(name)
    tz = spec.tz

    @dag(
        dag_id=spec.dag_id("housekeeping"),
        schedule=CronDataIntervalTimetable("0 4 * * *", timezone=spec.timezone),  # after the night's ingest
        start_date=_midnight(spec.ingest.first_day, spec),
        catchup=False,
        max_active_runs=1,
        default_args=_args(spec, 1, pendulum.duration(minutes=5), pendulum.duration(hours=1)),
        tags=[spec.name, "governance", "retention"],
        doc_md=_doc(spec, "housekeeping", HOUSEKEEPING_DOC),
    )
    def housekeeping():
        @task
        def housekeep(logical_date=None) -> dict:
            from dataclasses import asdict

            from pipelines.governance.retention import housekeep

            settings = get_settings()
            done = housekeep(settings, resolve_usecase(settings, name), logical_date.astimezone(tz).date())
            print(done.render())
            return asdict(done)

        housekeep()

    return housekeeping()


def training_dag(name: str) -> DAG:
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

    spec = usecase(name)
    features, retrain, model = assets(spec)

    @dag(
        dag_id=spec.dag_id("training"),
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(spec.training.schedule, timezone=spec.timezone, run_immediately=False),
            assets=(features | retrain),
        ),
        catchup=False,  # and no start_date: unpausing waits for the next scheduled time, never runs a missed one
        max_active_runs=1,
        default_args=_args(spec, 1, pendulum.duration(minutes=1), pendulum.duration(hours=2)),
        params={"last_day": None},
        tags=[spec.name, "training", "gate", "registry"],
        doc_md=_doc(spec, "training", TRAINING_DOC),
    )
    def training():
        @task
        @fail_fast_on_bad_data
        def dataset(params=None, triggering_asset_events=None, run_id=None) -> str:
            from pipelines.orchestration import training

            last_day = training.window_end(params, _events(triggering_asset_events))
            return training.prepare_run(get_settings(), name, last_day, run_id)  # the spec as it is now, frozen

        @task(pool="gpu")
        @fail_fast_on_bad_data
        def train(folder: str, family: str) -> dict:
            from pipelines.orchestration import training

            return training.train_candidate(get_settings(), folder, family)

        @task(outlets=[model])
        @fail_fast_on_bad_data
        def gate_and_register(folder: str, candidates: list, outlet_events=None, dag_run=None) -> dict:
            from pipelines.orchestration import training

            families = [c["family"] for c in candidates]  # registered by whoever started the run (four eyes)
            outcome = training.gate_and_register(get_settings(), folder, families, dag_run.triggering_user_name)
            print(training.render(outcome))
            # The deploy DAG reads which version moved: {"champion": n} or {"challenger": n}, or neither.
            outlet_events[model].extra = {k: outcome[k] for k in ("model", "champion", "challenger") if k in outcome}
            return outcome

        folder = dataset()
        candidates = train.partial(folder=folder).expand(family=list(spec.training.families))
        gate_and_register(folder, candidates)

    return training()


def deploy_dag(name: str) -> DAG:
    spec = usecase(name)
    _, _, model = assets(spec)
    live = champion(spec)

    @dag(
        dag_id=spec.dag_id("deploy"),
        schedule=[model],
        start_date=_midnight(spec.ingest.first_day, spec),
        catchup=False,
        max_active_runs=1,  # one release at a time
        # A breach, a failed smoke test or bad configuration fails at once (fail_fast_on_bad_data); a
        # retry after anything else starts the release over from the champion-only plan.
        default_args=_args(spec, 1, pendulum.duration(minutes=1), pendulum.duration(hours=12)),
        params={"version": None, "alias": "challenger"},
        tags=[spec.name, "deploy", "canary"],
        doc_md=_doc(spec, "deploy", DEPLOY_DOC),
    )
    def deploy():
        @task
        @fail_fast_on_bad_data
        def target(params=None, triggering_asset_events=None) -> list:
            from pipelines.orchestration import deploy

            chosen = deploy.release_target(params, _events(triggering_asset_events))
            if chosen is None:
                raise AirflowSkipException("no version moved: the training run registered nothing that passed the gate")
            return list(chosen)

        @task
        @fail_fast_on_bad_data
        def build_bento() -> str:
            from pipelines.orchestration import deploy

            return deploy.build_bento(get_settings())

        @task(outlets=[live])
        @fail_fast_on_bad_data
        def release(chosen: list, bento: str, ti=None, outlet_events=None) -> dict:
            from pipelines.orchestration import deploy

            print(f"Releasing {name} v{chosen[1]} ({chosen[0]}) with Bento {bento}")
            done = deploy.release(get_settings(), name, chosen[0], chosen[1], dag_run=f"{ti.dag_id}/{ti.run_id}")
            outlet_events[live].extra = {"champion": chosen[1]}  # a release that ends well leaves it the champion
            return done

        chosen = target()
        released = release(chosen, build_bento())
        if spec.deploy.approval == "required":
            from pipelines.orchestration.approval import CandidateApproval

            # A person's answer is not retried: no answer in time rejects (the step fails, an incident).
            approve = CandidateApproval(task_id="approve", usecase=name, target_task="target", retries=0,
                                        response_timeout=spec.deploy.approval_timeout)  # fmt: skip
            chosen >> approve >> released

    return deploy()


def monitoring_dag(name: str) -> DAG:
    from airflow.timetables.trigger import CronTriggerTimetable

    spec = usecase(name)
    _, retrain, _ = assets(spec)
    tz = spec.tz

    @dag(
        dag_id=spec.dag_id("monitoring"),
        schedule=CronTriggerTimetable(spec.monitoring.schedule, timezone=spec.timezone, run_immediately=False),
        catchup=False,  # and no start_date: unpausing waits for the next scheduled time, never runs a missed one
        max_active_runs=1,
        default_args=_args(spec, 1, pendulum.duration(minutes=2), pendulum.duration(hours=1)),
        params={"day": None},
        tags=[spec.name, "monitoring", "drift"],
        doc_md=_doc(spec, "monitoring", MONITORING_DOC),
    )
    def monitoring():
        @task
        @fail_fast_on_bad_data
        def window(params=None, logical_date=None) -> str:
            from pipelines.orchestration import monitoring

            if params and params.get("day"):
                day = dt.date.fromisoformat(str(params["day"]))
            else:
                day = pendulum.instance(logical_date).in_timezone(tz).date() - dt.timedelta(days=1)
            settings = get_settings()
            return monitoring.prepare_window(settings, resolve_usecase(settings, name), day)

        # alibi-detect needs numpy < 2: it has its own virtualenv (make setup builds it).
        @task.external_python(python=str(get_settings().drift_python), expect_airflow=False)
        def detect(folder: str, repo: str) -> str:
            import sys

            sys.path.insert(0, repo)
            from pipelines.monitoring.detect import main

            main([f"{folder}/reference.parquet", f"{folder}/current.parquet", f"{folder}/config.json",
                  f"{folder}/drift.json"])  # fmt: skip
            return folder

        @task
        @fail_fast_on_bad_data
        def assess(folder: str) -> dict:
            from pathlib import Path

            from pipelines.orchestration import monitoring

            outcome = monitoring.assess_and_decide(get_settings(), folder, dt.date.fromisoformat(Path(folder).name))
            print(monitoring.render(outcome))
            return outcome["decision"]

        @task(outlets=[retrain])
        def request_retrain(decision: dict, outlet_events=None) -> dict:
            if not decision["retrain"]:
                raise AirflowSkipException(decision["reason"])
            # The training DAG ends its window on window_end (pipelines.orchestration.training.window_end).
            outlet_events[retrain].extra = {"window_end": decision["window_end"], "reason": decision["reason"]}
            return decision

        request_retrain(assess(detect(window(), str(REPO_ROOT))))

    return monitoring()


BATCH_SCORING_DOC = """Batch scoring: a day's prediction items scored with the champion, into the warehouse table
`batch.<use case>` and a Parquet partition under the data root. A scheduled run scores the next day's published
schedule (the source's day, as consumers would send it); `{"day": "YYYY-MM-DD"}` scores that day, and
`{"items_table": "schema.table"}` a warehouse table's rows of the day instead. The champion is verified as the model
service verifies it (signature, decryption, file hashes, feature contract), every item gets the offline store's
features as of its prediction time, and the compute planner chooses the runtime from this machine's calibration
(`platform calibrate`). Every row carries the model version, the FeatureService and its hash, the run id and the
runtime; a re-run replaces the day; a subject objecting to automated decisions is answered human_review, unscored.
A new champion (the deploy DAG's promotion) re-scores the open days: those scored and not landed yet."""


def batch_scoring_dag(name: str) -> DAG:
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

    spec = usecase(name)
    tz = spec.tz

    @dag(
        dag_id=spec.dag_id("batch_scoring"),
        schedule=AssetOrTimeSchedule(  # the evening before: tomorrow's schedule is published
            timetable=CronTriggerTimetable("0 18 * * *", timezone=spec.timezone, run_immediately=False),
            assets=champion(spec),
        ),
        catchup=False,
        max_active_runs=1,
        default_args=_args(spec, 1, pendulum.duration(minutes=5), pendulum.duration(hours=2)),
        params={"day": None, "items_table": None},
        tags=[spec.name, "batch", "inference"],
        doc_md=_doc(spec, "batch scoring", BATCH_SCORING_DOC),
    )
    def batch_scoring():
        @task
        @fail_fast_on_bad_data
        def score(params=None, logical_date=None, triggering_asset_events=None, run_id=None) -> list[dict]:
            from dataclasses import asdict

            from pipelines.batch.scoring import score_day, scoring_days, warehouse_items

            settings = get_settings()
            spec_now = resolve_usecase(settings, name)
            days = scoring_days(settings, spec_now, params or {}, logical_date.astimezone(tz).date(),
                                champion_changed=bool(_events(triggering_asset_events)))  # fmt: skip
            if not days:
                raise AirflowSkipException("a new champion, and no open day to score again")
            done = []
            for day in days:
                table = (params or {}).get("items_table")
                items = warehouse_items(settings, spec_now, table, day) if table else None
                result = score_day(settings, spec_now, day, run_id, items=items)
                print(result.render())
                done.append(asdict(result))
            return done

        score()

    return batch_scoring()
