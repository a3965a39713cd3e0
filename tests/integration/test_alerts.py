"""The feed watch on a real warehouse, and its alerts over real HTTP and SMTP.

meta.load_audit histories are written by hand against a fixed clock; the
feed_watch DAG's own task callable judges them, and its on_failure_callback is
called with the context Airflow hands it, against a local webhook and a local
SMTP server. No ``airflow dags test``: that is the Airflow suite's job.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import logging
import socketserver
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from civicflow import alerts
from civicflow.alerts import (
    NEVER_LOADED,
    NO_DELIVERY,
    PER_WEEK,
    STALE,
    VOLUME_LOW,
    Finding,
    check_feeds,
    notify_failure,
)
from civicflow.feeds import all_entities
from civicflow.localdb import free_port
from civicflow.pipeline import open_warehouse

ROOT = Path(__file__).resolve().parents[2]
CHECK_FEEDS = alerts.check_feeds
SH = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SH)
DAY = dt.timedelta(days=1)

AUDIT = (
    "insert into meta.load_audit (load_id, feed, entity, status, started_at, finished_at, "
    "payloads, source_rows, accepted_rows) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def record(conn, feed, entity, finished_at, rows, payloads=1, status="succeeded") -> None:
    started_at = finished_at - dt.timedelta(minutes=5)
    conn.execute(
        AUDIT,
        (uuid.uuid4(), feed, entity, status, started_at, finished_at, payloads, rows, rows),
    )


def daily(conn, feed, entity, rows: list[int], last: dt.datetime, payloads=1) -> None:
    """One succeeded batch a day, the last at ``last``; a batch of no rows lands no payload."""
    for i, n in enumerate(rows):
        record(conn, feed, entity, last - (len(rows) - 1 - i) * DAY, n, payloads if n else 0)


def health_changes() -> list[int]:
    """The first load, five weeks of changes (4,000 a working day, 300 a weekend day), and
    the last four days (to NOW, a Friday) at 300: a collapse."""
    days = [NOW.date() - d * DAY for d in range(35)][::-1]
    rows = [300 if day.weekday() >= 5 else 4000 for day in days]
    return [90_000, *rows[:-4], 300, 300, 300, 300]


@pytest.fixture
def watched(warehouse_url: str) -> str:
    """A warehouse whose load audit holds one story a feed.

    - positions: every entity delivered daily, the same volume: nothing to say;
    - civil_affairs: the register last succeeded 40 h ago, and a run failed since: stale;
    - health: five weeks of changes, then four days of few: a volume collapse;
    - elderly_care: a month's ledgers 20 days ago, empty daily runs since: on time;
    - volunteer: never loaded; two runs of volunteers failed.
    """
    morning = NOW - dt.timedelta(hours=9, minutes=30)  # 00:30 local, after the daily run
    with open_warehouse(warehouse_url) as conn, conn.transaction():
        for entity, rows, payloads in (
            ("streets", 18, 1),
            ("communities", 222, 1),
            ("positions", 254, 1),
            ("visits", 762, 3),
        ):
            daily(conn, "positions", entity, [rows] * 9, morning, payloads)
        daily(conn, "civil_affairs", "register", [300] * 8, NOW - dt.timedelta(hours=40))
        record(conn, "civil_affairs", "register", morning, 0, 0, status="failed")
        daily(conn, "health", "service_records", health_changes(), morning, payloads=8)
        daily(conn, "elderly_care", "ledgers", [5200] + [0] * 20, morning, payloads=18)
        for days_ago in (2, 1):
            record(conn, "volunteer", "volunteers", morning - days_ago * DAY, 0, 0, "failed")
    return warehouse_url


EXPECTED = [
    Finding(
        "civil_affairs",
        "register",
        STALE,
        "the last batch succeeded 40 h ago (2026-11-25T18:00+08:00); the ingest runs every "
        "24 h, allowed 26 h; 1 batch failed or rejected since",
        {
            "hours_since_success": 40.0,
            "allowed_hours": 26.0,
            "last_success_at": "2026-11-25T18:00+08:00",
            "failed_since": 1,
        },
    ),
    Finding(
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
    ),
    Finding(
        "volunteer",
        "volunteers",
        NEVER_LOADED,
        "no batch has ever succeeded; 2 batches failed or rejected",
        {"failed_batches": 2},
    ),
    *(
        Finding(
            "volunteer",
            entity,
            NEVER_LOADED,
            "no batch has ever succeeded; none failed either (is its ingest DAG new or paused?)",
            {"failed_batches": 0},
        )
        for entity in ("activities", "service_hours", "volunteer_help")
    ),
]


def test_the_watch_finds_the_stale_the_collapsed_and_the_never_loaded(watched):
    with psycopg.connect(watched) as conn:
        assert check_feeds(conn, now=NOW) == EXPECTED
        assert check_feeds(conn, now=NOW, feeds=["positions", "elderly_care"]) == []
        # Three weeks on without a run, the ledgers' ingest is stale like any other.
        later = check_feeds(conn, now=NOW + 22 * DAY, feeds=["elderly_care"])
    assert [(f.entity, f.rule) for f in later] == [("ledgers", STALE)]
    # With the daily runs done but still no ledger, 42 days after the last: overdue.
    morning = NOW - dt.timedelta(hours=9, minutes=30)
    with psycopg.connect(watched, autocommit=True) as conn:
        daily(conn, "elderly_care", "ledgers", [0] * 22, morning + 22 * DAY)
        later = check_feeds(conn, now=NOW + 22 * DAY, feeds=["elderly_care"])
    assert [(f.entity, f.rule, f.figures["hours_since_delivery"]) for f in later] == [
        ("ledgers", NO_DELIVERY, 42 * 24 + 9.5)
    ]


def test_a_warehouse_never_migrated_has_every_entity_never_loaded(warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        findings = check_feeds(conn, now=NOW)
    assert {f.rule for f in findings} == {NEVER_LOADED}
    assert [(f.feed, f.entity) for f in findings] == [(e.feed, e.name) for e in all_entities()]


# --- the alert, end to end -----------------------------------------------------------------


class Webhook:
    """A local HTTP server that records every POST and answers ``status``."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(alerts, "WEBHOOK_BACKOFF_S", 0.01)


@pytest.fixture(scope="module")
def feed_watch():
    """The feed_watch DAG as Airflow's DagBag parses it."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "feed_watch.py"))
    assert bag.import_errors == {}
    return bag.dags["feed_watch"]


def failure_context(dag, task, exception: BaseException) -> dict:
    """What Airflow's task runner hands on_failure_callback (the parts the alert reads)."""
    ti = SimpleNamespace(
        dag_id=dag.dag_id,
        task_id=task.task_id,
        run_id="scheduled__2026-11-27T01:00:00+00:00",
        try_number=1,
        map_index=-1,
        log_url=f"http://localhost:8080/dags/{dag.dag_id}/runs/x/tasks/{task.task_id}",
    )
    return {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "run_id": ti.run_id,
        "logical_date": dt.datetime(2026, 11, 27, 1, tzinfo=dt.UTC),
        "exception": exception,
    }


def run_check(dag, task_id: str, monkeypatch, warehouse: str, now: dt.datetime = NOW):
    """The task's own callable, against ``warehouse``, its clock at ``now``.

    Returns its value, or the exception it failed with.
    """
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse)
    monkeypatch.setattr(
        alerts, "check_feeds", lambda conn, feeds: CHECK_FEEDS(conn, now=now, feeds=feeds)
    )
    task = dag.get_task(task_id)
    try:
        return task.python_callable(*task.op_args)
    except AirflowFailException as exc:
        return exc


def test_a_finding_fails_the_task_and_its_callback_posts_it(
    watched, webhook, feed_watch, monkeypatch, caplog
):
    assert run_check(feed_watch, "check_positions", monkeypatch, watched) == 4
    failure = run_check(feed_watch, "check_health", monkeypatch, watched)
    assert str(failure) == (
        "1 finding(s) for feed health:\n- health.service_records: volume_low: 5,800 rows in 7 "
        "days from 2026-11-21 to 2026-11-27 against a median of 20,600 over the 4 weeks before: "
        "28% of it, flagged below 50%"
    )
    task = feed_watch.get_task("check_health")
    assert task.retries >= 1 and task.on_failure_callback == [notify_failure]

    monkeypatch.setenv("CIVICFLOW_ENV", "test")
    monkeypatch.setenv("CIVICFLOW_ALERT_CHANNEL", "webhook")
    monkeypatch.setenv("CIVICFLOW_ALERT_WEBHOOK", webhook.url)
    with caplog.at_level(logging.INFO, logger="civicflow.alerts"):
        for callback in task.on_failure_callback:
            callback(failure_context(feed_watch, task, failure))
    (posted,) = webhook.requests
    assert posted["path"] == "/hooks/secret-token"
    assert posted["headers"]["Content-Type"] == "application/json; charset=utf-8"
    document = posted["json"]
    assert {k: document[k] for k in ("dag_id", "task_id", "feed", "exception_type")} == {
        "dag_id": "feed_watch",
        "task_id": "check_health",
        "feed": "health",
        "exception_type": "AirflowFailException",
    }
    assert document["exception"] == str(failure)
    assert document["text"].startswith(
        "civicflow test: task feed_watch.check_health (feed health) failed in run scheduled__"
    )
    assert "volume_low" in document["text"]
    # The log says where it went, but never the webhook's path, which holds its key.
    assert f"sent to webhook http://127.0.0.1:{webhook.server.server_port}" in caplog.text
    assert "secret-token" not in caplog.text

    # The default channel: a WARNING line in the task's log, with the findings.
    monkeypatch.delenv("CIVICFLOW_ALERT_CHANNEL")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="civicflow.alerts"):
        notify_failure(failure_context(feed_watch, task, failure))
    (line,) = caplog.records
    assert line.levelname == "WARNING"
    assert "feed_watch.check_health (feed health)" in line.getMessage()
    assert "health.service_records: volume_low" in line.getMessage()
    assert len(webhook.requests) == 1


def test_the_webhook_from_the_alerts_connection_with_a_bearer_token(webhook, monkeypatch):
    monkeypatch.setenv("CIVICFLOW_ALERT_CHANNEL", "webhook")
    monkeypatch.delenv("CIVICFLOW_ALERT_WEBHOOK", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_CIVICFLOW_ALERTS",
        json.dumps({"conn_type": "http", "host": webhook.url, "password": "alerts-bearer-tok"}),
    )
    error = RuntimeError("health.service_records (load 42): 9.1% of rows quarantined")
    error.entity = SimpleNamespace(feed="health")  # as civicflow.pipeline.BatchError carries it
    dag = SimpleNamespace(dag_id="health_ingest")
    notify_failure(failure_context(dag, SimpleNamespace(task_id="service_records.merge"), error))
    (posted,) = webhook.requests
    assert posted["headers"]["Authorization"] == "Bearer alerts-bearer-tok"
    assert posted["json"]["feed"] == "health"
    assert posted["json"]["dag_id"] == "health_ingest"
    assert "(load 42): 9.1% of rows quarantined" in posted["json"]["exception"]


@pytest.mark.parametrize(("status", "attempts"), [(503, 3), (404, 1)])
def test_a_webhook_that_fails_is_logged_and_never_raises(
    status, attempts, monkeypatch, caplog, quick_retries
):
    monkeypatch.setenv("CIVICFLOW_ALERT_CHANNEL", "webhook")
    with Webhook(status) as failing:
        monkeypatch.setenv("CIVICFLOW_ALERT_WEBHOOK", failing.url)
        with caplog.at_level(logging.INFO, logger="civicflow.alerts"):
            notify_failure(failure_context(*_ingest_failure()))
    assert len(failing.requests) == attempts  # 5xx is asked again, 4xx is not
    (line,) = caplog.records
    assert line.levelname == "ERROR"
    assert f"HTTP {status}" in line.getMessage()
    assert "positions.visits (load 7): the original failure" in line.getMessage()
    assert "secret-token" not in caplog.text


def test_a_webhook_that_is_down_is_logged_and_never_raises(monkeypatch, caplog, quick_retries):
    monkeypatch.setenv("CIVICFLOW_ALERT_CHANNEL", "webhook")
    monkeypatch.setenv("CIVICFLOW_ALERT_WEBHOOK", f"http://127.0.0.1:{free_port()}/hook")
    with caplog.at_level(logging.INFO, logger="civicflow.alerts"):
        notify_failure(failure_context(*_ingest_failure()))
    (line,) = caplog.records
    assert line.levelname == "ERROR"
    assert "could not send the alert by webhook" in line.getMessage()
    assert "refused" in line.getMessage().lower()
    assert "positions.visits (load 7): the original failure" in line.getMessage()


def _ingest_failure():
    dag = SimpleNamespace(dag_id="positions_ingest")
    return (
        dag,
        SimpleNamespace(task_id="visits.merge"),
        RuntimeError("positions.visits (load 7): the original failure"),
    )


# --- e-mail --------------------------------------------------------------------------------


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to take one message: what Airflow's SMTP hook says, answered."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 sink ESMTP")
                sender, recipients = "", []
                while line := self.rfile.readline():
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.reply("250 sink")
                    elif verb == b"MAIL":
                        sender = line.decode().split(":", 1)[1].strip()
                        self.reply("250 OK")
                    elif verb == b"RCPT":
                        recipients.append(line.decode().split(":", 1)[1].strip())
                        self.reply("250 OK")
                    elif verb == b"DATA":
                        self.reply("354 go on")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        sink.messages.append((sender, recipients, data))
                        self.reply("250 queued")
                    elif verb == b"QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

        super().__init__(("127.0.0.1", 0), Handler)


def test_the_email_channel_mails_through_airflows_smtp_connection(monkeypatch):
    sink = SmtpSink()
    threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.setenv("CIVICFLOW_ENV", "production")
        monkeypatch.setenv("CIVICFLOW_ALERT_CHANNEL", "email")
        monkeypatch.setenv("CIVICFLOW_ALERT_EMAIL", "ops@example.org, oncall@example.org")
        monkeypatch.setenv(
            "AIRFLOW_CONN_SMTP_DEFAULT",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": sink.server_address[1],
                    "extra": {
                        "disable_ssl": True,
                        "disable_tls": True,
                        "from_email": "civicflow@example.org",
                    },
                }
            ),
        )
        notify_failure(failure_context(*_ingest_failure()))
    finally:
        sink.shutdown()
        sink.server_close()
    ((sender, recipients, data),) = sink.messages
    assert "civicflow@example.org" in sender
    assert recipients == ["<ops@example.org>", "<oncall@example.org>"]
    message = email.message_from_bytes(data)
    assert message["Subject"] == "[civicflow production] positions_ingest.visits.merge failed"
    (body,) = [
        p.get_payload(decode=True).decode()
        for p in message.walk()
        if p.get_filename() is None and p.get_content_type() == "text/html"
    ]
    assert "positions.visits (load 7): the original failure" in body
    assert "dags/positions_ingest/runs/x/tasks/visits.merge" in body
