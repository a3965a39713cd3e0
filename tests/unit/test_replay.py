"""The pure parts of a quarantine replay: reasons, the approval text, records kept in quarantine."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from civicflow.feeds.elderly_care import LEDGERS
from civicflow.feeds.health import SERVICE_RECORDS
from civicflow.parse import parse_record
from civicflow.pipeline import _quarantined
from civicflow.replay import ReasonCount, ReplaySummary, describe, reason_kind


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("unknown community '旧南海居委会' in street 440104001", "unknown community"),
        ("ambiguous community name '旧南海' in street 440104001", "ambiguous community name"),
        ("invalid ID number check digit", "invalid ID number check digit"),
        ("field visitors: not an integer ('many')", "field visitors: not an integer"),
        (
            "failed expect_column_values_to_be_between(participants)",
            "failed expect_column_values_to_be_between(participants)",
        ),
        ("unknown position 'NO-SUCH-POSITION'", "unknown position"),
        ("'odd' reason", "'odd' reason"),
    ],
)
def test_a_reason_kind_drops_the_value_it_names(reason, kind):
    assert reason_kind(reason) == kind


def test_records_read_back_from_quarantine_parse_as_they_did_when_fetched():
    """A replay parses the record kept in quarantine, JSON, not the payload: same values."""
    ledger_row = {
        "日期": dt.date(2026, 10, 5),
        "饭堂名称": "旧南海长者饭堂",
        "服务中心": None,
        "身份证号": "44010419420305123X",
        "姓名": "张三",
        "餐次": "午餐",
        "就餐方式": "配送上门",
        "补贴金额(元)": 8.5,
        "个人支付(元)": 3,
        "服务时长(小时)": None,
        "服务项目": None,
        "ledger": "2026-10_北京街_v2.xlsx",
        "sheet": "meals",
        "row_number": 7,
        "street": "北京街",
        "month": "2026-10",
        "version": 2,
        "published_at": "2026-11-03T10:00:00+08:00",
    }
    health_record = {
        "record_id": "HR202600000001",
        "id_no": "44010419420305123X",
        "name": "张三",
        "service_type": "HOME_VISIT",
        "service_time": "2026-10-05T09:30:00+08:00",
        "institution_code": "CHC001",
        "street": "北京街",
        "community": "旧南海居委会",
        "status": "completed",
        "updated_at": "2026-10-05T10:00:00+08:00",
        "details": {"systolic": 150},
        "surplus": [1, 2],
    }
    for entity, record in ((LEDGERS, ledger_row), (SERVICE_RECORDS, health_record)):
        kept = _quarantined(entity, record)
        assert json.loads(json.dumps(kept)) == kept  # what jsonb gives back
        (replayed, replayed_reasons), (fetched, reasons) = (
            parse_record(entity, kept),
            parse_record(entity, record),
        )
        assert replayed_reasons == reasons == []
        raw_only = {f.name for f in entity.fields if f.raw_only}
        assert {k: v for k, v in replayed.items() if k not in raw_only} == {
            k: v for k, v in fetched.items() if k not in raw_only
        }
    assert "details" not in _quarantined(SERVICE_RECORDS, health_record)  # stays in raw


def test_the_approval_text_says_what_is_open_and_what_a_replay_does():
    reasons = [
        ReasonCount("unknown community", 7, ("unknown community 'x|y' in street 1",), "r"),
        ReasonCount("invalid ID number check digit", 2, ("invalid ID number check digit",), "r"),
    ]
    preview = ReplaySummary(
        "health",
        "service_records",
        "dry_run",
        candidates=9,
        unchanged=2,
        source_rows=7,
        accepted_rows=6,
        quarantined_rows=1,
        inserted_rows=5,
        updated_rows=1,
        new_reasons={"ambiguous community name": 1},
    )
    text = describe("health", "service_records", reasons, preview, "core.fact_service")
    assert text.splitlines()[0] == "**health.service_records**: 9 open quarantined row(s) selected."
    assert "| unknown community | 7 | unknown community 'x\\|y' in street 1 |" in text
    assert "accepts **6** row(s) into `core.fact_service` (5 new, 1 changed)" in text
    assert "leaves 2 that still fail for the same reasons" in text
    assert "New reasons: ambiguous community name ×1" in text

    idle = ReplaySummary(
        "health", "service_records", "nothing_to_replay", candidates=2, unchanged=2
    )
    assert describe("health", "service_records", reasons[1:], idle).endswith(
        "A replay now would change nothing: all 2 still fail for the reasons they were "
        "quarantined with."
    )
    assert json.loads(json.dumps(preview.as_dict()))["new_reasons"] == preview.new_reasons
