"""
### quarantine_replay

A data steward's **review and replay of quarantined rows**, without fetching anything again:
after fixing what made rows fail (most often a department's spelling of a community or
street: add it to `quarantine.community_alias` or `quarantine.street_alias`, which no feed
reload overwrites), replay the feed entity's quarantined rows through the same validation
and merge as a fetched batch.

- **Trigger:** manually, with params: `feed`, `entity`, `reasons` (optional: only rows with
  a reason beginning with one of these, e.g. `unknown community`), `dry_run` (default true).
- **review** counts the entity's open quarantined rows (of published batches) by reason and
  does a dry run of the replay: how many rows would be accepted into core, quarantined again
  with new reasons, or found to be duplicates, and how many still fail for the same reasons.
  It returns that summary (XCom) and pins the batches reviewed.
- **decide** stops here (the rest is skipped) for a dry run or when a replay would publish
  nothing.
- **approve** asks a person (Airflow's human-in-the-loop *Required actions*) to approve the
  replay, showing the review. Reject, or no answer within 3 days, skips the replay.
- **replay** replays the reviewed rows in one transaction, as a batch of its own in
  `meta.load_audit` (status `replayed`, `replay_of` the original batches, run id
  `replay__<this run>`): rows that pass are merged into core, rows failing for new reasons are
  quarantined again in the replay batch, and every replayed row in `quarantine.rejected_row`
  records `replayed_in` and `replay_outcome`; rows failing as before stay as they are, so a
  second replay does nothing. `source_rows = accepted_rows + quarantined_rows +
  duplicate_rows` holds for the replay batch; the original batches keep their numbers, and
  `meta.quarantine_outcome` tells how many of their rows were accepted later. No watermark or
  feed state moves. When rows were published, it emits the core table's Asset (the same as
  the ingest DAG's merge), so `warehouse_marts` refreshes.
- **Reads:** `quarantine.rejected_row`, `quarantine.*_alias`, `core` reference tables,
  `meta.load_audit`. **Writes:** the core table of the entity, `staging` (in flight),
  `quarantine.rejected_row`, `meta.load_audit`, `meta.dq_result`.
- **Retries:** every task may be retried: review and decide only read, the approval asks
  again, and a replay is one transaction that takes only rows still open.
- **Owner:** civicflow data stewards, with data engineering.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, AssetAlias, Param, task

from civicflow.airflow.ingest import LOCAL_TZ
from civicflow.alerts import notify_failure
from civicflow.feeds import FEEDS

OWNER = "civicflow-data-stewards"
REPLAYED = AssetAlias("civicflow-quarantine-replay", group="warehouse")
ENTITIES = sorted({e.name for entities in FEEDS.values() for e in entities})

with DAG(
    dag_id="quarantine_replay",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz=LOCAL_TZ),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["civicflow", "quarantine", "steward"],
    default_args={
        "owner": OWNER,
        "retries": 1,
        "retry_delay": dt.timedelta(minutes=2),
        "on_failure_callback": notify_failure,
    },
    params={
        "feed": Param(
            "health",
            type="string",
            enum=sorted(FEEDS),
            description="The feed whose quarantined rows to replay.",
        ),
        "entity": Param(
            "service_records",
            type="string",
            enum=ENTITIES,
            description="The entity of that feed: "
            + "; ".join(
                f"{feed}: {', '.join(e.name for e in entities)}"
                for feed, entities in sorted(FEEDS.items())
            )
            + ".",
        ),
        "reasons": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description="Only rows with a reason beginning with one of these (for example "
            "`unknown community`); empty for every open row.",
        ),
        "dry_run": Param(
            True,
            type="boolean",
            description="Review and preview only; nothing is asked or changed.",
        ),
    },
) as dag:

    @task(task_id="review")
    def review(**context: Any) -> dict[str, Any]:
        """Open rows by reason, and what a replay would do now (a dry run)."""
        from civicflow.airflow.replay import review_task

        return review_task(context["params"])

    @task.short_circuit(task_id="decide")
    def decide(reviewed: dict[str, Any], **context: Any) -> bool:
        """Go on to the approval only for a real run that would publish something."""
        return not context["params"]["dry_run"] and reviewed["would_publish"]

    approve = ApprovalOperator(
        task_id="approve",
        subject="Replay {{ params.feed }}.{{ params.entity }} from quarantine?",
        body="{{ ti.xcom_pull(task_ids='review')['markdown'] }}",
        defaults="Reject",
        response_timeout=dt.timedelta(days=3),
    )

    @task(task_id="replay", outlets=[REPLAYED])
    def replay(reviewed: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Replay the reviewed rows; emit the core table's Asset when rows were published."""
        from civicflow.airflow.ingest import table_asset
        from civicflow.airflow.replay import replay_task

        summary = replay_task(context["params"], reviewed, context["run_id"])
        if (summary["inserted_rows"] or 0) + (summary["updated_rows"] or 0):
            context["outlet_events"][REPLAYED].add(
                table_asset(reviewed["target"]),
                extra={
                    k: summary[k]
                    for k in ("load_id", "accepted_rows", "inserted_rows", "updated_rows")
                },
            )
        return summary

    reviewed = review()
    decide(reviewed) >> approve >> replay(reviewed)
