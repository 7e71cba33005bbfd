"""Alerts: one notification when an incident starts and one when it clears (`lakehouse.notify`).

`alerts_sensor` reads what Dagster already records and turns it into incidents:

* run failures (`RUN_FAILURE` events) of runs that will not be retried (`dagster/will_retry`); an
  incident per job, partition and the assets the run did not materialize, cleared when those
  assets are materialized again (or the job succeeds, for a job without assets). A run whose
  failure comes with failed error-severity checks is told by those checks, not twice;
* asset check evaluations of severity ERROR that fail (dbt tests, landing quarantine, the lag
  checks of `health.py`, the CDC `flowing` check), cleared by the next passing evaluation;
* freshness state changes to FAIL written by Dagster's freshness daemon, cleared when it leaves FAIL;
* failed sensor and schedule ticks, cleared by the next tick that does not fail.

Deduplication lives in the sensor's cursor (the open incidents and how far each event stream was
read): no second state store, no scheduler of our own. Channels come from the settings; a failing
channel is logged by the notifier and never fails the tick.
"""

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.event_api import EventRecordsFilter, RunStatusChangeRecordsFilter
from dagster._core.events import DagsterEventType
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster._core.storage.tags import PARTITION_NAME_TAG, WILL_RETRY_TAG

from lakehouse.notify import Notification, Notifier, first_line, notifier_from_settings
from lakehouse.settings import Settings, get_settings

log = logging.getLogger(__name__)

SENSOR_NAME = "alerts_sensor"
#: events read per stream and tick (the rest on the next tick)
BATCH = 500
#: on its first tick the sensor looks this far back (older events were someone else's to tell)
FIRST_LOOKBACK_SECONDS = 3600.0
_RANGE_START, _RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dataclass
class AlertState:
    """The sensor's cursor: how far each stream was read, the open incidents, the last tick seen
    per sensor/schedule."""

    positions: dict[str, str] = field(default_factory=dict)
    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    ticks: dict[str, float] = field(default_factory=dict)
    started: float | None = None

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "AlertState":
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(data.get("positions", {}), data.get("open", {}), data.get("ticks", {}), data.get("started"))

    def to_cursor(self) -> str:
        return json.dumps(
            {"positions": self.positions, "open": self.open, "ticks": self.ticks, "started": self.started},
            sort_keys=True,
        )


class AlertEvaluator:
    """One pass over what happened since the cursor; returns the notifications to send."""

    def __init__(self, instance: dg.DagsterInstance, settings: Settings, state: AlertState, now: float) -> None:
        self.instance = instance
        self.ui = settings.dagster_ui
        self.state = state
        self.now = now
        if state.started is None:
            state.started = now
        self.notifications: list[Notification] = []

    # ---------------------------------------------------------------- incidents
    def _fire(self, incident: str, notification: Notification, since: float) -> None:
        if incident in self.state.open:
            return  # told already: one message per incident
        self.state.open[incident] = {
            "kind": notification.kind,
            "title": notification.title,
            "asset": notification.asset,
            "partition": notification.partition,
            "run_id": notification.run_id,
            "url": notification.url,
            "since": since,
        }
        self.notifications.append(notification)

    def _clear(
        self, incident: str, title: str, details: dict[str, Any] | None = None, run_id: str | None = None
    ) -> None:
        opened = self.state.open.pop(incident, None)
        if opened is None:
            return
        self.notifications.append(
            Notification(
                kind=opened["kind"],
                status="resolved",
                incident=incident,
                title=title,
                asset=opened.get("asset"),
                partition=opened.get("partition"),
                run_id=run_id,
                url=opened.get("url"),
                details={"open since": datetime.fromtimestamp(opened["since"], UTC).isoformat(timespec="seconds")}
                | (details or {}),
            )
        )

    # ---------------------------------------------------------------- event streams
    def _lookback(self) -> float:
        return self.state.started - FIRST_LOOKBACK_SECONDS  # type: ignore[operator]

    def _run_failures(self) -> list[Any]:
        cursor = self.state.positions.get("run_failure")
        if cursor is None:
            records_filter: Any = RunStatusChangeRecordsFilter(
                DagsterEventType.RUN_FAILURE, after_timestamp=self._lookback()
            )
        else:
            records_filter = DagsterEventType.RUN_FAILURE
        result = self.instance.fetch_run_status_changes(records_filter, limit=BATCH, cursor=cursor, ascending=True)
        self.state.positions["run_failure"] = result.cursor
        return list(result.records)

    def _freshness_changes(self) -> list[Any]:
        after = self.state.positions.get("freshness")
        storage = self.instance.event_log_storage
        kind = DagsterEventType.FRESHNESS_STATE_CHANGE
        if after is None:
            records_filter = EventRecordsFilter(kind, after_timestamp=self._lookback())
        else:
            records_filter = EventRecordsFilter(kind, after_cursor=int(after))
        records = storage.get_event_records(records_filter, limit=BATCH, ascending=True)
        if records:
            self.state.positions["freshness"] = str(records[-1].storage_id)
        elif after is None:
            latest = storage.get_event_records(EventRecordsFilter(kind), limit=1)
            self.state.positions["freshness"] = str(latest[0].storage_id if latest else 0)
        return list(records)

    def _asset_url(self, key: dg.AssetKey, view: str | None = None) -> str:
        path = "/".join(quote(part, safe="") for part in key.path)
        return f"{self.ui}/assets/{path}" + (f"?view={view}" if view else "")

    def run_failures(self) -> None:
        for record in self._run_failures():
            run = self.instance.get_run_by_id(record.event_log_entry.run_id)
            if run is None or run.tags.get(WILL_RETRY_TAG) == "true":
                continue  # the retry's own failure is the one to tell
            run_events = self.instance.all_logs(run.run_id)
            if any(
                not data.passed and data.severity == dg.AssetCheckSeverity.ERROR
                for data in _event_data(run_events, DagsterEventType.ASSET_CHECK_EVALUATION)
            ):
                continue  # the failed checks are the incident (told by `checks`)
            planned = _event_keys(run_events, DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
            done = _event_keys(run_events, DagsterEventType.ASSET_MATERIALIZATION)
            missing = sorted(k.to_user_string() for k in planned - done)
            step_errors = [_step_error(data) for data in _event_data(run_events, DagsterEventType.STEP_FAILURE)]
            error = first_line(step_errors[0] if step_errors else record.event_log_entry.dagster_event.message)
            partition = run.tags.get(PARTITION_NAME_TAG) or (
                f"{run.tags[_RANGE_START]}...{run.tags[_RANGE_END]}" if _RANGE_START in run.tags else None
            )
            incident = f"run:{run.job_name}:{partition or '-'}:{','.join(missing) or '-'}"
            asset = missing[0] + (f" and {len(missing) - 1} more" if len(missing) > 1 else "") if missing else None
            self._fire(
                incident,
                Notification(
                    kind="run_failure",
                    status="firing",
                    incident=incident,
                    title=f"Run of {run.job_name} failed" + (f" ({missing[0]})" if len(missing) == 1 else ""),
                    asset=asset,
                    partition=partition,
                    run_id=run.run_id,
                    error=error,
                    url=f"{self.ui}/runs/{run.run_id}",
                    details={"assets not materialized": ", ".join(missing)} if len(missing) > 1 else {},
                ),
                record.event_log_entry.timestamp,
            )
            self.state.open[incident]["assets"] = missing
            self.state.open[incident]["job"] = run.job_name

    def clear_runs(self) -> None:
        """A run incident clears when its assets are materialized again (each in its partition),
        or, for a job without assets, when the job next succeeds."""
        for incident, opened in list(self.state.open.items()):
            if opened["kind"] != "run_failure":
                continue
            since, partition, assets = opened["since"], opened.get("partition"), opened.get("assets") or []
            if assets:
                partitions = [partition] if partition and "..." not in partition else None
                if all(self._materialized_after(dg.AssetKey.from_user_string(a), since, partitions) for a in assets):
                    self._clear(incident, f"{opened['title']}: materialized again")
                continue
            runs = self.instance.get_runs(
                dg.RunsFilter(job_name=opened.get("job"), statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
            )
            if runs and (self.instance.get_run_record_by_id(runs[0].run_id).end_time or 0) > since:  # type: ignore[union-attr]
                self._clear(incident, f"{opened['title']}: the job succeeded again", run_id=runs[0].run_id)

    def _materialized_after(self, key: dg.AssetKey, since: float, partitions: list[str] | None) -> bool:
        result = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions, after_timestamp=since), limit=1
        )
        return bool(result.records)

    def checks(self, keys: Iterable[dg.AssetCheckKey]) -> None:
        """The latest evaluation of each check decides: failed with severity ERROR opens its
        incident, passed clears it (one query for every check per tick)."""
        keys = list(keys)
        if not keys:
            return
        latest = self.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        for _check_key, record in sorted(latest.items(), key=lambda item: item[0].to_user_string()):
            evaluation = record.evaluation if record is not None else None
            if record is None or evaluation is None:
                continue  # planned or running
            key = evaluation.asset_key
            partition = getattr(evaluation, "partition", None)
            incident = f"check:{key.to_user_string()}:{evaluation.check_name}"
            run_id = record.run_id if record.run_id and not record.run_id.startswith("RUNLESS") else None
            if evaluation.passed:
                self._clear(
                    incident,
                    f"Check {evaluation.check_name} on {key.to_user_string()} passes again",
                    {"now": first_line(evaluation.description)} if evaluation.description else None,
                    run_id=run_id,
                )
                continue
            if evaluation.severity != dg.AssetCheckSeverity.ERROR or record.create_timestamp < self._lookback():
                continue
            failed_run = ""
            if run_id:
                run = self.instance.get_run_by_id(run_id)
                if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
                    failed_run = " (its run failed)"
            self._fire(
                incident,
                Notification(
                    kind="check_failed",
                    status="firing",
                    incident=incident,
                    title=f"Check {evaluation.check_name} failed on {key.to_user_string()}{failed_run}",
                    asset=key.to_user_string(),
                    partition=partition,
                    run_id=run_id,
                    error=first_line(evaluation.description) or _metadata_line(evaluation.metadata),
                    url=self._asset_url(key, "checks"),
                ),
                record.create_timestamp,
            )

    def freshness(self) -> None:
        for record in self._freshness_changes():
            change = record.event_log_entry.dagster_event.event_specific_data
            if not isinstance(change, FreshnessStateChange):
                continue
            key = change.key
            incident = f"freshness:{key.to_user_string()}"
            if change.new_state == FreshnessState.FAIL:
                latest = self.instance.get_latest_materialization_event(key)
                last = (
                    datetime.fromtimestamp(latest.timestamp, UTC).isoformat(timespec="seconds") if latest else "never"
                )
                self._fire(
                    incident,
                    Notification(
                        kind="freshness",
                        status="firing",
                        incident=incident,
                        title=f"{key.to_user_string()} is stale (freshness policy failed)",
                        asset=key.to_user_string(),
                        error=f"not materialized within its freshness window; last materialization: {last}",
                        url=self._asset_url(key),
                        details={"last materialization": last},
                    ),
                    record.event_log_entry.timestamp,
                )
            elif change.new_state in (FreshnessState.PASS, FreshnessState.WARN):
                self._clear(incident, f"{key.to_user_string()} is fresh again ({change.new_state.value})")

    def ticks(self, own_name: str | None) -> None:
        for state in self.instance.all_instigator_state():
            if state.instigator_type not in (InstigatorType.SENSOR, InstigatorType.SCHEDULE):
                continue
            name = state.instigator_name
            if name == own_name:
                continue
            selector = state.selector_id
            after = self.state.ticks.get(selector, self.state.started - FIRST_LOOKBACK_SECONDS)  # type: ignore[operator]
            ticks = [
                t
                for t in self.instance.get_ticks(state.instigator_origin_id, selector, after=after, limit=50)
                if t.status in (TickStatus.SUCCESS, TickStatus.SKIPPED, TickStatus.FAILURE)
            ]
            if not ticks:
                continue
            self.state.ticks[selector] = max(t.timestamp for t in ticks)
            kind = "sensor" if state.instigator_type == InstigatorType.SENSOR else "schedule"
            location = state.origin.repository_origin.code_location_origin.location_name
            url = f"{self.ui}/locations/{quote(location, safe='')}/{kind}s/{quote(name, safe='')}"
            incident = f"tick:{kind}:{name}"
            for tick in sorted(ticks, key=lambda t: t.timestamp):
                if tick.status == TickStatus.FAILURE:
                    self._fire(
                        incident,
                        Notification(
                            kind="tick_error",
                            status="firing",
                            incident=incident,
                            title=f"{kind.capitalize()} {name} errored",
                            error=first_line(tick.error.message if tick.error else None),
                            url=url,
                        ),
                        tick.timestamp,
                    )
                else:
                    self._clear(incident, f"{kind.capitalize()} {name} ticks again without error")

    def evaluate(
        self, check_keys: Iterable[dg.AssetCheckKey], own_name: str | None = SENSOR_NAME
    ) -> list[Notification]:
        self.run_failures()
        self.clear_runs()
        self.checks(check_keys)
        self.freshness()
        self.ticks(own_name)
        return self.notifications


def _event_data(events: Iterable[Any], event_type: DagsterEventType) -> list[Any]:
    """The event-specific data of a run's events of one type."""
    return [
        e.dagster_event.event_specific_data
        for e in events
        if e.dagster_event is not None and e.dagster_event.event_type == event_type
    ]


def _event_keys(events: Iterable[Any], event_type: DagsterEventType) -> set[dg.AssetKey]:
    return {
        e.dagster_event.asset_key
        for e in events
        if e.dagster_event is not None and e.dagster_event.event_type == event_type and e.dagster_event.asset_key
    }


def _step_error(failure: Any) -> str:
    """What went wrong in a step: a `dg.Failure`'s description, else the innermost error (the
    user's exception, not Dagster's wrapper around it)."""
    user = getattr(failure, "user_failure_data", None)
    if user is not None and user.description:
        return str(user.description)
    error = failure.error
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message if error is not None else "step failed"


def _metadata_line(metadata: Mapping[str, Any]) -> str | None:
    if not metadata:
        return None
    return first_line(", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in list(metadata.items())[:6]))


def evaluate_alerts(
    instance: dg.DagsterInstance,
    cursor: str | None,
    settings: Settings,
    check_keys: Iterable[dg.AssetCheckKey] = (),
    now: float | None = None,
    own_name: str | None = SENSOR_NAME,
) -> tuple[list[Notification], str]:
    """The notifications due since `cursor`, and the cursor to store (plain enough to test)."""
    state = AlertState.from_cursor(cursor)
    evaluator = AlertEvaluator(instance, settings, state, now if now is not None else datetime.now(UTC).timestamp())
    notifications = evaluator.evaluate(check_keys, own_name)
    return notifications, state.to_cursor()


def send_all(notifier: Notifier, notifications: Iterable[Notification]) -> int:
    """Send each notification (channel failures are logged by the notifier); returns how many."""
    count = 0
    for notification in notifications:
        notifier.send(notification)
        count += 1
    return count


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=get_settings().alert_sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notifies (Slack webhook, SNS, JSON webhook from the settings) once when a run fails, an error "
    "check fails, an asset goes stale or a sensor/schedule errors, and once when it clears (docs/operations.md).",
)
def alerts_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    settings = get_settings()
    check_keys = context.repository_def.asset_graph.asset_check_keys if context.repository_def else ()
    notifications, cursor = evaluate_alerts(context.instance, context.cursor, settings, check_keys)
    sent = send_all(notifier_from_settings(settings), notifications)
    if sent:
        context.log.info("sent %d notification(s): %s", sent, "; ".join(n.headline for n in notifications))
    return dg.SensorResult(cursor=cursor, skip_reason=None if sent else "no new incident and none cleared")


defs = dg.Definitions(sensors=[alerts_sensor])
