"""Great Expectations (GX Core 1.x) validation of a batch, with an outcome for every row.

The suite is read from ``expectations/<feed>.<entity>.json``; GX runs it on the
typed batch as a pandas DataFrame and reports, for each expectation, the index
of every failing row, so each failing row can be quarantined with the
expectations it failed. GX is imported here only, never by DAG files.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from civicflow.spec import Entity, expectation_label, suite_path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ExpectationOutcome:
    label: str
    success: bool
    unexpected_count: int
    unexpected_percent: float
    failing_rows: tuple[int, ...]  # positions in the validated batch


def load_suite(entity: Entity) -> dict[str, Any]:
    path = suite_path(entity, PROJECT_ROOT)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{entity.qualified_name}: no expectation suite at {path}; run `make expectations`"
        ) from exc


@cache
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_pandas("civicflow")
    return gx, datasource


def validate_rows(entity: Entity, rows: list[dict[str, Any]]) -> list[ExpectationOutcome]:
    """Run the entity's suite over typed rows; every outcome lists the failing row positions."""
    suite_doc = load_suite(entity)
    if not rows:
        return [
            ExpectationOutcome(expectation_label(e), True, 0, 0.0, ())
            for e in suite_doc["expectations"]
        ]
    import pandas as pd

    gx, datasource = _context()
    columns = [f.name for f in entity.fields]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    asset_name = f"{entity.qualified_name}"
    try:
        asset = datasource.get_asset(asset_name)
    except LookupError:
        asset = datasource.add_dataframe_asset(asset_name)
    try:
        batch_definition = asset.get_batch_definition("whole")
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(
        name=suite_doc["name"],
        expectations=[
            {"type": e["type"], "kwargs": e["kwargs"], "meta": e.get("meta", {})}
            for e in suite_doc["expectations"]
        ],
    )
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    outcomes = []
    for r in result.results:
        config = r.expectation_config
        label = expectation_label({"type": config.type, "kwargs": config.kwargs})
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"{entity.qualified_name}: expectation {label} could not run: "
                f"{r.exception_info.get('exception_message')}"
            )
        details = r.result or {}
        failing = tuple(int(i) for i in details.get("unexpected_index_list") or ())
        outcomes.append(
            ExpectationOutcome(
                label=label,
                success=bool(r.success),
                unexpected_count=int(details.get("unexpected_count") or 0),
                unexpected_percent=float(details.get("unexpected_percent") or 0.0),
                failing_rows=failing,
            )
        )
    return outcomes
