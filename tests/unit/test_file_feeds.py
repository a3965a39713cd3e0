"""Decoding the file feeds: CSV snapshots and Excel ledgers, and refusing what is not whole."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import Workbook

from civicflow.feeds.civil_affairs import categories, decode_snapshot, pending_snapshots
from civicflow.feeds.elderly_care import SHEETS, decode_ledger, due_ledgers, months
from civicflow.feeds.positions import FeedFormatError
from civicflow.spec import Reject, Window

HEADER = "身份证号,姓名,性别,出生日期,街道,社区,居住地址,联系电话,人员类别,登记状态,更新时间"
ROW = (
    '11010519491231002X,王芳,女,1949/12/31,北京街,旧南海,"北京街1号,东座",020-83331234,'
    "高龄老人;独居老人,在册,2026-11-20 14:03:11"
)
SNAPSHOT = {"name": "residents_20261126.csv", "snapshot_date": "2026-11-26", "rows": 1}


def test_a_snapshot_is_gb18030_csv_with_crlf_and_quoting():
    body = f"{HEADER}\r\n{ROW}\r\n".encode("gb18030")
    [record] = decode_snapshot(body, SNAPSHOT)["records"]
    assert record["姓名"] == "王芳" and record["居住地址"] == "北京街1号,东座"
    assert record["snapshot_date"] == "2026-11-26"


def test_a_snapshot_with_other_rows_than_its_index_says_is_refused():
    body = f"{HEADER}\r\n{ROW}\r\n{ROW}\r\n".encode("gb18030")
    with pytest.raises(FeedFormatError, match="2 data rows, the index says 1"):
        decode_snapshot(body, SNAPSHOT)
    with pytest.raises(FeedFormatError, match="not GB18030"):
        decode_snapshot(b"\x81\x20" * 10, SNAPSHOT)


def test_categories_take_both_separators_and_refuse_unknown_ones():
    assert (
        categories("独居老人、高龄老人")
        == categories("高龄老人;独居老人")
        == ["高龄老人", "独居老人"]
    )
    assert categories(None) == categories("") == []
    with pytest.raises(Reject, match="unknown category"):
        categories("高龄老人;富豪")


def test_only_snapshots_after_the_watermark_and_not_after_the_run_are_due():
    exports = [{"snapshot_date": dt.date(2026, 11, d), "name": str(d)} for d in range(20, 27)]
    first = Window(dt.date(2026, 11, 24), dt.date(2026, 11, 24))
    assert [e["name"] for e in pending_snapshots(exports, first)] == ["24"]
    later = Window(dt.date(2026, 11, 26), dt.date(2026, 11, 26), watermark="2026-11-22")
    assert [e["name"] for e in pending_snapshots(exports, later)] == ["23", "24", "25", "26"]
    capped = Window(later.start_date, later.end_date, later.watermark, {"max_snapshots_per_run": 2})
    assert [e["name"] for e in pending_snapshots(exports, capped)] == ["23", "24"]


def workbook(total: bool = True, drop: str | None = None, serial_date: bool = False) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for sheet, (_, headers) in SHEETS.items():
        ws = book.create_sheet(sheet)
        ws.append([f"北京街2026年10月{sheet}服务台账"])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(headers))
        ws.append([h for h in headers if h != drop])
        day = 46300 if serial_date else dt.datetime(2026, 10, 5)
        if sheet == "长者饭堂":
            ws.append([day, "北京街长者饭堂", "11010519491231002X", "王芳", "午餐", "堂食", 8, 5])
            ws.append(
                ["2026/10/6", "北京街长者饭堂", "11010519491231002X", "王芳", "早餐", "堂食", 4, 2]
            )
        else:
            ws.append(
                ["2026-10-07", "北京街长者日间照料中心", "11010519491231002X", "王芳", 2.5, "助浴"]
            )
        if total:
            ws.append(["合计"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


LEDGER = {"file": "2026-10_北京街_v1.xlsx", "street": "北京街", "month": "2026-10", "version": 1,
          "published_at": "2026-11-03T10:00:00+08:00"}  # fmt: skip


def test_a_ledger_gives_both_sheets_data_rows_without_title_header_or_total():
    records = decode_ledger(workbook(), LEDGER)["records"]
    assert [(r["sheet"], r["row_number"]) for r in records] == [
        ("meals", 3),
        ("meals", 4),
        ("day_care", 3),
    ]
    assert records[0]["日期"] == dt.date(2026, 10, 5) and records[1]["日期"] == "2026/10/6"
    assert records[2]["服务时长(小时)"] == 2.5 and records[2]["餐次"] is None
    serial = decode_ledger(workbook(serial_date=True), LEDGER)["records"][0]
    assert serial["日期"] == dt.date(2026, 10, 5)  # an Excel serial number without a date format


def test_a_ledger_without_its_total_row_or_a_column_is_refused():
    with pytest.raises(FeedFormatError, match="no 合计 row"):
        decode_ledger(workbook(total=False), LEDGER)
    with pytest.raises(FeedFormatError, match="no column"):
        decode_ledger(workbook(drop="餐次"), LEDGER)
    with pytest.raises(FeedFormatError, match="not an Excel workbook"):
        decode_ledger(b"PK\x03\x04 not really", LEDGER)


def test_the_newest_version_of_each_street_month_published_after_the_watermark_is_due():
    def ledger(street: str, version: int, day: int) -> dict:
        published = dt.datetime(2026, 11, day, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        return {"month": "2026-10", "street": street, "version": version, "published_at": published}

    listed = [ledger("北京街", 1, 3), ledger("北京街", 2, 12), ledger("人民街", 1, 3)]
    assert [(x["street"], x["version"]) for x in due_ledgers(listed, None)] == [
        ("人民街", 1),
        ("北京街", 2),
    ]
    assert [x["version"] for x in due_ledgers(listed, "2026-11-03T10:00:00+08:00")] == [2]
    assert due_ledgers(listed, "2026-11-12T10:00:00+08:00") == []
    window = Window(dt.date(2026, 1, 20), dt.date(2026, 2, 1), options={"lookback_months": 2})
    assert months(window) == ["2025-12", "2026-01", "2026-02"]


def test_categories_read_again_are_fresh_lists_and_refused_again():
    first = categories("高龄老人、独居老人")
    first.append("changed")
    assert categories("高龄老人、独居老人") == ["高龄老人", "独居老人"]
    for _ in range(2):
        with pytest.raises(Reject, match="unknown category"):
            categories("高龄老人;外星人")


def test_divisions_resolve_spellings_with_spaces_and_refuse_ambiguous_ones():
    from civicflow.feeds.positions import DivisionIndex

    index = DivisionIndex(
        [
            {"kind": "street", "name": "北京街", "street_code": "S1"},
            {"kind": "street", "name": "北京 ", "street_code": "S1"},
            {"kind": "street", "name": "东山", "street_code": "S2"},
            {"kind": "street", "name": "东山", "street_code": "S3"},
            {"kind": "community", "name": "旧南海", "street_code": "S1", "community_code": "C1"},
        ]
    )
    assert index.street("北京街") == index.street(" 北京 ") == "S1"
    assert index.community("S1", " 旧南海") == "C1"
    with pytest.raises(Reject, match="ambiguous street"):
        index.street("东山")
    with pytest.raises(Reject, match="unknown community"):
        index.community("S2", "旧南海")
