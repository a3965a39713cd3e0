"""The analysts' report, opened in a real browser: Debian's chromium driven by Playwright.

The expected numbers are worked out from the hand-made district of ``small_district``,
not queried the way the report queries. No browser is downloaded: ``make browser``
installs chromium from Debian, and a missing one fails these tests, loudly.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from civicflow import report
from civicflow.pipeline import open_warehouse

from . import small_district

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ["coverage", "coverage-trend", "activities", "visitors", "volunteer-hours", "feed-health"]
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A data mark: a drawn shape of non-zero size that carries its value in a <title>.
DATA_MARKS = """svg => [...svg.querySelectorAll('circle, rect, path, polyline')]
    .filter(e => e.querySelector(':scope > title'))
    .filter(e => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0; })
    .length"""


def chromium() -> str:
    path = os.environ.get("CIVICFLOW_CHROMIUM") or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            f"no chromium for the browser tests (CIVICFLOW_CHROMIUM={path!r}, none on PATH): "
            "run `make browser`",
            pytrace=False,
        )
    return path


@dataclass
class Seen:
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def opened(path: Path) -> Iterator[tuple[object, Seen]]:
    """The file in headless chromium, with every request the page made and every error."""
    from playwright.sync_api import sync_playwright

    seen = Seen()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(300_000)  # a loaded shared machine renders slowly
            page.on("request", lambda request: seen.requests.append(request.url))
            page.on("pageerror", lambda error: seen.errors.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: (
                    message.type in ("error", "warning")
                    and seen.errors.append(f"console {message.type}: {message.text}")
                ),
            )
            page.goto(path.as_uri(), wait_until="load")
            yield page, seen
        finally:
            browser.close()


def add_feed_batches(url: str) -> None:
    """Two feeds' batches: health's newest succeeded (5 of 100 quarantined), volunteer's failed."""
    with psycopg.connect(url, autocommit=True) as conn:
        for feed, entity, status, ago, source, accepted, quarantined in (
            ("health", "service_records", "succeeded", "1 hour", 100, 95, 5),
            ("volunteer", "volunteers", "succeeded", "3 hours", 10, 10, 0),
            ("volunteer", "volunteers", "rejected", "2 hours", 10, 7, 3),
        ):
            conn.execute(
                "insert into meta.load_audit (load_id, feed, entity, status, started_at, "
                "finished_at, source_rows, accepted_rows, quarantined_rows) values "
                "(%s, %s, %s, %s, now() - %s::interval, now() - %s::interval, %s, %s, %s)",
                (uuid.uuid4(), feed, entity, status, ago, ago, source, accepted, quarantined),
            )


def titles(page, selector: str) -> list[str]:
    return sorted(page.locator(f"{selector} > title").all_text_contents())


def test_the_report_draws_every_chart_offline_in_a_browser(district, tmp_path):
    add_feed_batches(district)
    with open_warehouse(district) as conn:
        path = report.write(conn, tmp_path)
        path = report.write(conn, tmp_path)  # replaced in one step, no temporary file left
    assert path == tmp_path / "warehouse-report.html" and list(tmp_path.iterdir()) == [path]

    with opened(path) as (page, seen):
        for name in CHARTS:
            chart = page.locator(f'svg[data-chart="{name}"]')
            assert chart.count() == 1, name
            assert chart.bounding_box()["width"] > 200, name
            assert chart.evaluate(DATA_MARKS) > 0, f"{name} draws no marks"

        # October is the newest month with registered elderly: in 一社区 A, B and D (A ate at
        # a canteen; B's check-up was cancelled), in 二社区 G, who moved there on 15 October.
        assert titles(page, '[data-chart="coverage"] circle') == [
            "一社区: 33% of 3",
            "二社区: 0% of 1",
        ]
        figures = {
            key: page.locator(f'[data-figure="{key}"] .value').inner_text()
            for key in ("registered", "served", "rate", "unreached")
        }
        assert figures == {"registered": "4", "served": "1", "rate": "25%", "unreached": "1"}
        lowest = page.locator('table[data-table="lowest-coverage"] tbody tr')
        assert [r.split("\t") for r in lowest.all_inner_texts()] == [
            ["二社区", "北京街道", "1", "0", "0%"],
            ["一社区", "北京街道", "3", "1", "33%"],
        ]
        # September: G (then in 一社区) was helped by a volunteer, 1 of 1.
        assert titles(page, '[data-chart="coverage-trend"] circle') == [
            "district coverage, 2026-09: 100%",
            "district coverage, 2026-10: 25%",
        ]
        assert page.locator('[data-chart="coverage-trend"] polyline').count() == 1
        # P1, a community station, tallied 1 activity and 10 + 20 visitors in October.
        assert titles(page, '[data-chart="activities"] circle') == [
            "community stations, 2026-10: 1 activities"
        ]
        assert titles(page, '[data-chart="visitors"] circle') == [
            "community stations, 2026-10: 30 visitors"
        ]
        # 2.5 + 1.5 confirmed hours; H3 was revoked and H4's activity cancelled.
        bars = page.locator('[data-chart="volunteer-hours"] rect:has(> title)')
        assert titles(page, '[data-chart="volunteer-hours"] rect') == ["北京街道: 4.0 h"]
        assert bars.bounding_box()["width"] > 200  # the longest bar spans the axis
        assert titles(page, '[data-chart="feed-health"] g[data-status] rect') == [
            "health: ok",
            "volunteer: failing",
        ]
        assert "health: 5.0% quarantined" in titles(page, '[data-chart="feed-health"] rect')

        assert seen.requests == [path.as_uri()], "the page must load nothing but itself"
        assert seen.errors == []

        artifacts = Path(
            os.environ.get("CIVICFLOW_TEST_ARTIFACTS", ROOT / ".local" / "test-artifacts")
        )
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / "warehouse-report.png"
        page.screenshot(path=str(shot), full_page=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 1280 and height > 2000, (width, height)


def test_an_empty_warehouse_gets_a_page_saying_what_to_load(warehouse_url, tmp_path):
    with open_warehouse(warehouse_url) as conn:  # migrated, nothing loaded
        built = report.build(conn)
        path = report.write(conn, tmp_path)
    assert built.charts == []
    with opened(path) as (page, seen):
        assert page.locator("svg").count() == 0
        assert "make demo" in page.locator("main").inner_text()
        assert seen.requests == [path.as_uri()] and seen.errors == []


def test_the_report_names_no_person(district):
    add_feed_batches(district)
    with open_warehouse(district) as conn:
        built = report.build(conn)
    assert built.charts == CHARTS
    d = small_district
    keys = {d.A, d.B, d.D, d.E, d.F, d.G}
    assert not any(key in built.html for key in keys)
    assert not re.search(r"[0-9a-fA-F]{64}", built.html)
    assert "person_key" not in built.html


def test_the_report_goes_where_it_is_configured(monkeypatch, tmp_path):
    monkeypatch.delenv("CIVICFLOW_REPORT_DIR", raising=False)
    monkeypatch.delenv("CIVICFLOW_LOCAL_DIR", raising=False)
    assert report.report_dir() == ROOT / ".local" / "reports"
    monkeypatch.setenv("CIVICFLOW_LOCAL_DIR", str(tmp_path / "local"))
    assert report.report_dir() == tmp_path / "local" / "reports"
    monkeypatch.setenv("CIVICFLOW_REPORT_DIR", str(tmp_path / "out"))
    assert report.report_dir() == tmp_path / "out"
