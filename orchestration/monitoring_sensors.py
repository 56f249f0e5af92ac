"""Sensors that act on monitoring: drift-triggered retraining, and alerts grouped by root cause."""

import json
from dataclasses import asdict, replace
from datetime import date, timedelta

import dagster as dg

from assets.common import OWNERS, stage_days, table_key
from assets.ingestion import LANDING_DEADLINE_HOUR, overdue_day
from ml.alerts import Alert, Signal, episode_starts, group
from ml.retrain_policy import Attempt, DayHealth, PolicyState, RetrainPolicy, decide, record_outcome
from ml.spec import UseCaseSpec
from resources.alerts import AlertSink
from resources.storage import Storage


def day_health(spec: UseCaseSpec, storage: Storage, day: str) -> DayHealth:
    drift = storage.read_json(f"{spec.name}/drift/{day}.json")
    perf_key = f"{spec.name}/performance/{day}.json"
    ratio = storage.read_json(perf_key)["mae_ratio"] if storage.exists(perf_key) else None
    return DayHealth(day, drift["drifted"], tuple(drift["drifted_features"]), ratio,
                     drift.get("estimated_mae_ratio"), drift.get("model_version"))


def has_labels(spec: UseCaseSpec, storage: Storage, day: str) -> bool:
    """Whether the day's features carry any label (a day whose labels are late has none yet)."""
    key = table_key(spec, "features", day)
    if not storage.exists(key):
        return False
    target = storage.read_parquet(key)[spec.target]
    return target.null_count() < target.len()


def monitored(spec: UseCaseSpec, storage: Storage, day: str) -> bool:
    """A day's monitoring is complete: its drift report is written and so is its performance report,
    unless its labels have not landed (then the labels sensor writes it later). A run killed between
    the drift and the performance steps leaves a labelled day without the latter: not complete."""
    return storage.exists(f"{spec.name}/drift/{day}.json") and (
        storage.exists(f"{spec.name}/performance/{day}.json") or not has_labels(spec, storage, day))


def reported_days(spec: UseCaseSpec, storage: Storage, after: str) -> list[str]:
    """The days after `after` that have a drift report, oldest first."""
    return [d for d in stage_days(spec, storage, "drift") if d > after]


def load_state(cursor: str | None) -> tuple[str, PolicyState]:
    if not cursor:
        return "", PolicyState()
    raw = json.loads(cursor)
    state = raw["state"]
    attempt = lambda a: Attempt(**a)  # noqa: E731
    return raw["last_day"], PolicyState(
        last_attempt=attempt(state["last_attempt"]) if state["last_attempt"] else None,
        settled=state["settled"], refusals=tuple(map(attempt, state["refusals"])), escalated=state["escalated"],
        history=tuple(DayHealth(**{**h, "drifted_features": tuple(h["drifted_features"])}) for h in state["history"]))


def gate_outcome(instance: dg.DagsterInstance, spec: UseCaseSpec, day: str) -> str:
    """Why the retrain launched on `day` was refused, read from its run's gate check (found by tags)."""
    runs = instance.get_runs(dg.RunsFilter(tags={"retrain/use_case": spec.name, "retrain/day": day}), limit=1)
    if not runs:
        return ""
    for entry in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        result = entry.dagster_event.event_specific_data
        if result.check_name == "promotion_gate" and not result.passed:
            return result.description or "gate refused"
    return f"run {runs[0].run_id[:8]} {runs[0].status.value.lower()}"


def retrain_request(spec: UseCaseSpec, day: str, reason: str, evidence: dict) -> dg.RunRequest:
    cutoff = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    return dg.RunRequest(
        run_key=f"retrain-{spec.name}-{day}",
        run_config={"ops": {spec.asset("training_set"): {"config": {"cutoff": cutoff}}}},
        tags={"retrain/reason": reason, "retrain/evidence": json.dumps(evidence)[:2000], "retrain/day": day,
              "retrain/use_case": spec.name},
    )


def build_retrain_sensor(spec: UseCaseSpec, job, policy: RetrainPolicy) -> dg.SensorDefinition:
    @dg.sensor(name=f"{spec.name}_retrain_sensor", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def retrain(context: dg.SensorEvaluationContext, storage: Storage, alert_sink: AlertSink):
        """Reads each new day's drift and performance results in order; retrains on persistent trouble,
        retries refused retrains while the trouble lasts, and escalates repeated refusals once."""
        last_day, state = load_state(context.cursor)
        for day in reported_days(spec, storage, last_day):
            if not monitored(spec, storage, day):
                context.log.info(f"{day}: labelled but no performance report yet; revisited at the next tick")
                break  # the cursor stays before it: a half-monitored day is never decided on
            if state.last_attempt and not state.settled and not state.last_attempt.outcome:
                state = record_outcome(state, gate_outcome(context.instance, spec, state.last_attempt.day))
            # Labels of recent days may have landed since they were first read.
            state = replace(state, history=tuple(day_health(spec, storage, h.day) for h in state.history))
            decision = decide(policy, state, day_health(spec, storage, day))
            state, last_day = decision.state, day
            if decision.escalation:
                alert_sink.send(Alert(day, Signal(day, spec.asset("model_evaluation"), "retrain_refused",
                                                  decision.escalation), OWNERS["training"]))
            if decision.retrain:
                context.log.info(f"{day}: retrain — {decision.reason}")
                yield retrain_request(spec, day, decision.reason, decision.evidence)
        context.update_cursor(json.dumps({"last_day": last_day, "state": asdict(state)}))

    return retrain


def build_labels_sensor(spec: UseCaseSpec, job, lookback_days: int = 60) -> dg.SensorDefinition:
    @dg.sensor(name=f"{spec.name}_labels_sensor", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def labels(context: dg.SensorEvaluationContext, storage: Storage):
        """Labels land days after the features: a scored day without a performance report gets one as
        soon as its features carry labels (a re-landed file re-ingests them)."""
        pending = sorted(set(stage_days(spec, storage, "predictions"))
                         - set(stage_days(spec, storage, "performance")))[-lookback_days:]
        for day in pending:
            if has_labels(spec, storage, day):
                yield dg.RunRequest(run_key=f"labels-{spec.name}-{day}", partition_key=day)

    return labels


def recent_flags(spec: UseCaseSpec, storage: Storage, stage: str, day: str, n: int, flag) -> list[bool]:
    """`flag(report)` for the `n` days ending at `day`, oldest first; a day without a report is False."""
    days = [(date.fromisoformat(day) - timedelta(days=i)).isoformat() for i in range(n)][::-1]
    keys = [f"{spec.name}/{stage}/{d}.json" for d in days]
    return [storage.exists(k) and bool(flag(storage.read_json(k))) for k in keys]


def belongs(spec: UseCaseSpec, asset: str | None = None, job: str | None = None) -> bool:
    """Whether an asset (`raw_rentals`, `rental_features`) or a job (`daily_rentals`,
    `rollback_rentals_champion`) is this use case's: each use case's alert sensor reads the whole
    instance, and must page only about its own."""
    if asset is not None:
        return asset.endswith(f"_{spec.name}") or asset.startswith(spec.asset(""))
    return job is not None and f"_{spec.name}_" in f"_{job}_"


def selected_assets(instance: dg.DagsterInstance, record) -> frozenset:
    """The assets a run was launched for (an ad-hoc materialization from the UI runs an implicit job)."""
    run = instance.get_run_by_id(record.event_log_entry.run_id)
    return (run.asset_selection or frozenset()) if run else frozenset()


def _signals(spec: UseCaseSpec, storage: Storage, records, policy: RetrainPolicy,
             instance: dg.DagsterInstance) -> list[Signal]:
    quarantined, drift, perf = (f"quarantined_{spec.name}", spec.asset("drift_report"), spec.asset("performance_report"))
    champion, evaluation = spec.asset("champion_model"), spec.asset("model_evaluation")
    out = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            ev = event.event_specific_data
            # WARN-severity results (a short day, a volume anomaly) are shown in the UI, not paged.
            asset = ev.asset_key.to_user_string()
            if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR and belongs(spec, asset):
                kind = "contract_breach" if asset.endswith(spec.name) else "check_failed"
                where = ev.partition or f"run {record.event_log_entry.run_id[:8]}"
                out.append(Signal(where, asset, kind, f"{ev.check_name}: {ev.description or 'failed'}"))
        elif event.event_type == dg.DagsterEventType.FRESHNESS_STATE_CHANGE:
            # The freshness daemon judged a FreshnessPolicy (raw: LANDING_FRESHNESS) failed.
            change = event.asset_freshness_state_change_data
            asset = change.key.to_user_string()
            if change.new_state == "FAIL" and belongs(spec, asset):
                day = overdue_day(change.state_change_timestamp)
                out.append(Signal(day, asset, "freshness",
                                  f"no file landed for {day} by {LANDING_DEADLINE_HOUR:02d}:00 UTC the next day"))
        elif event.event_type == dg.DagsterEventType.RUN_FAILURE and (
                belongs(spec, job=event.job_name) or any(belongs(spec, asset=k.to_user_string())
                                                          for k in selected_assets(instance, record))):
            out.append(Signal(f"run {record.event_log_entry.run_id[:8]}", event.job_name, "run_failure",
                              f"{event.job_name} run {record.event_log_entry.run_id[:8]} failed: {event.message[:200]}"))
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            m = event.step_materialization_data.materialization
            asset, day = m.asset_key.to_user_string(), m.partition
            if asset == champion and "refused_version" in m.metadata:
                # The gate's refusal, sent once to the training owner, in the run that made it.
                reasons = m.metadata["refusal"].value.replace("\n", "; ").replace("- ", "")
                out.append(Signal(f"run {record.event_log_entry.run_id[:8]}", evaluation, "gate_refused",
                                  f"challenger v{m.metadata['refused_version'].value} refused, "
                                  f"{m.metadata['decision'].value}: {reasons}"))
            elif asset == quarantined and m.metadata["dagster/row_count"].value:
                n = m.metadata["dagster/row_count"].value
                out.append(Signal(day, f"raw_{spec.name}", "contract_breach", f"{n} rows quarantined"))
            elif asset == drift and storage.exists(f"{spec.name}/drift/{day}.json"):
                # Drift and performance page once per episode, on the day the retrain trigger fires.
                flags = recent_flags(spec, storage, "drift", day, policy.drift_persistence + 1, lambda r: r["drifted"])
                if episode_starts(flags, policy.drift_persistence):
                    report = storage.read_json(f"{spec.name}/drift/{day}.json")
                    out.append(Signal(day, asset, "drift", f"drift for {policy.drift_persistence} days; "
                                      f"{len(report['drifted_features'])} feature(s) drifted in {report['window']}",
                                      tuple(report["drifted_features"])))
            elif asset == perf and storage.exists(f"{spec.name}/performance/{day}.json"):
                n = policy.degradation_persistence
                flags = recent_flags(spec, storage, "performance", day, n + 1,
                                     lambda r: r["mae_ratio"] >= policy.mae_degradation)
                if episode_starts(flags, n):
                    ratio = storage.read_json(f"{spec.name}/performance/{day}.json")["mae_ratio"]
                    out.append(Signal(day, asset, "performance",
                                      f"MAE {ratio:.2f}x the hold-out baseline, >= {policy.mae_degradation}x for {n} days"))
    return out


def build_alert_sensor(spec: UseCaseSpec, policy: RetrainPolicy) -> dg.SensorDefinition:
    kinds = (dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.RUN_FAILURE,
             dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.FRESHNESS_STATE_CHANGE)

    @dg.sensor(name=f"{spec.name}_alert_sensor", minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def alerts(context: dg.SensorEvaluationContext, storage: Storage, alert_sink: AlertSink):
        """Every new failure or symptom, grouped by root cause along the lineage, sent once to its owner."""
        cursor = json.loads(context.cursor) if context.cursor else {"after": 0, "sent": []}
        after, already = cursor["after"], set(cursor["sent"])
        records = [r for kind in kinds for r in context.instance.get_event_records(
            dg.EventRecordsFilter(event_type=kind, after_cursor=after), limit=5000)]
        if not records:
            return dg.SkipReason("nothing new")
        graph = context.repository_def.asset_graph
        keys = graph.get_all_asset_keys()
        upstream = {k.to_user_string(): {a.to_user_string() for a in graph.get_ancestor_asset_keys(k)} for k in keys}
        owners = {k.to_user_string(): ", ".join(graph.get(k).owners) or "unowned" for k in keys}
        sent = [a for a in group(_signals(spec, storage, records, policy, context.instance), upstream, owners) if a.key not in already]
        for alert in sent:
            alert_sink.send(alert)
            context.log.info(alert.text())
        keys = [*cursor["sent"], *(a.key for a in sent)][-2000:]  # one alert per partition and cause
        context.update_cursor(json.dumps({"after": max(r.storage_id for r in records), "sent": keys}))
        return dg.SkipReason(f"{len(sent)} alert(s) sent")

    return alerts
