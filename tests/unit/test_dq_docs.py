"""Validation results kept for the Data Docs, and the Data Docs built from them (real GX)."""

from __future__ import annotations

import datetime as dt
import time

from civicflow import validation
from civicflow.feeds.positions import VISITS

BAD_CODE = "NOT A CODE 4711"  # fails the position_code pattern: a value GX would list


def rows(n: int = 50) -> list[dict]:
    day = dt.date(2026, 11, 26)
    out = [
        {"position_code": f"P{i:03d}", "date": day, "visitors": i, "activities_held": 1,
         "participants": 2}
        for i in range(n)
    ]  # fmt: skip
    out[3]["position_code"] = BAD_CODE
    out[7]["visitors"] = -4711
    return out


def test_a_kept_result_has_counts_and_never_a_value(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVICFLOW_GX_DIR", str(tmp_path))
    outcomes = validation.validate_rows(VISITS, rows(), load_id="load-1")
    failing = {o.label: o.failing_rows for o in outcomes if not o.success}
    assert failing == {
        "expect_column_values_to_match_regex(position_code)": (3,),
        "expect_column_values_to_be_between(visitors)": (7,),
    }  # the pipeline still gets every failing row
    (kept,) = validation.kept_results()
    assert (kept.suite, kept.load_id) == ("positions.visits", "load-1")
    assert kept.page.startswith("validations/positions/visits/load-1/")
    assert kept.outcome() == (False, 7, 9)
    text = kept.path.read_text(encoding="utf-8")
    assert '"unexpected_count": 1' in text and '"element_count": 50' in text
    assert BAD_CODE not in text and "4711" not in text and "unexpected_index_list" not in text


def test_data_docs_are_built_once_for_each_new_result(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVICFLOW_GX_DIR", str(tmp_path))
    assert validation.kept_results() == []
    validation.validate_rows(VISITS, rows(), load_id="load-1")
    site = validation.build_data_docs()
    (first,) = validation.kept_results()
    page = site / first.page
    assert page.is_file() and (site / "expectations/positions/visits.html").is_file()
    html = page.read_text(encoding="utf-8")
    assert "positions.visits" in html and BAD_CODE not in html and "-4711" not in html
    built = page.stat().st_mtime_ns

    started = time.perf_counter()
    assert validation.build_data_docs() == site
    assert time.perf_counter() - started < 0.5  # current: nothing to build
    assert page.stat().st_mtime_ns == built

    validation.validate_rows(VISITS, rows(), load_id="load-2")
    validation.build_data_docs()
    newest, older = validation.kept_results()
    assert older == first
    assert newest.load_id == "load-2" and (site / newest.page).is_file()
    assert page.stat().st_mtime_ns == built  # the older page is not rendered again


def test_nothing_validated_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVICFLOW_GX_DIR", str(tmp_path))
    assert all(o.success for o in validation.validate_rows(VISITS, []))
    assert validation.kept_results() == []


def test_the_gx_folder_follows_the_local_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CIVICFLOW_GX_DIR", raising=False)
    monkeypatch.delenv("CIVICFLOW_LOCAL_DIR", raising=False)
    assert validation.gx_dir() == validation.PROJECT_ROOT / ".local" / "gx"
    monkeypatch.setenv("CIVICFLOW_LOCAL_DIR", str(tmp_path / "local"))
    assert validation.gx_dir() == tmp_path / "local" / "gx"
    monkeypatch.setenv("CIVICFLOW_GX_DIR", str(tmp_path / "gx"))
    assert validation.gx_dir() == tmp_path / "gx"
