"""A batch judged and staged in chunks ends exactly as the same batch judged whole.

``validate`` reads a batch a few payloads at a time so that a district-year never sits in
memory; duplicates that fall into different chunks are settled in staging, GX's counts
are summed over the chunks. Here the same health delivery (with duplicates, ID numbers
that fail their check digit and unknown communities) is loaded into two warehouses, once
whole and once a five-record page at a time, and everything they hold is compared.
"""

from __future__ import annotations

import json

import psycopg
import pytest

import civicflow.pipeline as pipeline
from civicflow.config import FeedSettings
from civicflow.feeds.health import SERVICE_RECORDS
from civicflow.simulator.server import DEMO_CLIENT, RunningSimulator
from civicflow.validation import kept_results

from ..conftest import fast_client, fresh_database
from ..conftest import sim_call as sim
from .test_health_pipeline import DAY, SECRET, load_divisions

# What the two warehouses must hold alike: every column but the load's own id and times.
CORE = (
    "select service_id, person_key, service_area, service_date, status, quantity, "
    "source_record_id, source_updated_at from core.fact_service order by service_id"
)
QUARANTINE = (
    "select source_index, record, reasons, failed_expectations, subject_key "
    "from quarantine.rejected_row order by source_index"
)
DQ = "select expectation, success, unexpected_count, unexpected_percent from meta.dq_result "
AUDIT = (
    "select status, source_rows, accepted_rows, quarantined_rows, duplicate_rows, "
    "inserted_rows, updated_rows, unchanged_rows, watermark, payloads from meta.load_audit "
    "where feed = 'health'"
)


@pytest.fixture
def simulator():
    with RunningSimulator(port=0, scale=0.001) as running:
        yield running


def load(simulator, url: str, page_size: int):
    load_divisions(simulator, url)
    feed = FeedSettings(
        "health", f"{simulator.url}/health", auth=DEMO_CLIENT, options={"page_size": page_size}
    )
    return pipeline.run_entity(
        SERVICE_RECORDS, feed, url, DAY, DAY, "test", fast_client(feed), SECRET
    )


def held(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {
            "core": conn.execute(CORE).fetchall(),
            "quarantine": conn.execute(QUARANTINE).fetchall(),
            "dq": sorted(conn.execute(DQ).fetchall()),
            "audit": conn.execute(AUDIT).fetchall(),
        }


def kept_counts(load_id: str) -> dict:
    """The counts of the GX result kept for a load (what the Data Docs show)."""
    (result,) = [r for r in kept_results() if r.load_id == load_id]
    doc = json.loads(result.path.read_text(encoding="utf-8"))
    return {
        "success": doc["success"],
        "statistics": {k: doc["statistics"][k] for k in ("evaluated_expectations",
                                                         "successful_expectations")},
        "results": sorted(
            (
                json.dumps(r["expectation_config"]["kwargs"], sort_keys=True),
                r["success"],
                r["result"]["element_count"],
                r["result"]["unexpected_count"],
                r["result"].get("missing_count"),
                round(r["result"]["unexpected_percent"], 9),
            )
            for r in doc["results"]
        ),
    }  # fmt: skip


def test_a_batch_loaded_in_chunks_ends_as_one_loaded_whole(
    simulator, postgres, migrated_template, warehouse_url, monkeypatch
):
    truth = sim(simulator, "/_sim/truth?feed=health")
    assert truth["duplicates"] > 0 and sum(truth["quarantined"].values()) > 0

    whole = load(simulator, warehouse_url, page_size=1000)

    settled: list[int] = []
    settle = pipeline._BatchWriter._settle_duplicates

    def counted(writer):
        settled.append(settle(writer))
        return settled[-1]

    monkeypatch.setattr(pipeline, "CHUNK_RECORDS", 1)  # every page of 25 records is a chunk
    monkeypatch.setattr(pipeline._BatchWriter, "_settle_duplicates", counted)
    with fresh_database(postgres, migrated_template) as chunked_url:
        chunked = load(simulator, chunked_url, page_size=25)
        in_chunks = held(chunked_url)
    in_one = held(warehouse_url)

    assert whole.source_rows == chunked.source_rows == truth["served_rows"]
    # Duplicates met in different chunks were settled in staging, not in Python.
    assert settled and settled[0] > 0
    assert (chunked.accepted_rows, chunked.duplicate_rows, chunked.quarantined_rows) == (
        truth["loaded"],
        truth["duplicates"],
        sum(truth["quarantined"].values()),
    )
    assert in_chunks["core"] == in_one["core"] and len(in_one["core"]) == truth["loaded"]
    assert in_chunks["quarantine"] == in_one["quarantine"]
    assert in_chunks["dq"] == in_one["dq"]
    (one_audit,), (chunk_audit,) = in_one["audit"], in_chunks["audit"]
    assert chunk_audit[:9] == one_audit[:9]
    assert chunk_audit[9] > 20 * one_audit[9]  # many more payloads, hence chunks
    assert kept_counts(chunked.load_id) == kept_counts(whole.load_id)
