"""The Data quality page in a real Airflow api-server, opened in Debian's chromium.

One api-server (SQLite metadata, the simple auth manager with one user) reads a warehouse
holding a real positions load from the simulator (with three bad records, and GX results
kept for the Data Docs) and hand-written batches that make each of the other feeds tell one
status: health failing, civil affairs stale by its loads, elderly care stale by its data,
volunteer never loaded. The expected numbers come from those rows and the simulator, not
from querying the way the page queries.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from civicflow.config import FeedSettings
from civicflow.feeds.positions import ENTITIES
from civicflow.localdb import free_port
from civicflow.pipeline import run_entity
from civicflow.simulator.server import RunningSimulator
from civicflow.simulator.world import visits_document

from ..conftest import airflow_env, fast_client, fresh_database
from .test_report import BROWSER_ARGS, chromium

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "admin", "dq-page-test-password"
RUN = "manual__dq_page_test"
BAD_RECORDS = [  # the first visits request gets all three
    {"field": "visitors", "value": "many"},
    {"field": "participants", "value": -5},
    {"field": "position_code", "value": "NO-SUCH-POSITION"},
]
# Airflow starts slowly on a loaded shared machine: the limits bound a hang, nothing more.
pytestmark = [pytest.mark.airflow, pytest.mark.timeout(3600)]
SLOW_MS = 600_000  # any wait in the browser


@dataclass(frozen=True)
class Loaded:
    url: str
    gx_dir: Path
    positions_rows: int  # every record the positions load read


def _batch(conn, feed, entity, run, status, ago, counts, reasons=(), watermark=None, error=None):
    """A batch as the pipeline would leave it, ``ago`` before now, with its quarantined rows."""
    load_id = uuid.uuid4()
    source, accepted, quarantined, duplicates = counts
    conn.execute(
        "insert into meta.load_audit (load_id, feed, entity, run_id, status, started_at, "
        "finished_at, source_rows, accepted_rows, quarantined_rows, duplicate_rows, error) "
        "values (%s, %s, %s, %s, %s, now() - %s::interval - interval '5 minutes', "
        "now() - %s::interval, %s, %s, %s, %s, %s)",
        (load_id, feed, entity, run, status, ago, ago, source, accepted, quarantined, duplicates,
         error),
    )  # fmt: skip
    for index, reason in enumerate(reasons):
        conn.execute(
            "insert into quarantine.rejected_row (load_id, feed, entity, source_index, record, "
            "reasons) values (%s, %s, %s, %s, %s, %s)",
            (load_id, feed, entity, index, Jsonb({"id_no": "110101194203050011"}), [reason]),
        )
    if watermark:
        conn.execute(
            "insert into meta.feed_state (feed, entity, watermark, load_id) values "
            "(%s, %s, %s, %s) on conflict (feed, entity) do update set "
            "watermark = excluded.watermark, load_id = excluded.load_id",
            (feed, entity, watermark, load_id),
        )


def _other_feeds(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # health: 2 %, 4 %, 5 % of 100 rows quarantined, then a batch rejected at 8 %.
        for n, (ago, bad) in enumerate((("3 days", 2), ("2 days", 4), ("1 day", 5))):
            _batch(conn, "health", "service_records", f"scheduled__health_{n}", "succeeded",
                   ago, (100, 100 - bad, bad, 0), ["invalid ID number check digit"] * bad,
                   watermark=f"{dt.date.today()}T0{n}:00:00+08:00")  # fmt: skip
        reasons = (
            ["invalid ID number check digit"] * 5
            + ["unknown community '旧南海x' in street 440104001"] * 2
            + ["field service_time: not a timestamp ('2026-13-01 10:00')"]
        )
        _batch(conn, "health", "service_records", "scheduled__health_3", "rejected", "1 hour",
               (100, 92, 8, 0), reasons,
               error="8 of 100 rows (8.0%) failed validation, more than the 5.0% allowed; "
               "nothing was published. Most common reasons: unknown community '旧南海x' "
               "in street 440104001 ×2")  # fmt: skip
        # civil affairs: its last published batch is 30 hours old.
        _batch(conn, "civil_affairs", "register", "scheduled__register", "succeeded", "30 hours",
               (500, 497, 2, 1), ["invalid ID number check digit",
                                  "出生日期 differs from the ID number's birth date"],
               watermark=str(dt.date.today() - dt.timedelta(days=1)))  # fmt: skip
        # elderly care: loaded 2 hours ago, but its newest ledger was published 45 days ago.
        _batch(conn, "elderly_care", "ledgers", "scheduled__ledgers", "succeeded", "2 hours",
               (40, 40, 0, 0), watermark=(dt.datetime.now(dt.UTC) - dt.timedelta(days=45))
               .isoformat())  # fmt: skip
        # volunteer: never loaded.


@pytest.fixture(scope="module")
def loaded(postgres, tmp_path_factory) -> Iterator[Loaded]:
    gx_dir = tmp_path_factory.mktemp("gx")
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date() - dt.timedelta(days=1)
    with (
        pytest.MonkeyPatch.context() as env,
        fresh_database(postgres) as url,
        RunningSimulator(port=0) as sim,
    ):
        env.setenv("CIVICFLOW_GX_DIR", str(gx_dir))
        feed = FeedSettings(feed="positions", base_url=f"{sim.url}/positions")
        rules = [
            {"path": "/positions/visits", "kind": "bad_record", "index": i, "times": 1, **bad}
            for i, bad in enumerate(BAD_RECORDS)
        ]
        request = urllib.request.Request(
            f"{sim.url}/_sim/faults", data=json.dumps({"rules": rules}).encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()
        for entity in ENTITIES:
            run_entity(entity, feed, url, day, day, RUN, fast_client(feed))
        visits = sum(
            len(visits_document(sim.state.district, day - dt.timedelta(days=d))) for d in range(3)
        )
        _other_feeds(url)
        yield Loaded(url, gx_dir, 18 + 222 + 254 + visits)


@dataclass(frozen=True)
class ApiServer:
    url: str
    log: Path


def _call(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def api_server(loaded, tmp_path_factory) -> Iterator[ApiServer]:
    """``airflow api-server`` on a free port, until the module's tests are done."""
    home = tmp_path_factory.mktemp("airflow")
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    env = airflow_env(
        home,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API_AUTH__JWT_SECRET=uuid.uuid4().hex,
        AIRFLOW_CONN_WAREHOUSE=loaded.url,
        CIVICFLOW_GX_DIR=str(loaded.gx_dir),
        PYTHONPATH=str(ROOT / "plugins"),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=1800
    )
    assert migrated.returncode == 0, migrated.stdout[-4000:] + migrated.stderr[-4000:]
    port = free_port()
    log = home / "api-server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole, by its id
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 1800
        while _call_quietly(f"{url}/api/v2/monitor/health") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the api-server did not start:\n{log.read_text()[-6000:]}")
            time.sleep(0.5)
        yield ApiServer(url, log)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def _call_quietly(url: str) -> int | None:
    try:
        return _call(url)[0]
    except OSError:
        return None  # not listening yet


def _token(api: ApiServer) -> str:
    request = urllib.request.Request(
        f"{api.url}/auth/token",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


def test_the_plugin_refuses_whoever_has_not_logged_in(api_server):
    for path in ("data-quality", "api/feeds", "data-docs/", "data-docs/static/images/favicon.ico"):
        assert _call(f"{api_server.url}/civicflow/{path}")[0] == 401, path
        assert _call(f"{api_server.url}/civicflow/{path}", token="not-a-jwt")[0] == 403, path


def test_the_json_tells_each_feed_what_the_page_does(api_server, loaded):
    status, body = _call(f"{api_server.url}/civicflow/api/feeds", token=_token(api_server))
    assert status == 200, body[:2000]
    feeds = {f["feed"]: f for f in json.loads(body)["feeds"]}
    assert list(feeds) == ["positions", "civil_affairs", "elderly_care", "health", "volunteer"]
    assert {k: f["status"] for k, f in feeds.items()} == {
        "positions": "ok",
        "civil_affairs": "stale",
        "elderly_care": "stale",
        "health": "failing",
        "volunteer": "never loaded",
    }
    positions = feeds["positions"]["last_load"]
    assert (positions["run_id"], positions["status"]) == (RUN, "succeeded")
    assert [positions[c] for c in ("source_rows", "accepted_rows", "quarantined_rows")] == [
        loaded.positions_rows,
        loaded.positions_rows - 3,
        3,
    ]
    assert [round(load["rejection_rate"], 2) for load in feeds["health"]["trend"]] == [
        0.02,
        0.04,
        0.05,
        0.08,
    ]
    assert feeds["volunteer"]["last_load"] is None and feeds["volunteer"]["trend"] == []
    assert "110101194203050011" not in body.decode() and "旧南海x" not in body.decode()


def test_the_data_quality_page_in_the_airflow_ui(api_server, loaded):
    from playwright.sync_api import sync_playwright

    base = api_server.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
        try:
            anonymous = browser.new_page()
            anonymous.set_default_navigation_timeout(SLOW_MS)
            assert anonymous.goto(f"{base}/civicflow/data-quality").status == 401
            anonymous.close()

            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(SLOW_MS)
            page.set_default_navigation_timeout(SLOW_MS)
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{base}/")
            page.get_by_label("Username").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))

            nav = page.locator('a[href$="plugin/data-quality"]')
            assert nav.inner_text(timeout=SLOW_MS).strip() == "Data quality"
            nav.click()
            page.wait_for_url("**/plugin/data-quality**")
            frame = page.frame_locator('iframe[title="Data quality"]')
            _check_the_page(frame, loaded)

            # The Data Docs of the positions' visits: GX's page, in the same frame.
            visits = frame.locator(
                '[data-feed-detail="positions"] tr[data-entity="visits"] [data-col="data-docs"] a'
            )
            visits.click()
            docs = frame.locator("body")
            docs.get_by_text("Expectation Validation Result").first.wait_for(timeout=SLOW_MS)
            text = docs.inner_text()
            assert "positions.visits" in text and "1 unexpected values found" in text
            assert "Unsuccessful Expectations" in text
            frame.get_by_role("link", name="Home").click()  # GX's link, to this site's index
            index = frame.locator('table[data-table="validation-results"]')
            assert "failed" in index.locator('tr[data-suite="positions.visits"]').inner_text()

            fetched = [u for u in requests if u.startswith(("http:", "https:"))]  # not blob:
            assert fetched and all(u.startswith(f"{base}/") for u in fetched), (
                "the pages must fetch nothing from elsewhere"
            )

            # The page on its own, for the screenshot of all of it.
            shown = page.goto(f"{base}/civicflow/data-quality")
            assert shown.status == 200
            artifacts = Path(
                os.environ.get("CIVICFLOW_TEST_ARTIFACTS", ROOT / ".local" / "test-artifacts")
            )
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifacts / "data-quality.png"), full_page=True)
        finally:
            browser.close()


def _check_the_page(frame, loaded: Loaded) -> None:
    rows = frame.locator('table[data-table="feeds"] tr[data-feed]')
    rows.first.wait_for(timeout=SLOW_MS)
    assert [
        (rows.nth(i).get_attribute("data-feed"), rows.nth(i).get_attribute("data-status"))
        for i in range(rows.count())
    ] == [
        ("positions", "ok"),
        ("civil_affairs", "stale"),
        ("elderly_care", "stale"),
        ("health", "failing"),
        ("volunteer", "never loaded"),
    ]

    def cells(feed: str) -> dict[str, str]:
        row = frame.locator(f'tr[data-feed="{feed}"]')
        return {
            col: row.locator(f'[data-col="{col}"]').first.inner_text().strip()
            for col in ("status", "last-load", "source", "accepted", "quarantined", "duplicates")
        }

    n = loaded.positions_rows
    positions = cells("positions")
    assert [positions[c] for c in ("source", "accepted", "quarantined", "duplicates")] == [
        f"{n:,}",
        f"{n - 3:,}",
        "3",
        "0",
    ]
    assert "succeeded" in positions["last-load"] and RUN in positions["last-load"]
    assert positions["status"].startswith("ok") and "published" in positions["status"]

    civil = cells("civil_affairs")
    assert [civil[c] for c in ("source", "accepted", "quarantined", "duplicates")] == [
        "500",
        "497",
        "2",
        "1",
    ]
    assert "published 30.0 h ago" in civil["status"] and "stale after 26 h" in civil["status"]

    elderly = cells("elderly_care")
    assert "newest data 45 days old" in elderly["status"] and "41 days" in elderly["status"]

    health = cells("health")
    assert [health[c] for c in ("source", "accepted", "quarantined", "duplicates")] == [
        "100",
        "92",
        "8",
        "0",
    ]
    assert "rejected" in health["last-load"] and "scheduled__health_3" in health["last-load"]
    assert "service_records: the newest batch was rejected" in health["status"]
    trend = frame.locator('svg[data-chart="trend-health"] circle > title')
    assert trend.all_text_contents()[-1].endswith("8.0% quarantined (8 of 100 rows)")
    assert trend.count() == 4
    assert frame.locator('svg[data-chart="trend-health"] polyline').count() == 1
    assert frame.locator('svg[data-chart="trend-positions"] circle').count() == 1
    box = frame.locator('svg[data-chart="trend-health"]').bounding_box()
    assert box["width"] > 100 and box["height"] > 20

    volunteer = cells("volunteer")
    assert volunteer["status"].startswith("never loaded") and volunteer["source"] == "–"
    assert frame.locator('svg[data-chart="trend-volunteer"]').count() == 0

    def reasons(feed: str) -> list[list[str]]:
        table = frame.locator(f'[data-feed-detail="{feed}"] table[data-table="reasons"] tbody tr')
        return [row.split("\t") for row in table.all_inner_texts()]

    assert reasons("positions") == [
        ["visits", "failed expect_column_values_to_be_between(participants)", "1"],
        ["visits", "field visitors: not an integer", "1"],
        ["visits", "unknown position …", "1"],
    ]
    assert reasons("health") == [
        ["service_records", "invalid ID number check digit", "5"],
        ["service_records", "unknown community … in street …", "2"],
        ["service_records", "field service_time: not a timestamp", "1"],
    ]
    assert reasons("civil_affairs") == [
        ["register", "invalid ID number check digit", "1"],
        ["register", "出生日期 differs from the ID number's birth date", "1"],
    ]
    assert reasons("elderly_care") == []
    expectations = frame.locator(
        '[data-feed-detail="positions"] table[data-table="batches"] tr[data-entity="visits"]'
    )
    assert "1 of 9" in expectations.inner_text()
    page_text = frame.locator("body").inner_text()
    assert "110101194203050011" not in page_text and "旧南海x" not in page_text
