"""Feed watch and failure alerts: which feeds are late or off their usual volume, and who is told.

``check_feeds`` reads ``meta.load_audit`` and applies the rules below to every
entity of every feed; ``notify_failure`` is the ``on_failure_callback`` of every
civicflow task: it reports the failed task, its run and its exception by the
configured channel (a WARNING log line, a webhook or an e-mail) and never raises,
so a failed notification never hides the failure it was about. Importing this
module is cheap (DAG files import it); the database and SMTP come in as needed.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from civicflow.config import (
    ALERT_CONNECTION,
    ALERT_EMAIL_ENV,
    ALERT_WEBHOOK_ENV,
    ConfigurationError,
    alert_channel,
    environment,
)

log = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

# --- the rules -------------------------------------------------------------------------------

# Every ingest DAG runs @daily (civicflow.airflow.ingest.ingest_dag). Two hours of grace cover
# retries with backoff and a slow feed; 26 h is also when marts.feed_health says "stale".
SCHEDULE = dt.timedelta(hours=24)
SCHEDULE_GRACE = dt.timedelta(hours=2)
SCHEDULE_ALLOWED = SCHEDULE + SCHEDULE_GRACE

# Snapshots, lists and ledgers: each payload is one whole unit (a reference list, a day of
# tallies, a register snapshot, a street-month workbook), so a delivery is measured in rows per
# payload, and catching up several units in one run is no spike. Judged against the median of
# the 7 delivery days before it.
PER_PAYLOAD = "rows per payload"
PAYLOAD_WINDOW = 7
# Incremental feeds: a batch holds what changed since the previous one, which swings with the
# weekday (health records on working days, volunteering at weekends), holidays and catch-ups
# after a missed run. So the last 7 days' rows are judged against the median week of the 4
# before; the first day an entity was loaded (the whole history, once) is never counted.
PER_WEEK = "rows in 7 days"
WEEK_WINDOW = 4

MIN_MEDIAN_ROWS = 10  # below this, chance alone halves or triples a count: not judged
HISTORY_LIMIT = 400  # newest succeeded batches read per entity: a year of daily runs


@dataclass(frozen=True)
class Cadence:
    """What a feed's department promises: how often new rows come, and how steady they are."""

    every: dt.timedelta  # how often the department delivers new rows
    grace: dt.timedelta  # how late a delivery may be before it is missed
    volume: str  # PER_PAYLOAD or PER_WEEK
    low: float  # flag a volume below this fraction of the median before it
    high: float  # ... or above this multiple of it

    @property
    def allowed(self) -> dt.timedelta:
        return self.every + self.grace


DAILY = dt.timedelta(days=1)
# One entry a feed, from how each department publishes (docs: /work/shared/feeds.md).
# - Register snapshots and tallies come daily; a missed day is caught up by the next run by
#   design, so one late delivery is normal and two are not (48 h). A snapshot, list or day of
#   tallies should not halve or triple from one delivery to the next.
# - Health records and the volunteer platform change when people work: a weekend or a
#   three-day holiday may bring nothing, so four days without a row (96 h) is the alarm.
#   Weekly totals are steady, hence the same 50 % and 3x as snapshots.
# - Ledgers are monthly, published in the first days of the next month and republished when
#   corrected (31 days and 10 of grace). Workbooks differ with the size of the street and a
#   day may bring one street's correction, hence the wider band.
CADENCES: dict[str, Cadence] = {
    "positions": Cadence(DAILY, DAILY, PER_PAYLOAD, low=0.5, high=3.0),
    "civil_affairs": Cadence(DAILY, DAILY, PER_PAYLOAD, low=0.5, high=3.0),
    "elderly_care": Cadence(31 * DAILY, 10 * DAILY, PER_PAYLOAD, low=0.25, high=4.0),
    "health": Cadence(DAILY, 3 * DAILY, PER_WEEK, low=0.5, high=3.0),
    "volunteer": Cadence(DAILY, 3 * DAILY, PER_WEEK, low=0.5, high=3.0),
}
# A feed added without an entry is watched as a daily, incremental one: the tolerant choice.
DEFAULT_CADENCE = Cadence(DAILY, 3 * DAILY, PER_WEEK, low=0.5, high=3.0)

NEVER_LOADED = "never_loaded"
STALE = "stale"
NO_DELIVERY = "no_delivery"
VOLUME_LOW = "volume_low"
VOLUME_HIGH = "volume_high"


@dataclass(frozen=True)
class Batch:
    """A succeeded batch of one entity, as meta.load_audit recorded it."""

    finished_at: dt.datetime
    source_rows: int
    payloads: int


@dataclass(frozen=True)
class History:
    """What meta.load_audit says about one entity of one feed."""

    feed: str
    entity: str
    succeeded: tuple[Batch, ...] = ()  # oldest first
    failed_since: int = 0  # failed or rejected batches since the last success (or ever)


@dataclass(frozen=True)
class Finding:
    """One rule one entity broke, with the figures that broke it."""

    feed: str
    entity: str
    rule: str
    detail: str
    figures: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.feed}.{self.entity}: {self.rule}: {self.detail}"


class FindingsError(RuntimeError):
    """The feed watch found something: the message lists every finding, one a line."""

    def __init__(self, findings: Sequence[Finding]):
        self.findings = tuple(findings)
        feeds = sorted({f.feed for f in self.findings})
        super().__init__(
            f"{len(self.findings)} finding(s) for feed {', '.join(feeds)}:\n"
            + "\n".join(f"- {f}" for f in self.findings)
        )

    @property
    def feed(self) -> str | None:
        feeds = {f.feed for f in self.findings}
        return feeds.pop() if len(feeds) == 1 else None


@dataclass(frozen=True)
class Delivery:
    """A local day's succeeded batches that brought payloads, in rows per payload."""

    day: dt.date
    value: float
    finished_at: dt.datetime  # the day's newest batch that brought a payload


@dataclass(frozen=True)
class Week:
    """Seven local days' rows of one entity, ``first`` to ``last``."""

    first: dt.date
    last: dt.date
    rows: int


def _hours(span: dt.timedelta) -> float:
    return round(span.total_seconds() / 3600, 1)


def _span(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    value, unit = (hours, "h") if hours < 72 else (hours / 24, "days")
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _local(moment: dt.datetime) -> str:
    return moment.astimezone(LOCAL_TZ).isoformat(timespec="minutes")


def _failures(count: int) -> str:
    return f"{count} batch{'es' if count != 1 else ''} failed or rejected"


def freshness(history: History, cadence: Cadence, now: dt.datetime) -> Finding | None:
    """never_loaded, stale (no batch succeeded within the schedule), or no_delivery (no rows)."""
    feed, entity = history.feed, history.entity
    if not history.succeeded:
        tried = (
            _failures(history.failed_since)
            if history.failed_since
            else "none failed either (is its ingest DAG new or paused?)"
        )
        return Finding(
            feed,
            entity,
            NEVER_LOADED,
            f"no batch has ever succeeded; {tried}",
            {"failed_batches": history.failed_since},
        )
    last = history.succeeded[-1]
    if now - last.finished_at > SCHEDULE_ALLOWED:
        since = f"; {_failures(history.failed_since)} since" if history.failed_since else ""
        return Finding(
            feed,
            entity,
            STALE,
            f"the last batch succeeded {_span(now - last.finished_at)} ago "
            f"({_local(last.finished_at)}); the ingest runs every {_span(SCHEDULE)}, "
            f"allowed {_span(SCHEDULE_ALLOWED)}{since}",
            {
                "hours_since_success": _hours(now - last.finished_at),
                "allowed_hours": _hours(SCHEDULE_ALLOWED),
                "last_success_at": _local(last.finished_at),
                "failed_since": history.failed_since,
            },
        )
    delivered = [b for b in history.succeeded if b.source_rows > 0]
    # Never delivered: counted from the first success, when rows were first due.
    since = delivered[-1].finished_at if delivered else history.succeeded[0].finished_at
    if now - since <= cadence.allowed:
        return None
    if delivered:
        what = f"no rows delivered for {_span(now - since)} (the last on {_local(since)})"
    else:
        what = f"no batch has delivered rows since the first succeeded, {_span(now - since)} ago"
    return Finding(
        feed,
        entity,
        NO_DELIVERY,
        f"{what}; expected every {_span(cadence.every)}, allowed {_span(cadence.allowed)}",
        {
            "hours_since_delivery": _hours(now - since),
            "allowed_hours": _hours(cadence.allowed),
            "last_delivery_at": _local(since) if delivered else None,
        },
    )


def _day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(LOCAL_TZ).date()


def deliveries(batches: Sequence[Batch]) -> list[Delivery]:
    """The days that brought payloads, oldest first, each in rows per payload.

    A day's batches count as one delivery, so a manual re-run adds to its day instead
    of standing as a delivery of its own; a day without a payload (nothing was due) is
    no delivery.
    """
    days: dict[dt.date, list[Any]] = {}
    for b in sorted(batches, key=lambda b: b.finished_at):
        if b.payloads > 0:
            day = days.setdefault(_day(b.finished_at), [0, 0, b.finished_at])
            day[0] += b.source_rows
            day[1] += b.payloads
            day[2] = b.finished_at
    return [Delivery(day, rows / payloads, at) for day, (rows, payloads, at) in days.items()]


def weeks(batches: Sequence[Batch]) -> list[Week]:
    """Seven-day totals, newest first, ending on the newest batch's day.

    Only weeks that start after the first day of the history count: an entity's first
    batch is its whole past, not a day's changes.
    """
    rows: dict[dt.date, int] = {}
    for b in batches:
        rows[_day(b.finished_at)] = rows.get(_day(b.finished_at), 0) + b.source_rows
    if not rows:
        return []
    first, last = min(rows), max(rows)
    out: list[Week] = []
    while last - dt.timedelta(days=6) > first:
        start = last - dt.timedelta(days=6)
        total = sum(rows.get(start + dt.timedelta(days=i), 0) for i in range(7))
        out.append(Week(start, last, total))
        last -= dt.timedelta(days=7)
    return out


def judge_volume(
    value: float, previous: Sequence[float], needed: int, low: float, high: float
) -> tuple[str, float, float] | None:
    """(rule, median, ratio) when ``value`` is off the median of ``previous``; else None.

    Judged only with ``needed`` earlier figures, and only when their median is large
    enough that a halving or tripling is not chance. The median, not the mean, so that
    one odd delivery (a flood, a holiday) does not make the ones after it look odd.
    """
    if len(previous) < needed:
        return None
    median = statistics.median(previous)
    if median < MIN_MEDIAN_ROWS:
        return None
    ratio = value / median
    if ratio < low:
        return VOLUME_LOW, median, ratio
    if ratio > high:
        return VOLUME_HIGH, median, ratio
    return None


def volume(history: History, cadence: Cadence, now: dt.datetime) -> Finding | None:
    """The newest delivery (or week) against the median of those before it.

    Judged while the newest batch is within one schedule period (26 h); when it is older,
    the freshness rules say what matters.
    """
    if not history.succeeded or now - history.succeeded[-1].finished_at > SCHEDULE_ALLOWED:
        return None
    if cadence.volume == PER_PAYLOAD:
        series = deliveries(history.succeeded)
        if not series or now - series[-1].finished_at > SCHEDULE_ALLOWED:
            return None  # the newest runs brought nothing: no_delivery's business
        value, when = series[-1].value, series[-1].day.isoformat()
        phrase = f"on {when}"
        previous = [d.value for d in series[-1 - PAYLOAD_WINDOW : -1]]
        needed, units = PAYLOAD_WINDOW, "delivery days"
    elif cadence.volume == PER_WEEK:
        series = weeks(history.succeeded)
        if not series:
            return None
        value, when = series[0].rows, f"{series[0].first}/{series[0].last}"
        phrase = f"from {series[0].first} to {series[0].last}"
        previous = [w.rows for w in series[1 : 1 + WEEK_WINDOW]]
        needed, units = WEEK_WINDOW, "weeks"
    else:
        raise ValueError(f"unknown volume measure {cadence.volume!r}")
    verdict = judge_volume(value, previous, needed, cadence.low, cadence.high)
    if verdict is None:
        return None
    rule, median, ratio = verdict
    if rule == VOLUME_LOW:
        band, threshold = f"{ratio:.0%} of it, flagged below {cadence.low:.0%}", cadence.low
    else:
        band, threshold = f"{ratio:.1f}x, flagged above {cadence.high:g}x", cadence.high
    return Finding(
        history.feed,
        history.entity,
        rule,
        f"{value:,.0f} {cadence.volume} {phrase} against a median of {median:,.0f} over "
        f"the {len(previous)} {units} before: {band}",
        {
            "measure": cadence.volume,
            "when": when,
            "value": round(value, 1),
            "median": round(median, 1),
            "ratio": round(ratio, 3),
            "threshold": threshold,
            "window": len(previous),
        },
    )


def judge(history: History, cadence: Cadence, now: dt.datetime) -> list[Finding]:
    """Every finding for one entity: at most one about freshness, at most one about volume."""
    return [f for f in (freshness(history, cadence, now), volume(history, cadence, now)) if f]


# --- reading meta.load_audit ------------------------------------------------------------------

_SUCCEEDED = """
select feed, entity, finished_at, source_rows, payloads
from (
    select feed, entity, finished_at, source_rows, payloads,
           row_number() over (partition by feed, entity order by finished_at desc) as newest
    from meta.load_audit
    where status = 'succeeded' and finished_at <= %(now)s
) batches
where newest <= %(limit)s
order by feed, entity, finished_at
"""
_FAILED_SINCE = """
select a.feed, a.entity, count(*)
from meta.load_audit a
where a.status in ('failed', 'rejected') and a.started_at <= %(now)s
  and a.started_at > coalesce(
      (select max(s.started_at) from meta.load_audit s
       where s.feed = a.feed and s.entity = a.entity and s.status = 'succeeded'
         and s.finished_at <= %(now)s),
      '-infinity')
group by 1, 2
"""


def histories(conn: Any, now: dt.datetime) -> dict[tuple[str, str], History]:
    """Each (feed, entity) in meta.load_audit with its succeeded batches and failures since."""
    if conn.execute("select to_regclass('meta.load_audit')").fetchone()[0] is None:
        return {}  # a warehouse never migrated has loaded nothing
    params = {"now": now, "limit": HISTORY_LIMIT}
    batches: dict[tuple[str, str], list[Batch]] = {}
    for feed, entity, finished_at, rows, payloads in conn.execute(_SUCCEEDED, params):
        batches.setdefault((feed, entity), []).append(Batch(finished_at, rows, payloads))
    failed = {(feed, entity): n for feed, entity, n in conn.execute(_FAILED_SINCE, params)}
    return {
        key: History(key[0], key[1], tuple(batches.get(key, ())), failed.get(key, 0))
        for key in batches.keys() | failed.keys()
    }


def check_feeds(
    conn: Any, now: dt.datetime | None = None, feeds: Iterable[str] | None = None
) -> list[Finding]:
    """Findings for every entity of every feed (or of ``feeds``), never-loaded ones included.

    ``conn`` is a psycopg connection to the warehouse; only meta.load_audit is read.
    """
    from civicflow.feeds import FEEDS

    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    wanted = list(FEEDS) if feeds is None else list(feeds)
    unknown = [f for f in wanted if f not in FEEDS]
    if unknown:
        raise KeyError(f"no such feed: {', '.join(unknown)}")
    known = histories(conn, now)
    findings: list[Finding] = []
    for feed in wanted:
        cadence = CADENCES.get(feed, DEFAULT_CADENCE)
        for entity in FEEDS[feed]:
            history = known.get((feed, entity.name), History(feed, entity.name))
            findings.extend(judge(history, cadence, now))
    return findings


# --- telling someone ---------------------------------------------------------------------------

WEBHOOK_TIMEOUT_S = 10.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 0.5  # then doubled: 0.5 s, 1 s
MAX_EXCEPTION_CHARS = 10_000


class AlertError(RuntimeError):
    """An alert could not be sent; the message never holds the webhook's URL (it is a secret)."""


@dataclass(frozen=True)
class Alert:
    """A failed task, as every channel reports it."""

    dag_id: str | None
    task_id: str | None
    run_id: str | None
    try_number: int | None
    map_index: int | None
    logical_date: str | None
    feed: str | None  # when the exception names one
    exception_type: str | None
    exception: str
    log_url: str | None
    environment: str

    @property
    def subject(self) -> str:
        return f"[civicflow {self.environment}] {self.dag_id}.{self.task_id} failed"

    @property
    def text(self) -> str:
        feed = f" (feed {self.feed})" if self.feed else ""
        return (
            f"civicflow {self.environment}: task {self.dag_id}.{self.task_id}{feed} failed "
            f"in run {self.run_id}, try {self.try_number}: {self.exception}"
        )

    def as_json(self) -> dict[str, Any]:
        """The webhook's body: ``text`` for chat tools, the fields for anything that routes."""
        return {
            "text": self.text,
            "source": "civicflow",
            "environment": self.environment,
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "try_number": self.try_number,
            "map_index": self.map_index,
            "logical_date": self.logical_date,
            "feed": self.feed,
            "exception_type": self.exception_type,
            "exception": self.exception,
            "log_url": self.log_url,
        }


def _feed_of(exc: BaseException | None) -> str | None:
    """The feed an exception or its causes name (FeedError.feed, BatchError.entity.feed)."""
    seen = 0
    while exc is not None and seen < 8:
        feed = getattr(exc, "feed", None) or getattr(getattr(exc, "entity", None), "feed", None)
        if isinstance(feed, str):
            return feed
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def alert_from_context(context: Mapping[str, Any]) -> Alert:
    """The alert for a failed task, from the context Airflow hands its on_failure_callback."""
    ti = context.get("task_instance") or context.get("ti")
    dag = context.get("dag")
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        exception_type, text = type(exc).__name__, str(exc)
    elif exc:
        exception_type, text = None, str(exc)
    else:
        exception_type, text = None, "no exception was recorded (killed, or timed out?)"
    try:
        log_url = getattr(ti, "log_url", None)
    except Exception:  # the property reads Airflow's configuration, which may be absent
        log_url = None
    logical_date = context.get("logical_date")
    return Alert(
        dag_id=getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None),
        task_id=getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", None),
        run_id=getattr(ti, "run_id", None) or context.get("run_id"),
        try_number=getattr(ti, "try_number", None),
        map_index=getattr(ti, "map_index", None),
        logical_date=logical_date.isoformat() if logical_date else None,
        feed=_feed_of(exc) if isinstance(exc, BaseException) else None,
        exception_type=exception_type,
        exception=text[:MAX_EXCEPTION_CHARS],
        log_url=log_url if isinstance(log_url, str) else None,
        environment=environment(),
    )


@dataclass(frozen=True)
class Webhook:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """Scheme, host and port only: the path and query of a webhook often hold its key."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def webhook() -> Webhook:
    """The webhook: ``CIVICFLOW_ALERT_WEBHOOK``, else the http connection ``civicflow_alerts``.

    The connection's host is the whole URL (or a bare host, with the scheme in *schema*,
    an optional port and the path in the extra's ``endpoint``); a password is sent as a
    bearer token, and the extra's ``headers`` as they are.
    """
    url = os.environ.get(ALERT_WEBHOOK_ENV, "").strip()
    if url:
        return Webhook(url)
    from civicflow.airflow.connections import connection

    try:
        conn = connection(ALERT_CONNECTION)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"alerts go to a webhook, but none is set: set {ALERT_WEBHOOK_ENV} or the http "
            f"connection '{ALERT_CONNECTION}' (its host is the URL)"
        ) from exc
    if not conn.host:
        raise ConfigurationError(f"Airflow connection '{ALERT_CONNECTION}' has no host")
    extra = conn.extra_dejson or {}
    host = conn.host.strip()
    if "://" not in host:
        host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
    endpoint = str(extra.get("endpoint") or "")
    if endpoint:
        host = host.rstrip("/") + "/" + endpoint.lstrip("/")
    headers = dict(extra.get("headers") or {})
    if conn.password:
        headers["Authorization"] = f"Bearer {conn.password}"
    return Webhook(host, headers)


def post_json(hook: Webhook, document: Mapping[str, Any]) -> int:
    """POST ``document`` as JSON; retries 429, 5xx and connection failures; returns the status."""
    import urllib.error
    import urllib.request

    if urlsplit(hook.url).scheme not in ("http", "https"):
        raise AlertError(f"the webhook's URL must be http or https, not {hook.where}")
    body = json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", **hook.headers}
    reason = ""
    for attempt in range(WEBHOOK_ATTEMPTS):
        if attempt:
            time.sleep(WEBHOOK_BACKOFF_S * 2 ** (attempt - 1))
        # S310: the scheme is http or https, checked above.
        request = urllib.request.Request(hook.url, body, headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break  # the webhook refuses this request: asking again will not help
        except (urllib.error.URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
    raise AlertError(f"webhook {hook.where}: {reason}")


def send_email(alert: Alert, recipients: Sequence[str]) -> None:
    """Mail the alert through Airflow's SMTP connection (``[email] email_conn_id``)."""
    from airflow.providers.common.compat.sdk import conf
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    conn_id = conf.get("email", "email_conn_id", fallback="smtp_default")
    from_email = conf.get("email", "from_email", fallback=None) or None
    body = f"<pre>{html.escape(alert.text)}</pre>"
    if alert.log_url:
        body += f'<p><a href="{html.escape(alert.log_url)}">The task\'s log</a></p>'
    with SmtpHook(smtp_conn_id=conn_id) as smtp:
        smtp.send_email_smtp(
            to=list(recipients), subject=alert.subject, html_content=body, from_email=from_email
        )


def email_recipients() -> list[str]:
    recipients = [a.strip() for a in os.environ.get(ALERT_EMAIL_ENV, "").split(",") if a.strip()]
    if not recipients:
        raise ConfigurationError(f"alerts go by e-mail, but {ALERT_EMAIL_ENV} names no recipient")
    return recipients


def send(alert: Alert, channel: str) -> str:
    """Send ``alert`` by ``channel``; returns where it went. Raises when it could not."""
    if channel == "log":
        log.warning("civicflow alert: %s", alert.text)
        return "the log"
    if channel == "webhook":
        hook = webhook()
        post_json(hook, alert.as_json())
        return f"webhook {hook.where}"
    if channel == "email":
        recipients = email_recipients()
        send_email(alert, recipients)
        return f"e-mail to {', '.join(recipients)}"
    raise ConfigurationError(f"unknown alert channel {channel!r}")


def notify_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every civicflow task: report the failure; never raise.

    When the channel fails (webhook down, SMTP refused, nothing configured), the alert
    is logged at ERROR with the reason, so it still reaches the task's log.
    """
    try:
        alert = alert_from_context(context)
    except Exception:
        log.exception("could not build the alert for a failed task")
        return
    channel = "log"
    try:
        channel = alert_channel()
        where = send(alert, channel)
    except Exception as exc:
        log.error("could not send the alert by %s (%s); the alert: %s", channel, exc, alert.text)
        return
    if channel != "log":
        log.info("alert for %s.%s sent to %s", alert.dag_id, alert.task_id, where)
