"""The bad-input corpus (tests/data/bad/): every crafted file has its exact outcome.

Each case's file is served over real HTTP at the path its feed's interface gives it
(an export with its index, a ledger with its listing, a page of records) and loaded by
``run_entity`` into a warehouse that holds the district's divisions and positions (from
the simulator) and, for the volunteer feed, a few volunteers and activities. The outcome
must be exactly the manifest's: the quarantine reasons and counts, accepted rows and
duplicates of a published batch, or the error of a failed one. Every time, the audit
invariant (source = accepted + quarantined + duplicates) holds, no source row is lost, a
failed batch leaves core as it was, and core.dim_person is still there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.util
import json
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds import entity as entity_named
from civicflow.feeds.positions import COMMUNITIES, POSITIONS, STREETS
from civicflow.feeds.volunteer import ACTIVITIES, VOLUNTEERS
from civicflow.httpclient import FeedError
from civicflow.pipeline import BatchError, run_entity
from civicflow.simulator.server import RunningSimulator
from civicflow.spec import Entity

from ..conftest import fast_client, fresh_database

DATA = Path(__file__).resolve().parents[1] / "data" / "bad"
MANIFEST = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))
CASES = MANIFEST["cases"]
DAY = dt.date(2026, 11, 20)
SNAPSHOT_DATE = "2026-11-19"
LEDGER_MONTH = "2026-10"
SECRET = b"a-test-secret-of-32-bytes-length"
INJECTION = "'); drop table core.dim_person; --"


def _corpus_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_corpus", DATA / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- files served as the feeds serve them ------------------------------------------------------

Route = Callable[[dict[str, str]], tuple[int, str, bytes]]


class FileFeeds:
    """A tiny HTTP server answering each path with what the current case put there."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(url.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                route = feeds.routes.get(path)
                status, content_type, body = (
                    route(query) if route else (404, "text/plain", b"no such path")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def serve(self, path: str, body: bytes, content_type: str = "application/json") -> None:
        self.routes[path] = lambda query: (200, content_type, body)

    def serve_json(self, path: str, document: Any) -> None:
        self.serve(path, json.dumps(document, ensure_ascii=False).encode("utf-8"))


@pytest.fixture(scope="module")
def feeds() -> Iterator[FileFeeds]:
    server = FileFeeds()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def settings(feeds: FileFeeds, feed: str, **options: Any) -> FeedSettings:
    auth = {"health": ("civicflow", "secret"), "volunteer": ("", "key")}.get(feed)
    return FeedSettings(feed=feed, base_url=f"{feeds.url}/{feed}", auth=auth, options=options)


def land(feeds: FileFeeds, case: dict[str, Any], body: bytes) -> FeedSettings:
    """Put the case's file where its feed's interface says it is; the settings to fetch it."""
    feeds.routes.clear()
    feed, name = case["feed"], Path(case["file"]).name
    content_type = case.get("content_type", "application/json")
    if feed == "health":
        feeds.serve_json("/health/oauth/token", {"access_token": "t", "expires_in": 300})
        feeds.serve("/health/api/v1/service-records", body, content_type)
    elif feed == "volunteer":
        path = {"volunteer_help": "service_hours"}.get(case["entity"], case["entity"])
        feeds.serve(f"/volunteer/v2/{path.replace('_', '-')}", body, content_type)
    elif feed == "positions":
        path = {"streets": "divisions", "communities": "divisions"}.get(
            case["entity"], case["entity"]
        )
        feeds.serve(f"/positions/{path}", body, content_type)
        return settings(feeds, feed, lookback_days=1)
    elif feed == "civil_affairs":
        index = {
            "name": name,
            "snapshot_date": SNAPSHOT_DATE,
            "rows": case["index_rows"],
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
        }
        feeds.serve_json("/civil_affairs/exports/index.json", {"exports": [index]})
        feeds.serve(f"/civil_affairs/exports/{name}", body, "text/csv")
    elif feed == "elderly_care":
        listing = {
            "file": name,
            "street": "北京街",
            "month": LEDGER_MONTH,
            "version": 1,
            "published_at": "2026-11-03T10:00:00+08:00",
        }

        def ledgers(query: dict[str, str]) -> tuple[int, str, bytes]:
            listed = [listing] if query.get("month") == LEDGER_MONTH else []
            return 200, "application/json", json.dumps({"ledgers": listed}).encode()

        feeds.routes["/elderly_care/ledgers"] = ledgers
        feeds.serve(f"/elderly_care/ledgers/{name}", body, "application/octet-stream")
    else:
        raise AssertionError(f"no feed {feed}")
    return settings(feeds, feed)


# --- warehouses ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_template(postgres, migrated_template, feeds) -> Iterator[str]:
    """A database with the reference data every case needs, which each case's is copied from."""
    with fresh_database(postgres, migrated_template) as url:
        with RunningSimulator(port=0, scale=0.001) as sim:
            positions = FeedSettings(feed="positions", base_url=f"{sim.url}/positions")
            for entity in (STREETS, COMMUNITIES, POSITIONS):
                run_entity(entity, positions, url, DAY, DAY, "refs", fast_client(positions))
        refs = DATA / "volunteer" / "references"
        for entity, file, path in (
            (VOLUNTEERS, "volunteers.json", "volunteers"),
            (ACTIVITIES, "activities.json", "activities"),
        ):
            feeds.routes.clear()
            feeds.serve(f"/volunteer/v2/{path}", (refs / file).read_bytes())
            feed = settings(feeds, "volunteer")
            summary = run_entity(entity, feed, url, DAY, DAY, "refs", fast_client(feed), SECRET)
            assert (summary.accepted_rows, summary.quarantined_rows) == (2, 0)
        yield psycopg.conninfo.conninfo_to_dict(url)["dbname"]


@pytest.fixture
def warehouse(postgres, reference_template) -> Iterator[str]:
    with fresh_database(postgres, reference_template) as url:
        yield url


def core_fingerprint(conn: psycopg.Connection) -> dict[str, str]:
    tables = [
        r[0]
        for r in conn.execute(
            "select format('%I.%I', schemaname, tablename) from pg_tables "
            "where schemaname = 'core' order by 1"
        )
    ]
    return {
        t: conn.execute(
            f"select count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' "  # noqa: S608
            f"order by x::text)), '') from {t} x"
        ).fetchone()[0]
        for t in tables
    }


def source_records(conn: psycopg.Connection, entity: Entity, load_id: str) -> list[Any]:
    """The batch's records as the entity reads them from raw: what must all be accounted for."""
    out: list[Any] = []
    for body, meta in conn.execute(
        "select body, meta from raw.payload where load_id = %s order by payload_id", (load_id,)
    ):
        document = entity.decode(bytes(body), meta) if entity.decode else json.loads(bytes(body))
        out.extend(entity.records(document))
    return out


# --- the cases ------------------------------------------------------------------------------------


def generated(name: str) -> bytes:
    corpus = _corpus_module()
    if name == "health_10mb_field":
        return corpus.health_page(
            [
                corpus.health_record(1, name="王" * 3_500_000),  # 10.5 MB of UTF-8
                corpus.health_record(2, record_id="R" * 10_000_000),
            ]
        )
    if name == "civil_10mb_field":
        return corpus.csv_bytes(
            [corpus.person(corpus.WANG, 居住地址="号" * 5_000_000), corpus.person(corpus.LI)]
        )
    raise AssertionError(f"no generator {name}")


def test_the_corpus_is_as_the_issue_asks():
    assert len(CASES) >= 30
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert {c["feed"] for c in CASES} == {
        "health",
        "civil_affairs",
        "elderly_care",
        "volunteer",
        "positions",
    }
    for c in CASES:
        assert c.get("generated") or (DATA / c["file"]).is_file(), c["file"]
        assert ("error" in c["expect"]) != ("accepted" in c["expect"]), c["name"]
    # Generated at test time, not committed: the 10 MB field.
    assert all((DATA / c["file"]).stat().st_size < 100_000 for c in CASES if "generated" not in c)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input(case, feeds, warehouse):
    entity = entity_named(case["feed"], case["entity"])
    if "max_rejection_rate" in case:
        entity = dataclasses.replace(entity, max_rejection_rate=case["max_rejection_rate"])
    name = case.get("generated")
    body = generated(name) if name else (DATA / case["file"]).read_bytes()
    feed = land(feeds, case, body)
    expect = case["expect"]
    with psycopg.connect(warehouse, autocommit=True) as conn:
        before = core_fingerprint(conn)
        loads_before = conn.execute("select count(*) from meta.load_audit").fetchone()[0]

    def load():
        return run_entity(entity, feed, warehouse, DAY, DAY, "bad-input", fast_client(feed), SECRET)

    if "error" in expect:
        with pytest.raises((FeedError, BatchError)) as raised:
            load()
        error = raised.value
        assert type(error).__name__ == expect["error_type"], repr(error)
        assert re.search(expect["error"], str(error)), str(error)
    else:
        summary = load()
        assert summary.status == "succeeded"

    with psycopg.connect(warehouse, autocommit=True) as conn:
        [(load_id, status, source, accepted, quarantined, duplicates, extra, audit_error)] = (
            conn.execute(
                "select load_id::text, status, source_rows, accepted_rows, quarantined_rows, "
                "duplicate_rows, extra_columns, error from meta.load_audit "
                "where run_id = 'bad-input'"
            ).fetchall()
        )
        loads = conn.execute("select count(*) from meta.load_audit").fetchone()[0]
        assert loads == loads_before + 1
        # The audit invariant, for every load the warehouse has seen.
        broken = conn.execute(
            "select load_id from meta.load_audit where coalesce(source_rows, 0) <> "
            "coalesce(accepted_rows, 0) + coalesce(quarantined_rows, 0) + "
            "coalesce(duplicate_rows, 0)"
        ).fetchall()
        assert broken == []
        rows = conn.execute(
            "select reasons from quarantine.rejected_row where load_id = %s order by source_index",
            (load_id,),
        ).fetchall()
        reasons = Counter(" | ".join(r[0]) for r in rows)
        assert len(rows) == (quarantined or 0)
        staging_table = f"staging.{entity.staging_table}"
        if conn.execute("select to_regclass(%s)", (staging_table,)).fetchone()[0]:
            staged = conn.execute(
                f"select count(*) from {staging_table} where load_id = %s",  # noqa: S608
                (load_id,),
            ).fetchone()[0]
            # Published and removed, never staged, or removed with their rejected batch; a
            # published register snapshot stays staged for the next to reuse, until it comes.
            kept = accepted if entity.reuse_unchanged and status == "succeeded" else 0
            assert staged == kept
        # Whatever came in, the register is still there.
        assert conn.execute("select to_regclass('core.dim_person')").fetchone()[0] is not None

        if "error" in expect:
            assert status in ("failed", "rejected")
            assert audit_error and audit_error in str(error)
            assert core_fingerprint(conn) == before, "a failed batch changed core"
            assert reasons == Counter(expect.get("quarantined", {}))
            if isinstance(error, FeedError):  # nothing fetched was kept
                landed = conn.execute(
                    "select count(*) from raw.payload where load_id = %s", (load_id,)
                ).fetchone()[0]
                assert landed == 0
            return

        assert status == "succeeded"
        assert reasons == Counter(expect["quarantined"])
        assert (accepted, duplicates) == (expect["accepted"], expect["duplicates"])
        assert (summary.accepted_rows, summary.duplicate_rows) == (accepted, duplicates)
        assert sorted(extra) == sorted(expect.get("extra_columns", []))
        # No row lost: every record of the raw payloads is staged, quarantined or a duplicate.
        records = source_records(conn, entity, load_id)
        assert source == len(records)
        # Extra columns are tolerated and kept, as sent, in raw.
        for column in expect.get("extra_columns", []):
            assert any(isinstance(r, dict) and column in r for r in records), column
        schema, table = entity.target.split(".")
        for key, values in expect.get("core", {}).items():
            names = list(values)
            row = conn.execute(
                psycopg.sql.SQL("select {} from {} where {} = %s").format(
                    psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, names)),
                    psycopg.sql.Identifier(schema, table),
                    psycopg.sql.Identifier(entity.key[0]),
                ),
                (key,),
            ).fetchone()
            assert row is not None and dict(zip(names, row, strict=True)) == values
        if INJECTION.encode() in body:
            # Plain data in raw; in core only where a case says so, never run.
            raw = conn.execute(
                "select count(*) from raw.payload where load_id = %s and position(%s in body) > 0",
                (load_id, INJECTION.encode()),
            ).fetchone()[0]
            assert raw >= 1
