"""The Data quality page's rules and rendering, without a warehouse: civicflow.dq."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from civicflow import dq
from civicflow.feeds import FEEDS
from civicflow.validation import offline_page

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def batch(entity="register", status="succeeded", source=100, quarantined=0, hours_ago=1.0):
    at = NOW - dt.timedelta(hours=hours_ago)
    return dq.Batch(entity, "00000000-0000-0000-0000-000000000001", status, at, at, source,
                    source - quarantined, quarantined, 0)  # fmt: skip


def load(*batches, run="scheduled__1"):
    return dq.Load(run, run, tuple(batches))


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("field 出生日期: not a date ('1942-13-05')", "field 出生日期: not a date"),
        ("field visitors: not an integer ('many')", "field visitors: not an integer"),
        ("field name: not a date ('aaaaaaaaaaaaaaaaaaaaaaaa...)", "field name: not a date"),
        ("unknown community '旧南海x' in street 440104001", "unknown community … in street …"),
        ("unknown position 'NO-SUCH'", "unknown position …"),
        ("日期 2026-10-05 is outside the ledger's month 2026-10",
         "日期 … is outside the ledger's month …"),
    ],
)  # fmt: skip
def test_reasons_lose_the_values_they_quote(reason, kind):
    assert dq.reason_kind(reason) == kind


@pytest.mark.parametrize(
    "reason",
    [
        "出生日期 differs from the ID number's birth date",
        "failed expect_column_values_to_match_regex(phone)",
        "invalid ID number check digit",
    ],
)
def test_reasons_without_values_stay_as_they_are(reason):
    assert dq.reason_kind(reason) == reason


def test_an_error_is_masked_and_cut():
    error = "8 of 100 rows failed. Most common reasons: unknown community '旧南海x' ×2"
    assert dq.masked(error) == "8 of 100 rows failed. Most common reasons: unknown community … ×2"
    assert len(dq.masked("x" * 1000)) == 400 and dq.masked(None) is None


def test_a_watermark_tells_when_its_data_ends():
    shanghai = dq.LOCAL_TZ
    assert dq.data_time("2026-11-26") == dt.datetime(2026, 11, 27, tzinfo=shanghai)
    assert dq.data_time("2026-11-26 02:00:00+00") == dt.datetime(2026, 11, 26, 2, tzinfo=dt.UTC)
    assert dq.data_time("2026-11-26T10:00:00+08:00") == dt.datetime(2026, 11, 26, 2, tzinfo=dt.UTC)
    assert dq.data_time("residents_20261126.csv") is None


def test_every_feed_has_a_cadence():
    assert set(dq.CADENCE) == set(FEEDS)


def judge(feed="health", health="ok", hours=1.0, last=None, newest=NOW):
    return dq.judge(
        feed,
        health_status=health,
        hours_since_success=hours,
        last_load=last if last is not None else load(batch()),
        newest_data_at=newest,
        now=NOW,
    )


def test_a_feed_never_loaded():
    status, why = dq.judge(
        "volunteer",
        health_status=None,
        hours_since_success=None,
        last_load=None,
        newest_data_at=None,
        now=NOW,
    )
    assert status == "never loaded" and "volunteer_ingest" in why[0]


def test_a_feed_fails_when_its_newest_batch_did_or_none_was_ever_published():
    rejected = load(batch("service_records", "rejected", 100, 8))
    assert judge(health="failing", last=rejected) == (
        "failing",
        ("service_records: the newest batch was rejected (too many rows quarantined)",),
    )
    failed = load(batch("service_records", "failed", 0))
    assert judge(health=None, hours=None, last=failed)[1] == (
        "service_records: the newest batch failed",
    )
    assert judge(health="failing", hours=None) == ("failing", ("no batch has been published yet",))


def test_a_feed_goes_stale_by_its_loads_or_by_its_data():
    assert judge(health="stale", hours=30.0) == (
        "stale",
        ("published 30.0 h ago; health_ingest runs daily, stale after 26 h",),
    )
    status, why = judge("elderly_care", newest=NOW - dt.timedelta(days=45))
    assert status == "stale" and "newest data 45 days old" in why[1] and "41 days" in why[1]
    assert judge("elderly_care", newest=NOW - dt.timedelta(days=20))[0] == "ok"
    assert judge("civil_affairs", newest=NOW - dt.timedelta(days=3))[0] == "stale"
    assert judge("civil_affairs", newest=NOW - dt.timedelta(hours=30)) == (
        "ok",
        ("published 1.0 h ago", "newest data 30 h old"),
    )
    assert judge(newest=None) == ("ok", ("published 1.0 h ago",))


def test_a_load_is_as_bad_as_its_worst_batch():
    assert load(batch(), batch("a", "rejected")).status == "rejected"
    assert load(batch("a", "failed"), batch("b", "rejected")).status == "failed"
    assert load(batch(), batch("b", "validated")).status == "running"
    two = load(batch(source=100, quarantined=5), batch("b", source=300, quarantined=15))
    assert two.status == "succeeded" and two.rejection_rate == 0.05
    assert load(batch(source=0)).rejection_rate is None


def quality(feed="health", trend=(), status="ok", reasons=()):
    return dq.FeedQuality(
        feed=feed,
        title=feed.capitalize(),
        dag_id=f"{feed}_ingest",
        status=status,
        why=("published 1.0 h ago",),
        cadence=dq.CADENCE[feed],
        last_load=trend[-1] if trend else None,
        trend=tuple(trend),
        reasons=tuple(reasons),
    )


def test_the_trend_marks_every_load_with_rows_and_the_threshold():
    trend = [
        load(batch(source=100, quarantined=q, hours_ago=48 - i)) for i, q in enumerate((2, 4, 8))
    ]
    trend.insert(1, load(batch(source=0)))  # nothing fetched: not a point
    svg = dq.sparkline(quality(trend=trend))
    points = re.findall(r"<circle [^>]*fill=\"([^\"]+)\"><title>([^<]+)</title>", svg)
    assert [title.split(": ", 1)[1] for _, title in points] == [
        "2.0% quarantined (2 of 100 rows)",
        "4.0% quarantined (4 of 100 rows)",
        "8.0% quarantined (8 of 100 rows)",
    ]
    assert [fill for fill, _ in points][-1] == dq.STATUS_COLOURS["failing"]  # above 5 %
    assert svg.count("<polyline") == 1 and 'stroke-dasharray="3 3"' in svg
    assert "newest 8.0%" in svg
    assert "<svg" not in dq.sparkline(quality())


def test_the_page_shows_every_feed_escaped_with_relative_links_and_no_script():
    trend = [load(batch("register", source=10, quarantined=1))]
    feeds = [quality(f, trend if f == "civil_affairs" else (), "never loaded") for f in FEEDS]
    feeds[1] = quality("civil_affairs", trend, "ok", [("register", "<script>x</script>", 1)])
    page = dq.render(NOW, feeds)
    assert re.findall(r'data-feed="([^"]+)"', page) == list(FEEDS)
    assert "<script" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert links and all(not link.startswith(("/", "http")) for link in links), links
    assert 'href="data-docs/"' in page and 'href="api/feeds"' in page
    assert json.loads(json.dumps([f.as_dict() for f in feeds]))[1]["reasons"] == [
        {"entity": "register", "reason": "<script>x</script>", "rows": 1}
    ]


def test_data_docs_pages_load_nothing_from_elsewhere():
    page = (
        '<html><head><link rel="stylesheet" href="https://cdn.example/bootstrap.css"/>'
        '<link rel="icon" href="../static/images/favicon.ico">'
        '<script src="https://code.jquery.com/jquery.js"></script></head><body>'
        '<img class="NO-CACHE" src="https://great-expectations-web-assets.s3.amazonaws.com/'
        'logo-long.png?d=1&dataContextId=abc" alt="Great Expectations"/>'
        "<script>$('#t').bootstrapTable({});</script><table></table>"
        "<footer><p>newsletter</p></footer></body></html>"
    )
    offline = offline_page(page, "../../")
    assert "https://" not in offline and "<script" not in offline and "<footer" not in offline
    assert 'src="../../static/images/logo-long.png"' in offline
    assert 'href="../static/images/favicon.ico"' in offline
    assert "<style>" in offline and "<table></table>" in offline
