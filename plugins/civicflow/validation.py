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
    run = SuiteRun(entity, load_id)
    outcomes = run.check(rows)
    run.finish()
    return outcomes


# What a kept result sums over a batch's chunks; its shares are worked out from them.
_COUNTS = ("element_count", "unexpected_count", "missing_count")


class SuiteRun:
    """The entity's suite run over one batch, a chunk of rows at a time.

    A batch too large to hold in memory is validated chunk by chunk: :meth:`check` gives
    each chunk's outcomes with its failing rows; :meth:`finish` gives the batch's totals
    and keeps one result for the whole batch (every expectation here judges rows one by
    one, so the batch's counts are the sums of its chunks').
    """

    def __init__(self, entity: Entity, load_id: str | None = None):
        self.entity, self.load_id = entity, load_id
        self.suite_doc = load_suite(entity)
        self.labels = [expectation_label(e) for e in self.suite_doc["expectations"]]
        self.first: Any = None  # the first chunk's GX result, its row details dropped
        self.chunks = 0
        self.totals = [dict.fromkeys(_COUNTS, 0) for _ in self.labels]
        self.successes = [True] * len(self.labels)
        self.reported: list[set[str]] = [set() for _ in self.labels]  # the details GX gives
        self.passed_unchecked = 0
        self._gx: Any = None

    def check(self, rows: list[dict[str, Any]]) -> list[ExpectationOutcome]:
        """Validate one chunk; each outcome's ``failing_rows`` are positions in ``rows``."""
        if not rows:
            return [ExpectationOutcome(label, True, 0, 0.0, ()) for label in self.labels]
        import pandas as pd

        gx, _, datasource = self._gx = _context(str(gx_dir()))
        # Only the columns the suite reads: building and hashing the others costs time.
        checked = {e["kwargs"].get("column") for e in self.suite_doc["expectations"]}
        columns = [f.name for f in self.entity.fields if f.name in checked]
        frame = pd.DataFrame.from_records(
            [[row[c] for c in columns] for row in rows], columns=columns
        )
        asset_name = f"{self.entity.qualified_name}"
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
            name=self.suite_doc["name"],
            expectations=[
                {"type": e["type"], "kwargs": e["kwargs"], "meta": e.get("meta", {})}
                for e in self.suite_doc["expectations"]
            ],
        )
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
        outcomes = []
        for position, r in enumerate(result.results):
            config = r.expectation_config
            label = expectation_label({"type": config.type, "kwargs": config.kwargs})
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"{self.entity.qualified_name}: expectation {label} could not run: "
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
            if label != self.labels[position]:
                raise RuntimeError(f"{self.entity.qualified_name}: GX reordered the suite")
            self.successes[position] = self.successes[position] and bool(r.success)
            self.reported[position].update(k for k in details if k in KEPT_DETAILS)
            for count in _COUNTS:
                self.totals[position][count] += int(details.get(count) or 0)
        if self.first is None:
            self.first = _without_rows(result)
        self.chunks += 1
        return outcomes

    def passed(self, rows: int) -> None:
        """Count ``rows`` that passed the whole suite before and were not checked again.

        Only for a suite whose every expectation is on a column expected not null (see
        ``pipeline.verdict_fingerprint``): such rows are present and as expected in each.
        """
        self.passed_unchecked += rows
        for totals in self.totals:
            totals["element_count"] += rows

    def finish(self) -> list[ExpectationOutcome]:
        """The batch's outcomes (no failing rows); keeps its result for the Data Docs."""
        outcomes = []
        for label, success, totals in zip(self.labels, self.successes, self.totals, strict=True):
            shares = _shares(totals)
            outcomes.append(
                ExpectationOutcome(
                    label, success, totals["unexpected_count"], shares["unexpected_percent"], ()
                )
            )
        if self.chunks:
            _, context, _ = self._gx
            keep_result(context, self.entity, self._combined(), self.load_id)
        return outcomes

    def _combined(self) -> Any:
        """One GX result for the batch: the chunks' results with their counts summed."""
        if self.chunks == 1 and not self.passed_unchecked:
            return self.first
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResult,
        )

        first = self.first
        results = [
            ExpectationValidationResult(
                success=success,
                expectation_config=r.expectation_config,
                result={k: v for k, v in {**totals, **_shares(totals)}.items() if k in reported},
                meta=r.meta,
                exception_info=r.exception_info,
            )
            for r, success, totals, reported in zip(
                first.results, self.successes, self.totals, self.reported, strict=True
            )
        ]
        succeeded = sum(self.successes)
        evaluated = len(self.successes)
        return ExpectationSuiteValidationResult(
            success=all(self.successes),
            suite_name=first.suite_name,
            statistics={
                "evaluated_expectations": evaluated,
                "successful_expectations": succeeded,
                "unsuccessful_expectations": evaluated - succeeded,
                "success_percent": 100.0 * succeeded / evaluated if evaluated else None,
            },
            batch_id=first.batch_id,
            meta={
                **first.meta,
                "civicflow_chunks": self.chunks,
                "civicflow_rows_passed_before": self.passed_unchecked,
            },
            results=results,
        )


def _shares(totals: dict[str, int]) -> dict[str, float | None]:
    """GX's percentages of a column expectation, from its element, missing, unexpected counts."""
    elements, missing, unexpected = (
        totals["element_count"],
        totals["missing_count"],
        totals["unexpected_count"],
    )
    present = elements - missing
    return {
        "unexpected_percent": 100.0 * unexpected / present if present else 0.0,
        "unexpected_percent_total": 100.0 * unexpected / elements if elements else 0.0,
        "unexpected_percent_nonmissing": 100.0 * unexpected / present if present else 0.0,
        "missing_percent": 100.0 * missing / elements if elements else 0.0,
    }


# --- Data Docs ---------------------------------------------------------------------------------


def keep_result(context: Any, entity: Entity, result: Any, load_id: str | None) -> Any:
    """Store ``result`` without row values in the context's results store; returns its key."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_name=load_id or "civicflow", run_time=dt.datetime.now(dt.UTC))
    kept = _without_rows(
        result,
        meta={
            **result.meta,
            "run_id": run_id,
            "validation_time": run_id.run_time,
            "civicflow": {"feed": entity.feed, "entity": entity.name, "load_id": load_id},
        },
    )
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=run_id,
        batch_identifier=load_id or entity.qualified_name,
    )
    context.validation_results_store.store_validation_results(kept, key)
    return key


def _without_rows(result: Any, meta: dict[str, Any] | None = None) -> Any:
    """A GX result with only counts and shares left in each expectation's details."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

    return ExpectationSuiteValidationResult(
        success=result.success,
        suite_name=result.suite_name,
        statistics=result.statistics,
        batch_id=result.batch_id,
        meta=result.meta if meta is None else meta,
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
