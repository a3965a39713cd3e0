"""The data-quality view of every feed: its last load, rows, quarantine reasons, freshness, trend.

Read from ``meta.load_audit``, ``meta.feed_state``, ``meta.dq_result``,
``quarantine.rejected_row`` and ``marts.feed_health``, and rendered as one server-side
HTML page (inline SVG, no script, nothing fetched) or as JSON, for the Airflow UI's
Data quality page (``civicflow.airflow.dq_page``). Nothing here imports Airflow. The page
shows counts, reasons and rates, never a value from a record: quoted values and long
numbers are cut out of the reasons.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from civicflow import alerts
from civicflow.feeds import FEEDS
from civicflow.parse import without_values as reason_kind
from civicflow.report import FONTS
from civicflow.validation import KeptResult, kept_results

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
TREND_LOADS = 20  # loads drawn in each feed's rejection-rate trend

# Loads: every <feed>_ingest DAG runs @daily (civicflow.airflow.ingest), and marts.feed_health
# calls a feed stale 26 hours after its last published batch. That status is used as it is.
LOAD_STALE_AFTER = dt.timedelta(hours=26)


@dataclass(frozen=True)
class Cadence:
    """How often a department's data changes, and how old its newest data may be."""

    publishes: str
    newest_within: dt.timedelta


# Data: how new the newest data a feed delivered (its watermark or snapshot in meta.feed_state)
# may be: the delivery limits of civicflow.alerts.CADENCES, the one place these rules live (how
# often each department publishes, and how late it may be). A date watermark counts from the
# end of its day.
PUBLISHES = {
    "positions": "a tally per position every day",
    "civil_affairs": "a register snapshot every day",
    "health": "records changed every working day",
    "elderly_care": "ledgers once a month per street",
    "volunteer": "records changed every day",
}
CADENCE: dict[str, Cadence] = {
    feed: Cadence(publishes, alerts.CADENCES[feed].allowed) for feed, publishes in PUBLISHES.items()
}

STATUS_COLOURS = {"ok": "#2e7d32", "stale": "#b26a00", "failing": "#c62828"}
NEUTRAL = "#6b7280"

_NOW = "select now()"
_BATCHES = """
with runs as (  -- a load: one DAG run of a feed, or one batch loaded outside Airflow
    select feed, coalesce(run_id, load_id::text) as run, min(started_at) as started_at
    from meta.load_audit
    where status <> 'replayed'
    group by 1, 2
),
recent as (
    select feed, run, started_at,
           row_number() over (partition by feed order by started_at desc) as newest
    from runs
)
select a.feed, r.run, a.run_id, a.entity, a.load_id::text, a.status, a.started_at,
       a.finished_at, a.source_rows, a.accepted_rows, a.quarantined_rows, a.duplicate_rows,
       a.error
from recent r
join meta.load_audit a on a.feed = r.feed and coalesce(a.run_id, a.load_id::text) = r.run
where r.newest <= %s and a.status <> 'replayed'
order by a.feed, r.started_at, a.started_at
"""
_EXPECTATIONS = """
select load_id::text, count(*) filter (where not success), count(*)
from meta.dq_result
where load_id = any(%s::uuid[])
group by 1
"""
_REASONS = """
select q.load_id::text, r.reason, count(*)
from quarantine.rejected_row q
cross join unnest(q.reasons) as r (reason)
where q.load_id = any(%s::uuid[])
group by 1, 2
"""
_HEALTH = "select feed, status, last_success_at, hours_since_success from marts.feed_health"
_WATERMARKS = "select feed, entity, watermark from meta.feed_state where watermark is not null"


@dataclass(frozen=True)
class Batch:
    """One entity's batch in a load, as meta.load_audit has it."""

    entity: str
    load_id: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    source_rows: int
    accepted_rows: int
    quarantined_rows: int
    duplicate_rows: int
    error: str | None = None
    expectations_failed: int | None = None  # of the suite, from meta.dq_result
    expectations: int | None = None
    data_docs: str | None = None  # the page of its GX result, else of its entity's newest
    validated_at: dt.datetime | None = None  # when that result was made


@dataclass(frozen=True)
class Load:
    """One run of a feed: the newest batch of each entity in it."""

    run: str
    run_id: str | None
    batches: tuple[Batch, ...]

    @property
    def status(self) -> str:
        statuses = {b.status for b in self.batches}
        for worst in ("failed", "rejected"):
            if worst in statuses:
                return worst
        return "succeeded" if statuses == {"succeeded"} else "running"

    @property
    def at(self) -> dt.datetime:
        return max(b.finished_at or b.started_at for b in self.batches)

    def total(self, column: str) -> int:
        return sum(getattr(b, column) for b in self.batches)

    @property
    def rejection_rate(self) -> float | None:
        source = self.total("source_rows")
        return self.total("quarantined_rows") / source if source else None


@dataclass(frozen=True)
class FeedQuality:
    feed: str
    title: str
    dag_id: str
    status: str  # ok, stale, failing or never loaded
    why: tuple[str, ...]
    cadence: Cadence
    last_load: Load | None = None
    trend: tuple[Load, ...] = ()  # oldest first, the last load last
    reasons: tuple[tuple[str, str, int], ...] = ()  # entity, reason, rows (last load)
    last_success_at: dt.datetime | None = None
    hours_since_success: float | None = None
    newest_data: str | None = None  # the newest watermark or snapshot, as stored
    newest_data_at: dt.datetime | None = None
    max_rejection_rate: float = 0.05
    entities: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, dt.timedelta):
                return value.total_seconds() / 3600
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        data = asdict(self)
        data["cadence"] = {
            "publishes": self.cadence.publishes,
            "newest_within_hours": self.cadence.newest_within.total_seconds() / 3600,
            "load_stale_after_hours": LOAD_STALE_AFTER.total_seconds() / 3600,
        }
        data["reasons"] = [{"entity": e, "reason": r, "rows": n} for e, r, n in self.reasons]
        data["trend"] = [_load_dict(load) for load in self.trend]
        data["last_load"] = _load_dict(self.last_load) if self.last_load else None
        return plain(data)


def _load_dict(load: Load) -> dict[str, Any]:
    return {
        "run": load.run,
        "run_id": load.run_id,
        "status": load.status,
        "at": load.at,
        **{c: load.total(c) for c in _COUNTS},
        "rejection_rate": load.rejection_rate,
        "batches": [asdict(b) for b in load.batches],
    }


_COUNTS = ("source_rows", "accepted_rows", "quarantined_rows", "duplicate_rows")


# --- reading -----------------------------------------------------------------------------------


def collect(
    conn: psycopg.Connection,
    kept: Sequence[KeptResult] | None = None,
    loads: int = TREND_LOADS,
) -> tuple[dt.datetime, list[FeedQuality]]:
    """Every feed's quality, in the order of ``civicflow.feeds.FEEDS``, and the database's now.

    ``kept`` are the GX results kept for the Data Docs (default: those under the GX folder).
    """
    now = conn.execute(_NOW).fetchone()[0]
    by_feed: dict[str, dict[str, list[Batch]]] = defaultdict(dict)
    run_ids: dict[tuple[str, str], str | None] = {}
    for feed, run, run_id, entity, *rest in conn.execute(_BATCHES, (loads,)).fetchall():
        batches = by_feed[feed].setdefault(run, [])
        batches[:] = [b for b in batches if b.entity != entity]  # a retried batch replaces one
        *counts, error = rest
        batches.append(Batch(entity, *counts, error=masked(error)))
        run_ids[feed, run] = run_id
    newest = {feed: list(runs.values())[-1] for feed, runs in by_feed.items()}  # last loads
    last_ids = [b.load_id for batches in newest.values() for b in batches]
    checked = {
        load_id: (failed, total)
        for load_id, failed, total in conn.execute(_EXPECTATIONS, (last_ids,)).fetchall()
    }
    raw_reasons = conn.execute(_REASONS, (last_ids,)).fetchall()
    health = {row[0]: row[1:] for row in conn.execute(_HEALTH).fetchall()}
    watermarks: dict[str, list[str]] = defaultdict(list)
    for feed, _entity, watermark in conn.execute(_WATERMARKS).fetchall():
        watermarks[feed].append(watermark)
    pages = _newest_pages(kept_results() if kept is None else kept)

    entity_of = {b.load_id: b.entity for batches in newest.values() for b in batches}
    reasons: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    feed_of = {b.load_id: feed for feed, batches in newest.items() for b in batches}
    for load_id, reason, rows in raw_reasons:
        reasons[feed_of[load_id]][entity_of[load_id], reason_kind(reason)] += rows

    result = []
    for feed, entities in FEEDS.items():
        runs = by_feed.get(feed, {})
        trend = [Load(run, run_ids[feed, run], tuple(batches)) for run, batches in runs.items()]
        last = None
        if trend:
            last = trend[-1] = Load(
                trend[-1].run,
                trend[-1].run_id,
                tuple(_detailed(feed, b, checked, pages) for b in trend[-1].batches),
            )
        status, last_success_at, hours = health.get(feed, (None, None, None))
        hours = None if hours is None else float(hours)
        newest_data, newest_at = _newest_data(watermarks.get(feed, []))
        verdict, why = judge(
            feed,
            health_status=status,
            hours_since_success=hours,
            last_load=last,
            newest_data_at=newest_at,
            now=now,
        )
        result.append(
            FeedQuality(
                feed=feed,
                title=feed.replace("_", " ").capitalize(),
                dag_id=f"{feed}_ingest",
                status=verdict,
                why=why,
                cadence=CADENCE[feed],
                last_load=last,
                trend=tuple(trend),
                reasons=tuple(
                    (entity, reason, rows)
                    for (entity, reason), rows in sorted(
                        reasons[feed].items(), key=lambda item: (-item[1], item[0])
                    )
                ),
                last_success_at=last_success_at,
                hours_since_success=hours,
                newest_data=newest_data,
                newest_data_at=newest_at,
                max_rejection_rate=max(e.max_rejection_rate for e in entities),
                entities=tuple(e.name for e in entities),
            )
        )
    return now, result


def _detailed(
    feed: str,
    batch: Batch,
    checked: dict[str, tuple[int, int]],
    pages: dict[tuple[str, str | None], KeptResult],
) -> Batch:
    """The batch with its expectation counts and its Data Docs page (its own, else the newest)."""
    failed, total = checked.get(batch.load_id, (None, None))
    suite = f"{feed}.{batch.entity}"
    kept = pages.get((suite, batch.load_id)) or pages.get((suite, None))
    return replace(
        batch,
        expectations_failed=failed,
        expectations=total,
        data_docs=kept.page if kept else None,
        validated_at=kept.run_time if kept else None,
    )


def _newest_pages(kept: Iterable[KeptResult]) -> dict[tuple[str, str | None], KeptResult]:
    """Kept results by (suite, load id), and by (suite, None) the suite's newest."""
    pages: dict[tuple[str, str | None], KeptResult] = {}
    for result in kept:  # newest first
        pages.setdefault((result.suite, None), result)
        if result.load_id:
            pages.setdefault((result.suite, result.load_id), result)
    return pages


def _newest_data(watermarks: Iterable[str]) -> tuple[str | None, dt.datetime | None]:
    """The newest of a feed's watermarks, as stored and as the time its data reaches."""
    newest: tuple[str | None, dt.datetime | None] = (None, None)
    for text in watermarks:
        at = data_time(text)
        if at is not None and (newest[1] is None or at > newest[1]):
            newest = (text, at)
    return newest


def data_time(watermark: str) -> dt.datetime | None:
    """When a watermark's data ends: a date's day ends at local midnight; else its instant."""
    text = watermark.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), LOCAL_TZ)
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        return None  # not a time (a file name, a version): says nothing about freshness
    return at if at.tzinfo else at.replace(tzinfo=LOCAL_TZ)


def judge(
    feed: str,
    *,
    health_status: str | None,
    hours_since_success: float | None,
    last_load: Load | None,
    newest_data_at: dt.datetime | None,
    now: dt.datetime,
) -> tuple[str, tuple[str, ...]]:
    """A feed's status and why: never loaded, failing, stale (loads or data), else ok."""
    cadence = CADENCE[feed]
    dag = f"{feed}_ingest"
    if last_load is None and health_status is None:
        return "never loaded", (f"no batch yet: trigger {dag} in Airflow",)
    if health_status in (None, "failing"):
        bad = (
            [b for b in last_load.batches if b.status in ("failed", "rejected")]
            if last_load
            else []
        )
        if bad:
            why = tuple(
                f"{b.entity}: the newest batch "
                + (
                    "was rejected (too many rows quarantined)"
                    if b.status == "rejected"
                    else "failed"
                )
                for b in bad
            )
        elif hours_since_success is None:
            why = ("no batch has been published yet",)
        else:
            why = ("an entity's newest batch failed or was rejected (marts.feed_health)",)
        return "failing", why
    published = f"published {_ago(hours_since_success)}"
    if health_status == "stale":
        limit = LOAD_STALE_AFTER.total_seconds() / 3600
        return "stale", (f"{published}; {dag} runs daily, stale after {limit:.0f} h",)
    if newest_data_at is not None:
        age = now - newest_data_at
        if age > cadence.newest_within:
            return "stale", (
                published,
                f"newest data {_days(age)} old; the department sends {cadence.publishes}, "
                f"stale after {_days(cadence.newest_within)}",
            )
        return "ok", (published, f"newest data {_days(age)} old")
    return "ok", (published,)


def _ago(hours: float | None) -> str:
    if hours is None:
        return "never"
    return f"{hours:.1f} h ago" if hours < 48 else f"{hours / 24:.0f} days ago"


def _days(age: dt.timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


def masked(text: str | None, limit: int = 400) -> str | None:
    """An error message without the values it quotes, cut to ``limit`` characters."""
    if text is None:
        return None
    text = reason_kind(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- rendering ---------------------------------------------------------------------------------

CSS = f"""
:root {{ color-scheme: light; }}
body {{ font: 14px/1.45 {FONTS}; color: #1d2430; background: #f6f7f9; margin: 0; }}
header, main {{ max-width: 1240px; margin: 0 auto; padding: 0 20px; }}
header {{ padding-top: 18px; }}
h1 {{ font-size: 24px; margin: 0 0 4px; }}
h2 {{ font-size: 17px; margin: 0 0 6px; display: flex; gap: 10px; align-items: center; }}
h3 {{ font-size: 14px; margin: 14px 0 4px; }}
p.meta, .why, .rules {{ color: #5b6472; font-size: 13px; margin: 0 0 10px; }}
.why {{ margin: 4px 0 0; }}
section {{ background: #fff; border: 1px solid #dde1e6; border-radius: 8px;
          padding: 14px 18px; margin: 14px 0; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
th, td {{ text-align: left; padding: 5px 8px; border-bottom: 1px solid #e6e9ed;
          vertical-align: top; }}
th {{ color: #4a5361; font-weight: 600; }}
th.n, td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.badge {{ display: inline-block; color: #fff; font-weight: 600; font-size: 12px;
          border-radius: 10px; padding: 1px 9px; white-space: nowrap; }}
code {{ background: #eef1f4; padding: 1px 5px; border-radius: 4px; font-size: 12px;
        word-break: break-all; }}
td[data-col="feed"] code {{ white-space: nowrap; word-break: normal; }}
a {{ color: #2f6db5; }}
svg {{ display: block; }}
.error {{ color: #8a1c1c; font-size: 12px; }}
"""


def render(now: dt.datetime, feeds: Sequence[FeedQuality]) -> str:
    """The page: a row per feed, then each feed's last load in detail."""
    rows = "\n".join(_feed_row(f) for f in feeds)
    sections = "\n".join(_feed_section(f) for f in feeds)
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        "<title>civicflow data quality</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<header>\n<h1>Data quality</h1>\n"
        f'<p class="meta">As of {_local(now)} (Asia/Shanghai), from meta.load_audit, '
        "meta.dq_result, quarantine.rejected_row and marts.feed_health. Counts and reasons "
        "only, never a value from a record. "
        '<a href="data-docs/">Great Expectations Data Docs</a> · '
        '<a href="api/feeds">the same as JSON</a></p>\n'
        "</header>\n<main>\n"
        '<section>\n<h2>Feeds</h2>\n<table data-table="feeds">\n<thead><tr>'
        "<th>Feed</th><th>Status</th><th>Last load</th>"
        '<th class="n">Source</th><th class="n">Accepted</th><th class="n">Quarantined</th>'
        f'<th class="n">Duplicates</th><th>Rows quarantined, last {TREND_LOADS} loads</th>'
        f"</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n"
        f'<p class="rules">{_e(_rules())}</p>\n</section>\n'
        f"{sections}\n</main>\n</body>\n</html>\n"
    )


def _rules() -> str:
    hours = LOAD_STALE_AFTER.total_seconds() / 3600
    data = "; ".join(
        f"{feed.replace('_', ' ')} {_days(c.newest_within)} ({c.publishes})"
        for feed, c in CADENCE.items()
    )
    return (
        "failing: no batch of the feed was ever published, or an entity's newest batch failed "
        f"or was rejected. stale: nothing published for {hours:.0f} h (each ingest DAG runs "
        f"daily), or the newest data the feed delivered is older than: {data}."
    )


def _feed_row(f: FeedQuality) -> str:
    load = f.last_load
    if load is None:
        last = '<span class="why">none</span>'
        counts = "".join(f'<td class="n" data-col="{_col(c)}">–</td>' for c in _COUNTS)
    else:
        last = (
            f'<span data-col="at">{_local(load.at)}</span><br>'
            f'<span data-col="load-status">{_e(load.status)}</span><br>'
            f'<code data-col="run">{_e(load.run_id or "outside Airflow")}</code>'
        )
        counts = "".join(
            f'<td class="n" data-col="{_col(c)}">{load.total(c):,}</td>' for c in _COUNTS
        )
    why = "<br>".join(_e(w) for w in f.why)
    return (
        f'<tr data-feed="{_e(f.feed)}" data-status="{_e(f.status)}">'
        f'<td data-col="feed"><a href="#feed-{_e(f.feed)}">{_e(f.title)}</a><br>'
        f"<code>{_e(f.dag_id)}</code></td>"
        f'<td data-col="status">{_badge(f.status)}<div class="why">{why}</div></td>'
        f'<td data-col="last-load">{last}</td>{counts}'
        f'<td data-col="trend">{sparkline(f)}</td></tr>'
    )


def _feed_section(f: FeedQuality) -> str:
    parts = [
        f'<section id="feed-{_e(f.feed)}" data-feed-detail="{_e(f.feed)}">',
        f"<h2>{_e(f.title)} {_badge(f.status)}</h2>",
        f'<p class="meta">{_e(_freshness(f))}</p>',
    ]
    load = f.last_load
    if load is None:
        parts.append(f'<p class="meta">No batch yet: trigger <code>{_e(f.dag_id)}</code>.</p>')
        return "\n".join([*parts, "</section>"])
    parts.append(
        f"<h3>Last load: {_e(load.status)}, {_local(load.at)}, run "
        f"<code>{_e(load.run_id or 'outside Airflow')}</code></h3>"
    )
    body = []
    for b in load.batches:
        expectations = (
            "–" if b.expectations is None else f"{b.expectations_failed} of {b.expectations}"
        )
        docs = (
            f'<a href="data-docs/{_e(b.data_docs)}">validated {_local(b.validated_at)}</a>'
            if b.data_docs
            else "–"
        )
        body.append(
            f'<tr data-entity="{_e(b.entity)}"><td>{_e(b.entity)}</td><td>{_e(b.status)}</td>'
            f"<td>{_local(b.finished_at or b.started_at)}</td>"
            + "".join(f'<td class="n">{getattr(b, c):,}</td>' for c in _COUNTS)
            + f'<td class="n">{expectations}</td><td data-col="data-docs">{docs}</td></tr>'
        )
        if b.error:
            body.append(f'<tr><td></td><td colspan="8" class="error">{_e(b.error)}</td></tr>')
    parts.append(
        '<table data-table="batches"><thead><tr><th>Entity</th><th>Batch</th><th>At</th>'
        '<th class="n">Source</th><th class="n">Accepted</th><th class="n">Quarantined</th>'
        '<th class="n">Duplicates</th><th class="n">Expectations failed</th>'
        "<th>Data Docs</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>"
    )
    parts.append("<h3>Quarantined rows by reason (a row may have several)</h3>")
    if f.reasons:
        parts.append(
            '<table data-table="reasons"><thead><tr><th>Entity</th><th>Reason</th>'
            '<th class="n">Rows</th></tr></thead><tbody>'
            + "".join(
                f'<tr><td>{_e(entity)}</td><td>{_e(reason)}</td><td class="n">{rows:,}</td></tr>'
                for entity, reason, rows in f.reasons
            )
            + "</tbody></table>"
        )
    else:
        parts.append('<p class="meta">None in the last load.</p>')
    return "\n".join([*parts, "</section>"])


def _freshness(f: FeedQuality) -> str:
    hours = LOAD_STALE_AFTER.total_seconds() / 3600
    if f.newest_data is None:
        newest = "no watermark or snapshot committed yet"
    elif len(f.newest_data.strip()) == 10:  # a day: a snapshot's or a tally's date
        newest = f"newest data of {f.newest_data.strip()}"
    else:
        newest = f"newest data of {_local(f.newest_data_at)}"
    return (
        f"{f.dag_id} runs daily: stale {hours:.0f} h after its last published batch "
        f"(last: {_local(f.last_success_at) if f.last_success_at else 'never'}). "
        f"The department sends {f.cadence.publishes}: stale when the newest data is older "
        f"than {_days(f.cadence.newest_within)}; {newest}."
    )


def sparkline(f: FeedQuality, width: int = 170, height: int = 40) -> str:
    """Each load's share of quarantined rows, oldest to newest, and the feed's threshold."""
    points = [(load, rate) for load in f.trend if (rate := load.rejection_rate) is not None]
    if not points:
        return '<span class="why">no rows loaded yet</span>'
    pad = 5
    top = max(max(rate for _, rate in points), f.max_rejection_rate) * 1.1

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / (len(points) - 1) if len(points) > 1 else 0.5)

    def y(rate: float) -> float:
        return height - pad - (height - 2 * pad) * rate / top

    ty = y(f.max_rejection_rate)
    marks = [
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#d5dae0"/>',
        f'<line x1="{pad}" y1="{ty:.1f}" x2="{width - pad}" y2="{ty:.1f}" stroke="#c62828" '
        'stroke-dasharray="3 3" stroke-width="1"/>',
    ]
    if len(points) > 1:
        path = " ".join(f"{x(i):.1f},{y(rate):.1f}" for i, (_, rate) in enumerate(points))
        marks.append(f'<polyline points="{path}" fill="none" stroke="#2f6db5" stroke-width="1.5"/>')
    for i, (load, rate) in enumerate(points):
        colour = STATUS_COLOURS["failing"] if rate > f.max_rejection_rate else "#2f6db5"
        tip = (
            f"{_local(load.at)}: {rate:.1%} quarantined "
            f"({load.total('quarantined_rows'):,} of {load.total('source_rows'):,} rows)"
        )
        marks.append(
            f'<circle cx="{x(i):.1f}" cy="{y(rate):.1f}" r="3" fill="{colour}">'
            f"<title>{_e(tip)}</title></circle>"
        )
    last = points[-1][1]
    label = (
        f"{f.title}: quarantined share of the last {len(points)} loads, newest {last:.1%}; "
        f"a batch is refused above {f.max_rejection_rate:.0%}"
    )
    return (
        f'<svg data-chart="trend-{_e(f.feed)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">'
        f"<title>{_e(label)}</title>{''.join(marks)}</svg>"
        f'<span class="why">newest {last:.1%}</span>'
    )


def _badge(status: str, label: str | None = None) -> str:
    colour = STATUS_COLOURS.get(status, NEUTRAL)
    return (
        f'<span class="badge" data-badge="{_e(status)}" style="background:{colour}">'
        f"{_e(label or status)}</span>"
    )


def _col(column: str) -> str:
    return column.removesuffix("_rows").replace("_", "-").replace("duplicate", "duplicates")


def _local(at: dt.datetime | None) -> str:
    return "–" if at is None else f"{at.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_error(message: str, hint: str) -> str:
    """A page saying why there is nothing to show, and what to check."""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n'
        f"<title>civicflow data quality</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header>\n<h1>Data quality</h1>\n<p class="error">{_e(message)}</p>\n'
        f'<p class="meta">{_e(hint)}</p>\n</header>\n</body>\n</html>\n'
    )


def render_docs_index(results: Sequence[KeptResult], suites: Sequence[str]) -> str:
    """The Data Docs' index: GX draws its own with scripts from CDNs; this one needs none."""
    rows = []
    for r in results:
        success, held, evaluated = r.outcome()
        verdict = _badge("ok" if success else "failing", "passed" if success else "failed")
        rows.append(
            f'<tr data-suite="{_e(r.suite)}"><td>{_local(r.run_time)}</td>'
            f"<td>{_e(r.suite)}</td><td><code>{_e(r.load_id or '–')}</code></td>"
            f"<td>{verdict} {held} of {evaluated} expectations held</td>"
            f'<td><a href="{_e(r.page)}">validation result</a></td></tr>'
        )
    suite_links = " · ".join(
        f'<a href="expectations/{_e(s.replace(".", "/"))}.html">{_e(s)}</a>' for s in suites
    )
    body = (
        '<table data-table="validation-results"><thead><tr><th>Validated</th><th>Suite</th>'
        "<th>Load</th><th>Result</th><th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else '<p class="meta">No validation result kept yet: results are kept by every '
        "validate task from now on.</p>"
    )
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<link rel="icon" href="data:,">\n'
        "<title>civicflow Data Docs</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<header>\n"
        "<h1>Great Expectations Data Docs</h1>\n"
        '<p class="meta">The validation results of the newest batches, newest first, as '
        "Great Expectations rendered them (counts and shares only: no row's values are kept). "
        '<a href="../data-quality">Back to Data quality</a></p>\n'
        f"</header>\n<main>\n<section>\n<h2>Validation results</h2>\n{body}\n</section>\n"
        f"<section>\n<h2>Expectation suites</h2>\n<p>{suite_links}</p>\n</section>\n"
        "</main>\n</body>\n</html>\n"
    )
