"""The analysts' report: one self-contained HTML page drawn from the marts after each refresh.

Charts are inline SVG drawn here, with no JavaScript, fonts or styles fetched, so the file
opens anywhere, offline, and can be mailed as it is. It shows counts and rates only: it
reads ``marts.*`` and the street and community names of ``core``, never a ``person_key``.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

FILENAME = "warehouse-report.html"
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
WIDTH = 760  # every chart's width in CSS pixels
LEVELS = {  # position levels in the order the district is organised, with their legends
    "district": "district centre",
    "street": "street centres",
    "community": "community stations",
    "public_space": "public spaces",
}
PALETTE = ("#2f6db5", "#e07b39", "#3f9a5a", "#9b4f96", "#7a7a7a", "#c9a227")
LOW = "#d1495b"  # the ten communities of the table, in the coverage chart too
FONTS = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", '
    '"Source Han Sans SC", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", '
    '"WenQuanYi Zen Hei", "DejaVu Sans", sans-serif'
)
STATUS_COLOURS = {"ok": "#2e7d32", "stale": "#b26a00", "failing": "#c62828"}

_COVERAGE = """
select c.street_code, coalesce(s.street_name, c.street_code), c.community_code,
       coalesce(m.community_name, c.community_code), c.elderly_registered, c.elderly_served_any,
       c.coverage_rate
from marts.elderly_coverage c
left join core.dim_street s on s.street_code = c.street_code
left join core.dim_community m on m.community_code = c.community_code
where c.month = %s
order by c.street_code, c.community_code
"""
_COVERAGE_MONTH = "select max(month) from marts.elderly_coverage where elderly_registered > 0"
_COVERAGE_TREND = """
select month, sum(elderly_registered), sum(elderly_served_any)
from marts.elderly_coverage
group by month
order by month
"""
_UNREACHED = "select count(*) from marts.unreached_vulnerable"
_POSITIONS = """
select month, level, sum(activities), sum(visitors)
from marts.position_monthly
group by month, level
order by month, level
"""
_VOLUNTEER_HOURS = """
select v.street_code, coalesce(s.street_name, v.street_code), sum(v.hours),
       min(v.month), max(v.month)
from marts.volunteer_monthly v
left join core.dim_street s using (street_code)
group by 1, 2
order by 3 desc, 1
"""
_FEED_HEALTH = """
select feed, status, rows_last_load, quarantined_last_load, quarantine_rate, hours_since_success
from marts.feed_health
order by feed
"""
_ANY_ROWS = """
select exists (select 1 from marts.elderly_coverage)
    or exists (select 1 from marts.position_monthly)
    or exists (select 1 from marts.volunteer_monthly)
    or exists (select 1 from marts.unreached_vulnerable)
    or exists (select 1 from marts.feed_health)
"""

CSS = f"""
:root {{ color-scheme: light; }}
body {{ font: 15px/1.5 {FONTS}; color: #1d2430; background: #f6f7f9; margin: 0; }}
header, main {{ max-width: {WIDTH + 48}px; margin: 0 auto; padding: 0 24px; }}
header {{ padding-top: 24px; }}
h1 {{ font-size: 26px; margin: 0 0 4px; }}
h2 {{ font-size: 18px; margin: 0 0 2px; }}
p.meta, p.source {{ color: #5b6472; font-size: 13px; margin: 0 0 12px; }}
section {{ background: #fff; border: 1px solid #dde1e6; border-radius: 8px;
          padding: 16px 20px; margin: 16px 0; }}
svg {{ display: block; max-width: 100%; height: auto; font-family: {FONTS}; }}
svg text {{ fill: #333b47; font-size: 12px; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 16px; }}
.figure {{ flex: 1 1 150px; background: #f0f4fa; border-radius: 6px; padding: 10px 14px; }}
.figure .value {{ display: block; font-size: 26px; font-weight: 600; }}
.figure .label {{ font-size: 13px; color: #4a5361; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; margin-top: 12px; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #e6e9ed; }}
th.n, td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ background: #eef1f4; padding: 1px 5px; border-radius: 4px; }}
"""


@dataclass(frozen=True)
class Report:
    """The page, and the names of the charts drawn on it (``data-chart`` of each ``<svg>``)."""

    html: str
    charts: list[str] = field(default_factory=list)


def report_dir() -> Path:
    """Where the report is written: $CIVICFLOW_REPORT_DIR, else the local data folder's reports/."""
    configured = os.environ.get("CIVICFLOW_REPORT_DIR")
    if configured:
        return Path(configured)
    local = os.environ.get("CIVICFLOW_LOCAL_DIR")
    root = Path(local) if local else Path(__file__).resolve().parents[2] / ".local"
    return root / "reports"


def write(conn: psycopg.Connection, directory: Path) -> Path:
    """Build the report and replace ``directory/warehouse-report.html`` with it in one step.

    Readers (a browser, a mail job) see the old page or the new one, never half of one.
    """
    page = build(conn).html
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / FILENAME
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{FILENAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # counts and rates only: readable like the marts' other outputs
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def build(conn: psycopg.Connection) -> Report:
    """The report of what the marts hold now."""
    generated = dt.datetime.now(LOCAL_TZ)
    if not conn.execute(_ANY_ROWS).fetchone()[0]:
        return Report(html=_page(generated, [_empty_section()]), charts=[])
    sections: list[str] = []
    charts: list[str] = []
    for draw in (_coverage, _coverage_trend, _positions, _volunteer_hours, _feed_health):
        for section, chart in draw(conn):
            sections.append(section)
            if chart:
                charts.append(chart)
    return Report(html=_page(generated, sections), charts=charts)


# --- sections ----------------------------------------------------------------------------------

Section = tuple[str, str | None]  # the HTML, and the chart it draws (None: a note only)


def _coverage(conn: psycopg.Connection) -> Iterable[Section]:
    month = conn.execute(_COVERAGE_MONTH).fetchone()[0]
    title = "Elderly coverage by community"
    source = "marts.elderly_coverage, marts.unreached_vulnerable"
    if month is None:
        yield _section(title, source, _note("No registered elderly in any month yet.")), None
        return
    rows = conn.execute(_COVERAGE, (month,)).fetchall()
    unreached = conn.execute(_UNREACHED).fetchone()[0]
    registered = sum(r[4] for r in rows)
    served = sum(r[5] for r in rows)
    rate = served / registered
    figures = _figures(
        [
            ("registered", _count(registered), f"registered elderly (60+), {month:%b %Y}"),
            ("served", _count(served), "of them served at least once that month"),
            ("rate", _percent(rate), "district coverage"),
            ("unreached", _count(unreached), "vulnerable elderly on the outreach list"),
        ]
    )
    counted = [r for r in rows if r[4] > 0]
    lowest = sorted(counted, key=lambda r: (r[6], -r[4], r[2]))[:10]
    # Marked in the chart only when the table is a selection, not every community.
    chart = _coverage_dots(counted, {r[2] for r in lowest} if len(counted) > 10 else set(), rate)
    empty = len(rows) - len(counted)
    note = (
        _note(f"{empty} communities had no registered elderly in {month:%b %Y} and are not shown.")
        if empty
        else ""
    )
    table = _table(
        ["Community", "Street", "Registered", "Served", "Coverage"],
        [(r[3], r[1], _count(r[4]), _count(r[5]), _percent(r[6])) for r in lowest],
        numeric=(2, 3, 4),
        caption="The ten communities with the lowest coverage"
        if len(counted) > 10
        else "Every community, lowest coverage first",
    )
    body = (
        figures
        + _note(f"One dot per community, {month:%b %Y}; a row per street.")
        + chart
        + note
        + table
    )
    yield _section(title, source, body), "coverage"


def _coverage_trend(conn: psycopg.Connection) -> Iterable[Section]:
    rate = {
        month: Decimal(served) / registered
        for month, registered, served in conn.execute(_COVERAGE_TREND)
        if registered > 0
    }
    title = "District coverage by month"
    if not rate:
        yield _section(title, "marts.elderly_coverage", _note("No months to show yet.")), None
        return
    months = _months(min(rate), max(rate))
    chart = _line_chart(
        "coverage-trend",
        months,
        {"district coverage": [rate.get(m) for m in months]},
        percent=True,
        describe=lambda m, v: f"{m:%Y-%m}: {_percent(v)}",
    )
    body = _note("Registered elderly (60+) served at least once in the month.") + chart
    yield _section(title, "marts.elderly_coverage", body), "coverage-trend"


def _positions(conn: psycopg.Connection) -> Iterable[Section]:
    rows = conn.execute(_POSITIONS).fetchall()
    if not rows:
        note = _note("No position tallies yet.")
        yield _section("Activities held", "marts.position_monthly", note), None
        return
    months = _months(min(r[0] for r in rows), max(r[0] for r in rows))
    order = {level: i for i, level in enumerate(LEVELS)}
    levels = sorted({r[1] for r in rows}, key=lambda level: (order.get(level, len(order)), level))
    for chart, column, title, unit in (
        ("activities", 2, "Activities held by position level", "activities"),
        ("visitors", 3, "Visitors by position level", "visitors"),
    ):
        values = {(r[0], r[1]): r[column] for r in rows}
        series = {
            LEVELS.get(level, level): [values.get((m, level), 0) for m in months]
            for level in levels
        }
        svg = _line_chart(
            chart, months, series, describe=lambda m, v, u=unit: f"{m:%Y-%m}: {_count(v)} {u}"
        )
        body = _note("Sum of the positions' daily tallies, by month.") + svg
        yield _section(title, "marts.position_monthly", body), chart


def _volunteer_hours(conn: psycopg.Connection) -> Iterable[Section]:
    rows = conn.execute(_VOLUNTEER_HOURS).fetchall()
    title = "Confirmed volunteer hours by street"
    if not rows:
        note = _note("No volunteer hours yet.")
        yield _section(title, "marts.volunteer_monthly", note), None
        return
    first, last = min(r[3] for r in rows), max(r[4] for r in rows)
    period = f"{first:%b %Y}" if first == last else f"{first:%b %Y} to {last:%b %Y}"
    chart = _bars(
        "volunteer-hours",
        [(name, hours) for _, name, hours, _, _ in rows],
        unit="h",
        fmt=_hours,
    )
    body = _note(f"Where the activity took place, {period}; revoked hours never count.")
    yield _section(title, "marts.volunteer_monthly", body + chart), "volunteer-hours"


def _feed_health(conn: psycopg.Connection) -> Iterable[Section]:
    rows = conn.execute(_FEED_HEALTH).fetchall()
    title = "Feed health"
    if not rows:
        note = _note("No batch has been loaded yet.")
        yield _section(title, "marts.feed_health", note), None
        return
    body = _note(
        "Status: failing when a feed's newest batch failed or was rejected, stale after "
        "26 hours without a success. The bar is the share of the last good load quarantined."
    )
    yield _section(title, "marts.feed_health", body + _feed_rows(rows)), "feed-health"


def _empty_section() -> str:
    body = (
        "<p>The warehouse's marts hold no rows yet, so there is nothing to chart.</p>"
        "<p>Load the feeds first: <code>make demo</code> runs every ingest DAG once against the "
        "feed simulator and refreshes the marts; in Airflow, each ingest DAG's merge triggers "
        "<code>warehouse_marts</code>, which refreshes the marts and rewrites this report. "
        "<code>make report</code> writes it again at any time.</p>"
    )
    return _section("Nothing loaded yet", "marts.*", body)


# --- charts ------------------------------------------------------------------------------------


def _coverage_dots(rows: Sequence[tuple], low: set[str], district_rate: float) -> str:
    streets: dict[str, tuple[str, list[tuple]]] = {}
    for row in rows:
        streets.setdefault(row[0], (row[1], []))[1].append(row)
    left, right, top, row_h = 130, 24, 52, 26
    plot = WIDTH - left - right
    height = top + row_h * len(streets) + 44

    def x(rate: float) -> float:
        return left + float(rate) * plot

    marks = []
    for tick in (0, 0.25, 0.5, 0.75, 1):
        marks.append(_line(x(tick), top - 6, x(tick), height - 36, "#e3e6ea"))
        marks.append(_text(x(tick), height - 20, _percent(tick), anchor="middle"))
    marks.append(_text(left + plot / 2, height - 4, "coverage", anchor="middle", cls="axis"))
    xd = x(district_rate)
    marks.append(_line(xd, top - 6, xd, height - 36, "#5b6472", dash="4 3"))
    anchor = "end" if district_rate > 0.7 else "start"
    label_x = xd - 4 if anchor == "end" else xd + 4
    marks.append(_text(label_x, top - 10, f"district {_percent(district_rate)}", anchor=anchor))
    dots = []  # drawn after the rows' bands, the ten lowest last so that they stay on top
    for i, (name, communities) in enumerate(streets.values()):
        y = top + row_h * i + row_h / 2
        if i % 2 == 0:
            marks.append(_rect(left, y - row_h / 2, plot, row_h, "#f5f7fa"))
        marks.append(_text(left - 10, y + 4, name, anchor="end"))
        same: dict[int, int] = {}  # dots at (nearly) the same place spread up and down the row
        for row in sorted(communities, key=lambda r: (r[6], r[2] in low, r[2])):
            cx = x(row[6])
            k = same[round(cx / 4)] = same.get(round(cx / 4), -1) + 1
            dy = (0, -6, 6, -3, 3, -9, 9)[k % 7]
            colour = LOW if row[2] in low else PALETTE[0]
            tip = f"{row[3]}: {_percent(row[6])} of {_count(row[4])}"
            dots.append(
                (
                    row[2] in low,
                    f'<circle cx="{cx:.1f}" cy="{y + dy:.1f}" r="5.5" fill="{colour}" '
                    f'fill-opacity="0.8" stroke="#fff" stroke-width="1">'
                    f"<title>{_e(tip)}</title></circle>",
                )
            )
    marks += [dot for _, dot in sorted(dots, key=lambda d: d[0])]
    keys = [("community", PALETTE[0])] + ([("ten lowest (table below)", LOW)] if low else [])
    legend = _legend(keys, left)
    return _svg("coverage", height, [*marks, legend], "Elderly coverage by community")


def _line_chart(
    name: str,
    months: Sequence[dt.date],
    series: dict[str, Sequence[float | Decimal | None]],
    *,
    percent: bool = False,
    describe: Callable[[dt.date, float | Decimal], str],
) -> str:
    left, right, top, bottom, height = 64, 36, 40, 40, 280
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    if percent:
        top_value, step = 1.0, 0.25
    else:
        values = (float(v) for s in series.values() for v in s if v is not None)
        top_value, step = _scale(max(values, default=0))
    n = len(months)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(value: float | Decimal) -> float:
        return top + plot_h - float(value) / top_value * plot_h

    marks = []
    for k in range(round(top_value / step) + 1):
        tick = k * step
        marks.append(_line(left, y(tick), left + plot_w, y(tick), "#e3e6ea"))
        label = _percent(tick) if percent else _count(tick)
        marks.append(_text(left - 8, y(tick) + 4, label, anchor="end"))
    every = max(1, math.ceil(n * 60 / plot_w))  # a month label is ~50 px wide
    for i, month in enumerate(months):
        if (n - 1 - i) % every == 0:  # the newest month is always labelled
            marks.append(_text(x(i), height - bottom + 18, f"{month:%Y-%m}", anchor="middle"))
    colours = {}
    lines, points = [], []  # every series' line under every series' points
    for k, (label, values) in enumerate(series.items()):
        colour = colours[label] = PALETTE[k % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]  # a month without a value breaks the line
        for i, (month, value) in enumerate(zip(months, values, strict=True)):
            if value is None:
                runs.append([])
                continue
            runs[-1].append((x(i), y(value)))
            points.append(
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="{colour}">'
                f"<title>{_e(label)}, {_e(describe(month, value))}</title></circle>"
            )
        for run in (r for r in runs if len(r) > 1):
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            lines.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
                'stroke-linejoin="round"/>'
            )
    marks += lines + points
    marks.append(_legend(list(colours.items()), left))
    return _svg(name, height, marks, name)


def _bars(
    name: str, rows: Sequence[tuple[str, Decimal]], *, unit: str, fmt: Callable[[Decimal], str]
) -> str:
    left, right, top, row_h, bar_h = 130, 80, 12, 26, 16
    plot = WIDTH - left - right
    height = top + row_h * len(rows) + 40
    top_value, step = _scale(max(float(v) for _, v in rows), integer=False)

    def x(value: float | Decimal) -> float:
        return left + float(value) / top_value * plot

    marks = []
    for k in range(round(top_value / step) + 1):
        tick = k * step
        marks.append(_line(x(tick), top - 4, x(tick), height - 36, "#e3e6ea"))
        marks.append(_text(x(tick), height - 20, _number(tick), anchor="middle"))
    marks.append(_text(left + plot / 2, height - 4, f"hours ({unit})", anchor="middle"))
    for i, (label, value) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        width = x(value) - left
        marks.append(_text(left - 10, y + 4, label, anchor="end"))
        marks.append(
            f'<rect x="{left}" y="{y - bar_h / 2:.1f}" width="{width:.1f}" height="{bar_h}" '
            f'fill="{PALETTE[0]}" rx="2"><title>{_e(label)}: {_e(fmt(value))} {_e(unit)}</title>'
            "</rect>"
        )
        marks.append(_text(left + width + 6, y + 4, f"{fmt(value)} {unit}"))
    return _svg(name, height, marks, name)


def _feed_rows(rows: Sequence[tuple]) -> str:
    top, row_h = 30, 30
    bar_x, bar_w = 200, 220
    height = top + row_h * len(rows) + 8
    worst = max((float(r[4]) for r in rows if r[4] is not None), default=0)
    scale = next(s for s in (0.05, 0.1, 0.2, 0.5, 1.0) if worst <= s)
    marks = [
        _text(0, 16, "feed", cls="head"),
        _text(110, 16, "status", cls="head"),
        _text(bar_x, 16, f"quarantined, last good load (bar: 0–{_percent(scale)})", cls="head"),
        _text(600, 16, "rows", anchor="end", cls="head"),
        _text(WIDTH - 4, 16, "since success", anchor="end", cls="head"),
    ]
    for i, (feed, status, source_rows, _, rate, hours) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        colour = STATUS_COLOURS.get(status, PALETTE[4])
        marks.append(_line(0, y + row_h / 2, WIDTH, y + row_h / 2, "#eceff2"))
        marks.append(_text(0, y + 4, feed))
        marks.append(
            f'<g data-status="{_e(status)}">'
            f'<rect x="110" y="{y - 10:.1f}" width="70" height="20" rx="10" fill="{colour}">'
            f"<title>{_e(feed)}: {_e(status)}</title></rect>"
            f'<text x="145" y="{y + 4:.1f}" text-anchor="middle" class="badge">{_e(status)}</text>'
            "</g>"
        )
        share = float(rate) if rate is not None else 0.0
        marks.append(_rect(bar_x, y - 6, bar_w, 12, "#edf0f3"))
        marks.append(
            f'<rect x="{bar_x}" y="{y - 6:.1f}" width="{min(share / scale, 1) * bar_w:.1f}" '
            f'height="12" fill="{LOW if share > 0.05 else PALETTE[0]}">'
            f"<title>{_e(feed)}: {_e(_rate(rate))} quarantined</title></rect>"
        )
        marks.append(_text(bar_x + bar_w + 8, y + 4, _rate(rate)))
        marks.append(_text(600, y + 4, _count(source_rows or 0), anchor="end"))
        since = "never" if hours is None else f"{float(hours):.1f} h"
        marks.append(_text(WIDTH - 4, y + 4, since, anchor="end"))
    return _svg("feed-health", height, marks, "feed health")


# --- small pieces ------------------------------------------------------------------------------


def _page(generated: dt.datetime, sections: Sequence[str]) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        # Nothing on the page may load anything: the file must work offline and leak nothing.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        "<title>civicflow warehouse report</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<header>\n<h1>Warehouse report</h1>\n"
        f'<p class="meta">Generated {generated:%Y-%m-%d %H:%M} (Asia/Shanghai) from the '
        "warehouse's marts. Counts and rates only; no person is identified here.</p>\n"
        "</header>\n<main>\n" + "\n".join(sections) + "\n</main>\n</body>\n</html>\n"
    )


def _section(title: str, source: str, body: str) -> str:
    return (
        f"<section>\n<h2>{_e(title)}</h2>\n"
        f'<p class="source">From {_e(source)}</p>\n{body}\n</section>'
    )


def _note(text: str) -> str:
    return f'<p class="meta">{_e(text)}</p>'


def _figures(figures: Sequence[tuple[str, str, str]]) -> str:
    cells = "".join(
        f'<div class="figure" data-figure="{_e(key)}"><span class="value">{_e(value)}</span>'
        f'<span class="label">{_e(label)}</span></div>'
        for key, value, label in figures
    )
    return f'<div class="figures">{cells}</div>'


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int], caption: str
) -> str:
    def cell(tag: str, i: int, value: str) -> str:
        cls = ' class="n"' if i in numeric else ""
        return f"<{tag}{cls}>{_e(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        f'<table data-table="lowest-coverage"><caption class="meta">{_e(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _svg(name: str, height: float, marks: Sequence[str], label: str) -> str:
    return (
        f'<svg data-chart="{_e(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-label="{_e(label)}">\n'
        "<style>.head{font-weight:600} .axis{fill:#5b6472} .badge{fill:#fff;font-weight:600}"
        "</style>\n" + "\n".join(marks) + "\n</svg>"
    )


def _legend(items: Sequence[tuple[str, str]], left: float) -> str:
    parts, x = [], left
    for label, colour in items:
        parts.append(_rect(x, 6, 12, 12, colour))
        parts.append(_text(x + 17, 16, label))
        x += 17 + _text_width(label) + 20
    return '<g class="legend">' + "".join(parts) + "</g>"


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, dash: str = "") -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"{dashed}/>'
    )


def _rect(x: float, y: float, w: float, h: float, colour: str) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}"/>'


def _text(x: float, y: float, text: str, *, anchor: str = "start", cls: str = "") -> str:
    css = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{css}>{_e(text)}</text>'


def _text_width(text: str, size: float = 12) -> float:
    """A generous estimate: CJK characters are square, Latin ones about 0.6 em."""
    return sum(size if ord(ch) >= 0x2E80 else size * 0.6 for ch in text)


def _scale(largest: float, integer: bool = True) -> tuple[float, float]:
    """A round top for an axis from zero, and its step (four or five gridlines)."""
    if largest <= 0:
        return 1.0, 1.0
    raw = largest / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    return math.ceil(largest / step - 1e-9) * step, step


def _months(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every month from first to last (first days), so that a quiet month still has its place."""
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


def _e(value: object) -> str:
    return html.escape(str(value))


def _count(value: float | Decimal) -> str:
    return f"{int(value):,}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _hours(value: Decimal) -> str:
    return f"{float(value):,.1f}"


def _percent(value: float | Decimal) -> str:
    return f"{float(value):.0%}"


def _rate(value: Decimal | None) -> str:
    return "–" if value is None else f"{float(value):.1%}"
