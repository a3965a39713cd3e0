"""The feed watch's rules on figures, and the alert a failed task makes (no services)."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest

from civicflow.alerts import (
    CADENCES,
    NEVER_LOADED,
    NO_DELIVERY,
    PER_PAYLOAD,
    PER_WEEK,
    STALE,
    VOLUME_HIGH,
    VOLUME_LOW,
    Batch,
    Cadence,
    Finding,
    FindingsError,
    History,
    Webhook,
    alert_from_context,
    deliveries,
    freshness,
    judge,
    judge_volume,
    notify_failure,
    volume,
    weeks,
)
from civicflow.config import ConfigurationError, alert_channel
from civicflow.feeds import FEEDS
from civicflow.httpclient import FeedError

SH = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SH)
DAILY_SNAPSHOTS = CADENCES["positions"]
INCREMENTAL = CADENCES["health"]
LEDGERS = CADENCES["elderly_care"]


def daily(rows: list[int], payloads: int = 1, last_hours_ago: float = 10) -> tuple[Batch, ...]:
    """One batch a day at the same hour, the last ``last_hours_ago`` before NOW."""
    last = NOW - dt.timedelta(hours=last_hours_ago)
    n = len(rows)
    return tuple(
        Batch(last - dt.timedelta(days=n - 1 - i), r, payloads if r else 0)
        for i, r in enumerate(rows)
    )


def test_every_feed_has_a_cadence():
    assert set(CADENCES) == set(FEEDS)
    assert LEDGERS.allowed == dt.timedelta(days=41)
    assert DAILY_SNAPSHOTS.allowed == dt.timedelta(hours=48)
    assert INCREMENTAL.allowed == dt.timedelta(hours=96)


# --- freshness -----------------------------------------------------------------------------


def test_an_entity_never_loaded_is_a_finding_with_its_failures():
    finding = freshness(History("volunteer", "activities", (), 2), INCREMENTAL, NOW)
    assert finding == Finding(
        "volunteer",
        "activities",
        NEVER_LOADED,
        "no batch has ever succeeded; 2 batches failed or rejected",
        {"failed_batches": 2},
    )


def test_a_batch_within_26_hours_is_fresh_and_after_it_stale():
    fresh = History("positions", "streets", daily([18], last_hours_ago=25.9))
    assert freshness(fresh, DAILY_SNAPSHOTS, NOW) is None
    stale = History("positions", "streets", daily([18], last_hours_ago=30), failed_since=1)
    finding = freshness(stale, DAILY_SNAPSHOTS, NOW)
    assert finding.rule == STALE
    assert finding.figures == {
        "hours_since_success": 30.0,
        "allowed_hours": 26.0,
        "last_success_at": "2026-11-26T04:00+08:00",
        "failed_since": 1,
    }
    assert str(finding) == (
        "positions.streets: stale: the last batch succeeded 30 h ago (2026-11-26T04:00+08:00); "
        "the ingest runs every 24 h, allowed 26 h; 1 batch failed or rejected since"
    )


def test_runs_that_bring_nothing_for_two_days_are_no_delivery():
    # The register's snapshots stopped: the runs succeed, with nothing due.
    history = History("civil_affairs", "register", daily([300, 300, 0, 0, 0]))
    finding = freshness(history, CADENCES["civil_affairs"], NOW)
    assert finding.rule == NO_DELIVERY
    assert finding.figures["hours_since_delivery"] == 82.0
    assert finding.figures["allowed_hours"] == 48.0
    # One empty run is a late export the next run catches up: no finding.
    assert freshness(History("civil_affairs", "register", daily([300, 0])), LEDGERS, NOW) is None


def test_ledgers_are_due_monthly_not_daily():
    """A month of empty daily runs after a ledger delivery is normal; six weeks are not."""
    month = daily([5000] + [0] * 30)
    assert freshness(History("elderly_care", "ledgers", month), LEDGERS, NOW) is None
    six_weeks = daily([5000] + [0] * 42)
    finding = freshness(History("elderly_care", "ledgers", six_weeks), LEDGERS, NOW)
    assert finding.rule == NO_DELIVERY
    assert "no rows delivered for 42.4 days (the last on 2026-10-16T00:00+08:00)" in finding.detail
    assert "expected every 31 days, allowed 41 days" in finding.detail


def test_an_entity_that_never_delivered_rows_counts_from_its_first_success():
    history = History("volunteer", "volunteer_help", daily([0] * 5))
    finding = freshness(history, INCREMENTAL, NOW)
    assert finding.rule == NO_DELIVERY
    assert finding.figures["last_delivery_at"] is None
    assert "since the first succeeded, 4.4 days ago" in finding.detail


def test_incremental_feeds_may_be_quiet_over_a_long_weekend():
    quiet = History("health", "service_records", daily([4000, 0, 0, 0]))
    assert freshness(quiet, INCREMENTAL, NOW) is None
    silent = History("health", "service_records", daily([4000, 0, 0, 0, 0]))
    assert freshness(silent, INCREMENTAL, NOW).figures == {
        "hours_since_delivery": 106.0,
        "allowed_hours": 96.0,
        "last_delivery_at": "2026-11-23T00:00+08:00",
    }


# --- volume --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [
        (100, [100] * 7, None),
        (49, [100] * 7, (VOLUME_LOW, 100, 0.49)),
        (50, [100] * 7, None),  # the band's edges are inside it
        (300, [100] * 7, None),
        (301, [100] * 7, (VOLUME_HIGH, 100, 3.01)),
        (0, [100] * 6, None),  # too little history to judge
        (0, [9] * 7, None),  # a median of 9 rows: chance, not a collapse
        (0, [10] * 7, (VOLUME_LOW, 10, 0.0)),
        (40, [100, 100, 100, 5000, 100, 100, 100], (VOLUME_LOW, 100, 0.4)),  # one flood is no norm
    ],
)
def test_judge_volume_against_the_median_before(value, previous, expected):
    assert judge_volume(value, previous, 7, 0.5, 3.0) == expected


def test_snapshots_are_measured_per_payload_so_a_catch_up_is_no_spike():
    batches = (
        *daily([300] * 8)[:-1],
        Batch(NOW - dt.timedelta(hours=10), 900, 3),  # three days' snapshots in one run
    )
    assert [d.value for d in deliveries(batches)] == [300.0] * 8
    assert volume(History("civil_affairs", "register", batches), DAILY_SNAPSHOTS, NOW) is None


def test_days_without_a_payload_are_no_delivery_and_no_history():
    batches = daily([300, 0, 300, 0, 300])
    assert [d.value for d in deliveries(batches)] == [300.0, 300.0, 300.0]


def test_a_truncated_snapshot_and_a_flood_of_tallies():
    truncated = History("civil_affairs", "register", daily([300] * 8 + [120]))
    finding = volume(truncated, DAILY_SNAPSHOTS, NOW)
    assert finding == Finding(
        "civil_affairs",
        "register",
        VOLUME_LOW,
        "120 rows per payload on 2026-11-27 against a median of 300 over the 7 delivery days "
        "before: 40% of it, flagged below 50%",
        {
            "measure": PER_PAYLOAD,
            "when": "2026-11-27",
            "value": 120.0,
            "median": 300.0,
            "ratio": 0.4,
            "threshold": 0.5,
            "window": 7,
        },
    )
    flood = History("positions", "visits", daily([254] * 8 + [800]))
    assert "3.1x, flagged above 3x" in volume(flood, DAILY_SNAPSHOTS, NOW).detail


def test_a_single_street_ledger_is_within_the_ledgers_wider_band():
    ledgers = daily(([5400] + [0] * 29) * 8 + [1500], payloads=18)
    assert volume(History("elderly_care", "ledgers", ledgers), LEDGERS, NOW) is None
    assert volume(History("elderly_care", "ledgers", ledgers), DAILY_SNAPSHOTS, NOW) is not None


def health_records(weeks_: int, *newest: int) -> History:
    """A first load (the whole history), then ``weeks_`` weeks of daily batches to NOW's day.

    Working days bring 4,000 changes, weekends 300; ``newest`` replaces the last days' counts.
    NOW is a Friday.
    """
    days = [NOW.date() - dt.timedelta(days=d) for d in range(weeks_ * 7)][::-1]
    rows = [300 if day.weekday() >= 5 else 4000 for day in days]
    rows[len(rows) - len(newest) :] = newest
    return History("health", "service_records", daily([90_000, *rows]))


def test_incremental_volume_is_judged_by_the_week_so_weekends_are_no_collapse():
    history = health_records(5)
    assert [(str(w.first), str(w.last), w.rows) for w in weeks(history.succeeded)] == [
        ("2026-11-21", "2026-11-27", 20_600),
        ("2026-11-14", "2026-11-20", 20_600),
        ("2026-11-07", "2026-11-13", 20_600),
        ("2026-10-31", "2026-11-06", 20_600),
        ("2026-10-24", "2026-10-30", 20_600),
    ]  # the first day, the whole history, starts no week
    assert volume(history, INCREMENTAL, NOW) is None


def test_a_volume_collapse_and_a_flood_of_an_incremental_feed():
    finding = volume(health_records(5, 300, 300, 300, 300), INCREMENTAL, NOW)
    assert finding == Finding(
        "health",
        "service_records",
        VOLUME_LOW,
        "5,800 rows in 7 days from 2026-11-21 to 2026-11-27 against a median of 20,600 over the "
        "4 weeks before: 28% of it, flagged below 50%",
        {
            "measure": PER_WEEK,
            "when": "2026-11-21/2026-11-27",
            "value": 5800,
            "median": 20600,
            "ratio": 0.282,
            "threshold": 0.5,
            "window": 4,
        },
    )
    resent = volume(health_records(5, 400_000), INCREMENTAL, NOW)  # a watermark reset
    assert resent.rule == VOLUME_HIGH and "20.2x, flagged above 3x" in resent.detail
    # A busy day is no flood when the week is ordinary.
    assert volume(health_records(5, 12_000), INCREMENTAL, NOW) is None
    # Four weeks before the newest are needed.
    assert volume(health_records(4, 0, 0, 0, 0), INCREMENTAL, NOW) is None


def test_a_delivery_is_judged_for_one_schedule_period_only():
    history = History("civil_affairs", "register", daily([300] * 8 + [10], last_hours_ago=27))
    assert volume(history, DAILY_SNAPSHOTS, NOW) is None
    assert [f.rule for f in judge(history, DAILY_SNAPSHOTS, NOW)] == [STALE]


def test_judge_gives_one_freshness_and_one_volume_finding_at_most():
    history = History("positions", "visits", daily([254] * 9))
    assert judge(history, DAILY_SNAPSHOTS, NOW) == []
    odd = Cadence(dt.timedelta(hours=1), dt.timedelta(hours=1), PER_PAYLOAD, 0.5, 3.0)
    assert [f.rule for f in judge(History("x", "y", daily([254] * 8 + [20])), odd, NOW)] == [
        NO_DELIVERY,
        VOLUME_LOW,
    ]


# --- the alert -----------------------------------------------------------------------------


def failed_context(exception: BaseException | str | None) -> dict:
    ti = SimpleNamespace(
        dag_id="feed_watch",
        task_id="check_health",
        run_id="scheduled__2026-11-27T02:00:00+00:00",
        try_number=1,
        map_index=-1,
        log_url="http://airflow.example/dags/feed_watch/runs/x/tasks/check_health",
    )
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": ti.run_id,
        "logical_date": dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC),
        "exception": exception,
    }


def test_the_alert_names_dag_task_run_feed_and_reason(monkeypatch):
    monkeypatch.setenv("CIVICFLOW_ENV", "test")
    findings = [Finding("health", "service_records", STALE, "the last batch succeeded 30 h ago")]
    try:
        try:
            raise FindingsError(findings)
        except FindingsError as error:
            raise RuntimeError(str(error)) from error  # as AirflowFailException wraps it
    except RuntimeError as wrapped:
        alert = alert_from_context(failed_context(wrapped))
    document = alert.as_json()
    assert {k: document[k] for k in ("dag_id", "task_id", "feed", "exception_type")} == {
        "dag_id": "feed_watch",
        "task_id": "check_health",
        "feed": "health",
        "exception_type": "RuntimeError",
    }
    assert document["exception"] == (
        "1 finding(s) for feed health:\n"
        "- health.service_records: stale: the last batch succeeded 30 h ago"
    )
    assert document["logical_date"] == "2026-11-27T02:00:00+00:00"
    assert document["text"].startswith(
        "civicflow test: task feed_watch.check_health (feed health) failed in run scheduled__"
    )


def test_the_feed_comes_from_feed_errors_and_batch_errors():
    alert = alert_from_context(failed_context(FeedError("volunteer", "http://x/v2", "HTTP 410")))
    assert alert.feed == "volunteer"
    batch_error = RuntimeError("health.service_records (load 1): rejected")
    batch_error.entity = SimpleNamespace(feed="health")
    assert alert_from_context(failed_context(batch_error)).feed == "health"
    assert alert_from_context(failed_context("killed")).feed is None
    assert "no exception was recorded" in alert_from_context(failed_context(None)).exception


def test_the_log_channel_is_the_default_and_logs_a_warning(monkeypatch, caplog):
    monkeypatch.delenv("CIVICFLOW_ALERT_CHANNEL", raising=False)
    monkeypatch.setenv("CIVICFLOW_ENV", "production")
    with caplog.at_level(logging.INFO, logger="civicflow.alerts"):
        notify_failure(failed_context(RuntimeError("health.service_records (load 7): why")))
    assert [(r.levelname, r.getMessage()[:50]) for r in caplog.records] == [
        ("WARNING", "civicflow alert: civicflow production: task feed_w")
    ]
    assert "health.service_records (load 7): why" in caplog.records[0].getMessage()


def test_a_channel_that_cannot_send_is_logged_and_never_raises(monkeypatch, caplog):
    monkeypatch.setenv("CIVICFLOW_ALERT_CHANNEL", "email")
    monkeypatch.delenv("CIVICFLOW_ALERT_EMAIL", raising=False)
    with caplog.at_level(logging.INFO, logger="civicflow.alerts"):
        notify_failure(failed_context(RuntimeError("the original failure")))
    (record,) = caplog.records
    assert record.levelname == "ERROR"
    assert "CIVICFLOW_ALERT_EMAIL names no recipient" in record.getMessage()
    assert "the original failure" in record.getMessage()


def test_an_unknown_channel_is_a_configuration_error(monkeypatch, caplog):
    monkeypatch.setenv("CIVICFLOW_ALERT_CHANNEL", "pager")
    with pytest.raises(ConfigurationError, match="one of log, webhook, email"):
        alert_channel()
    with caplog.at_level(logging.INFO, logger="civicflow.alerts"):
        notify_failure(failed_context(RuntimeError("still reported")))
    assert caplog.records[0].levelname == "ERROR" and "still reported" in caplog.text


def test_a_webhook_is_named_in_logs_without_its_secret_path():
    hook = Webhook("https://user:pw@hooks.example.org:8443/services/T0/B0/secret?key=k")
    assert hook.where == "https://hooks.example.org:8443"
