"""Great Expectations (GX Core 1.x) validation of a batch, with an outcome for every row.

The suite is read from ``expectations/<feed>.<entity>.json``; GX runs it on the
typed batch as a pandas DataFrame and reports, for each expectation, the index
of every failing row, so each failing row can be quarantined with the
expectations it failed. GX is imported here only, never by DAG files.

Every validation result is also kept, without a single row value, in a GX
validation-results store under ``$CIVICFLOW_GX_DIR`` (a few milliseconds a
batch); :func:`build_data_docs` renders GX Data Docs from them when someone
asks to read them (the Airflow UI's Data quality page), not on every batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from civicflow.spec import Entity, expectation_label, suite_path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GX_DIR_ENV = "CIVICFLOW_GX_DIR"
RESULTS = "validations"  # the validation-results store, under the GX folder
SITE = "data_docs"  # the Data Docs site, under the GX folder
SITE_NAME = "civicflow"
DOCS_LIMIT = 500  # the newest results the Data Docs render and index
# What a kept result says about each expectation: counts and shares, never a value, an
# index or a sample of the rows (which hold ID numbers, names and phones).
KEPT_DETAILS = frozenset(
    {
        "element_count",
        "unexpected_count",
        "unexpected_percent",
        "unexpected_percent_total",
        "unexpected_percent_nonmissing",
        "missing_count",
        "missing_percent",
    }
)


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


def gx_dir() -> Path:
    """Where GX keeps validation results and Data Docs: $CIVICFLOW_GX_DIR, else <local>/gx."""
    configured = os.environ.get(GX_DIR_ENV)
    if configured:
        return Path(configured)
    local = os.environ.get("CIVICFLOW_LOCAL_DIR")
    return (Path(local) if local else PROJECT_ROOT / ".local") / "gx"


def _project_config(directory: Path) -> Any:
    from great_expectations.data_context.types.base import DataContextConfig

    in_memory = {"class_name": "InMemoryStoreBackend"}
    return DataContextConfig(
        analytics_enabled=False,
        # Suites are read from expectations/ on every run; only results are kept.
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        stores={
            "expectations_store": {"class_name": "ExpectationsStore", "store_backend": in_memory},
            "validation_results_store": {
                "class_name": "ValidationResultsStore",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(directory / RESULTS),
                },
            },
            "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": in_memory},
            "validation_definition_store": {
                "class_name": "ValidationDefinitionStore",
                "store_backend": in_memory,
            },
        },
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(directory / SITE),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": DOCS_LIMIT,
                },
                # Profiling reads the same store; nothing here is a profile.
                "site_section_builders": {"profiling": "None"},
            }
        },
    )


@cache
def _context(directory: str):
    """The GX context (with its pandas data source) keeping its results under ``directory``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral", project_config=_project_config(Path(directory)))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_pandas("civicflow")
    return gx, context, datasource


def validate_rows(
    entity: Entity, rows: list[dict[str, Any]], load_id: str | None = None
) -> list[ExpectationOutcome]:
    """Run the entity's suite over typed rows; every outcome lists the failing row positions.

    The result is kept for the Data Docs, named after ``load_id`` when it is given.
    """
    suite_doc = load_suite(entity)
    if not rows:
        return [
            ExpectationOutcome(expectation_label(e), True, 0, 0.0, ())
            for e in suite_doc["expectations"]
        ]
    import pandas as pd

    gx, context, datasource = _context(str(gx_dir()))
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
    keep_result(context, entity, result, load_id)
    return outcomes


# --- Data Docs ---------------------------------------------------------------------------------


def keep_result(context: Any, entity: Entity, result: Any, load_id: str | None) -> Any:
    """Store ``result`` without row values in the context's results store; returns its key."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_name=load_id or "civicflow", run_time=dt.datetime.now(dt.UTC))
    kept = ExpectationSuiteValidationResult(
        success=result.success,
        suite_name=result.suite_name,
        statistics=result.statistics,
        batch_id=result.batch_id,
        meta={
            **result.meta,
            "run_id": run_id,
            "validation_time": run_id.run_time,
            "civicflow": {"feed": entity.feed, "entity": entity.name, "load_id": load_id},
        },
        results=[
            ExpectationValidationResult(
                success=r.success,
                expectation_config=r.expectation_config,
                result={k: v for k, v in (r.result or {}).items() if k in KEPT_DETAILS},
                meta=r.meta,
                exception_info=r.exception_info,
            )
            for r in result.results
        ],
    )
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=run_id,
        batch_identifier=load_id or entity.qualified_name,
    )
    context.validation_results_store.store_validation_results(kept, key)
    return key


@dataclass(frozen=True)
class KeptResult:
    """A kept validation result: its suite, load id (when known), time, and Data Docs page."""

    suite: str
    load_id: str | None
    run_time: dt.datetime
    page: str  # path of its page under the Data Docs site
    path: Path  # the kept result

    def outcome(self) -> tuple[bool, int, int]:
        """Whether every expectation held, and how many held of how many evaluated."""
        doc = json.loads(self.path.read_text(encoding="utf-8"))
        stats = doc.get("statistics") or {}
        return (
            bool(doc.get("success")),
            int(stats.get("successful_expectations") or 0),
            int(stats.get("evaluated_expectations") or 0),
        )


def kept_results(directory: Path | None = None) -> list[KeptResult]:
    """Every kept result, newest first, read from the store's file names (no GX import)."""
    root = (directory or gx_dir()) / RESULTS
    found = []
    for path in root.rglob("*.json"):
        *suite_parts, run_name, run_time, _ = path.relative_to(root).parts
        try:
            when = dt.datetime.strptime(run_time, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
        except ValueError:
            continue  # not a result: GX's own bookkeeping
        found.append(
            KeptResult(
                suite=".".join(suite_parts),
                load_id=None if run_name == "civicflow" else run_name,
                run_time=when,
                page=Path(RESULTS, path.relative_to(root)).with_suffix(".html").as_posix(),
                path=path,
            )
        )
    return sorted(found, key=lambda r: r.run_time, reverse=True)


_building = threading.Lock()


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One builder at a time, across the threads and the processes of the api-server."""
    directory.mkdir(parents=True, exist_ok=True)
    with _building, open(directory / ".data_docs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_data_docs(directory: Path | None = None) -> Path:
    """Bring the Data Docs site up to date with the kept results; returns the site's folder.

    Only the pages of results not rendered yet are built, then the index; a site that is
    current costs a directory listing. Pages of the suites come from ``expectations/``.
    """
    directory = directory or gx_dir()
    site = directory / SITE
    with _exclusive(directory):
        newest = kept_results(directory)[:DOCS_LIMIT]
        missing = {r.page for r in newest if not (site / r.page).exists()}
        if (site / "index.html").exists() and not missing:
            return site
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        gx, context, _ = _context(str(directory))
        suites = [ExpectationSuiteIdentifier(name=name) for name in _add_suites(gx, context)]
        wanted = [
            key
            for key in context.validation_results_store.list_keys()
            if _page(key.to_tuple()) in missing
        ]
        wanted += [s for s in suites if not (site / _suite_page(s.name)).exists()]
        # Given no resource, GX would rebuild every page: the suites' stand in for the index.
        context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=wanted or suites)
    log.info("Data Docs: %d page(s) built in %s", len(wanted), site)
    return site


def _page(key: tuple[str, ...]) -> str:
    """A result's page under the site, from its key (suite parts, run name, run time, batch)."""
    return "/".join((RESULTS, *key)) + ".html"


def _suite_page(suite: str) -> str:
    return "expectations/" + suite.replace(".", "/") + ".html"


def _add_suites(gx: Any, context: Any) -> list[str]:
    """Every entity's suite, from ``expectations/``, in the context's (in-memory) suite store."""
    from civicflow.feeds import all_entities

    names = []
    have = {suite.name for suite in context.suites.all()}
    for entity in all_entities():
        doc = load_suite(entity)
        names.append(doc["name"])
        if doc["name"] not in have:
            context.suites.add(
                gx.ExpectationSuite(
                    name=doc["name"],
                    expectations=[
                        {"type": e["type"], "kwargs": e["kwargs"], "meta": e.get("meta", {})}
                        for e in doc["expectations"]
                    ],
                )
            )
    return names


_SCRIPT = re.compile(r"<script\b.*?</script>", re.IGNORECASE | re.DOTALL)
_REMOTE_STYLE = re.compile(r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>", re.IGNORECASE)
_REMOTE_LOGO = re.compile(r"\bsrc=\"https?://[^\"]*/(logo-long\.png)[^\"]*\"", re.IGNORECASE)
_FOOTER = re.compile(r"<footer\b.*?</footer>", re.IGNORECASE | re.DOTALL)  # a newsletter form
# What Bootstrap and Font Awesome gave the pages, as far as reading them needs.
OFFLINE_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 16px; color: #1d2430; }
.sticky, .sticky-top, footer { position: static !important; }
nav ol.breadcrumb { list-style: none; display: flex; gap: 8px; padding: 0; margin: 4px 0; }
table.table { border-collapse: collapse; margin: 4px 0 12px; }
table.table th, table.table td { border-top: 1px solid #dee2e6; padding: 4px 10px;
  text-align: left; vertical-align: top; }
.fas.fa-check-circle::before { content: "\\2714"; color: #2e7d32; font-style: normal; }
.fas.fa-times::before { content: "\\2718"; color: #c62828; font-style: normal; }
.text-danger { color: #c62828; }
.text-success { color: #2e7d32; }
.card:has(input[type=radio]), a[data-toggle="collapse"] { display: none; } /* need scripts */
"""


def offline_page(page: str, to_root: str) -> str:
    """A Data Docs page that fetches nothing from the internet and runs no script.

    GX's templates load Bootstrap, jQuery, Vega and icon fonts from CDNs, and its logo (with
    the context's id) from GX's servers. The validation and suite pages are plain HTML
    underneath: here the remote styles and every script (which need those libraries) are
    dropped, a few local rules stand in for Bootstrap's, and the logo is GX's local copy.
    ``to_root`` leads from the page to the site's root.
    """
    page = _FOOTER.sub("", _REMOTE_STYLE.sub("", _SCRIPT.sub("", page)))
    page = _REMOTE_LOGO.sub(f'src="{to_root}static/images/\\1"', page)
    return page.replace("</head>", f"<style>{OFFLINE_CSS}</style></head>", 1)
