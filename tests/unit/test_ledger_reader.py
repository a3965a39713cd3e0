"""The ledger reader (calamine) gives the records the openpyxl reader it replaced gave.

``openpyxl_decode`` is the former reading, kept as the reference: the simulator's ledgers
and hand-made ones decode to equal records (a whole number may now be an int where openpyxl
gave a float: ``12 == 12.0``), and broken workbooks fail with the same messages.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from civicflow.feeds.elderly_care import SHEETS, TOTAL_ROW, _cell, decode_ledger
from civicflow.feeds.positions import FeedFormatError
from civicflow.simulator.elderly_care import ElderlyCareFeed
from civicflow.simulator.people import residents
from civicflow.simulator.world import build_district

LEDGER = {"file": "2026-10_北京街_v1.xlsx", "street": "北京街", "month": "2026-10", "version": 1,
          "published_at": "2026-11-03T10:00:00+08:00"}  # fmt: skip
PERSON = ("北京街长者饭堂", "11010519491231002X", "王芳")


def openpyxl_rows(body: bytes) -> dict[str, list[tuple]]:
    """Every sheet's data rows as openpyxl reads them (title, header and total left out)."""
    book = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    out = {}
    for sheet in SHEETS:
        rows = list(book[sheet].iter_rows(values_only=True))[2:]
        ends = [i for i, r in enumerate(rows) if r and str(r[0]).strip() == TOTAL_ROW]
        out[sheet] = [
            tuple(_cell(v) for v in r)
            for r in rows[: ends[0]]
            if any(v is not None and str(v).strip() for v in r)
        ]
    book.close()
    return out


def decoded_rows(body: bytes, meta: Mapping[str, Any] = LEDGER) -> dict[str, list[tuple]]:
    """The data rows decode_ledger gives, in each sheet's header order."""
    header = {sheet: headers for sheet, (_, headers) in SHEETS.items()}
    area = {a: sheet for sheet, (a, _) in SHEETS.items()}
    out: dict[str, list[tuple]] = {sheet: [] for sheet in SHEETS}
    for r in decode_ledger(body, meta)["records"]:
        sheet = area[r["sheet"]]
        out[sheet].append(tuple(r[h] for h in header[sheet]))
    return out


def book(meals: list[list[Any]], *, total: bool = True, sheets=tuple(SHEETS), headers=None):
    """A ledger written by openpyxl: a merged title, the header, the rows, the total row."""
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        ws = wb.create_sheet(sheet)
        header = list((headers or {}).get(sheet, SHEETS[sheet][1]))
        ws.append([f"北京街2026年10月{sheet}服务台账"])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(header))
        ws.append(header)
        rows = meals if sheet == "长者饭堂" else [[dt.datetime(2026, 10, 7), *PERSON, 2.5, "助浴"]]
        for row in rows:
            ws.append(row)
        if total:
            ws.append([TOTAL_ROW])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def feed() -> ElderlyCareFeed:
    district = build_district()
    return ElderlyCareFeed(
        district, residents(district, 0.005), 0.005, dt.date(2026, 11, 27), district.seed
    )


def test_the_simulators_ledgers_read_as_openpyxl_read_them(feed: ElderlyCareFeed):
    feed.republish(1, dt.datetime(2026, 11, 20, tzinfo=dt.UTC))  # a corrected second version
    listed = [x for m in (feed.months[0], feed.months[-1]) for x in feed.listing(m)]
    rows = 0
    for ledger in listed:
        body = feed.workbook(ledger["file"])
        assert decoded_rows(body, ledger) == openpyxl_rows(body), ledger["file"]
        rows += sum(map(len, openpyxl_rows(body).values()))
    assert rows > 1000


def test_dates_numbers_blank_rows_and_empty_cells():
    meals = [
        [dt.datetime(2026, 10, 5), *PERSON, "午餐", "堂食", 8, 5],
        [],  # a blank row between data rows
        [46302, *PERSON, "早餐", "堂食", 4.5, None],  # a date without a date format; an empty cell
        ["２０２６年10月6日", "  北京街长者饭堂 ", PERSON[1], PERSON[2], "晚餐", "送餐", 12.0, 0],
        [0.5, *PERSON, "午餐", "堂食", 8, 5],  # a serial that is no day
    ]
    body = book(meals)
    decoded = decoded_rows(body)["长者饭堂"]
    assert decoded[0] == openpyxl_rows(body)["长者饭堂"][0]
    assert [r[0] for r in decoded] == [
        dt.date(2026, 10, 5), dt.date(2026, 10, 7), "２０２６年10月6日", 0.5,
    ]  # fmt: skip
    assert decoded[1][-1] is None and decoded[1][-2] == 4.5
    assert type(decoded[0][-2]) is int and type(decoded[2][-2]) is int  # 8 and 12.0 alike
    assert decoded[2][1] == "  北京街长者饭堂 "  # cleaning is parsing's work
    numbers = [r["row_number"] for r in decode_ledger(body, LEDGER)["records"]]
    assert numbers[:4] == [3, 5, 6, 7]  # the blank row 4 is skipped, yet counted


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"PK\x03\x04 not a zip", r"2026-10_北京街_v1\.xlsx: not an Excel workbook"),
        (b"name,id\n", r"not an Excel workbook"),
        (book([], total=False), r"sheet 长者饭堂: no 合计 row; truncated\?"),
        (book([], sheets=("长者饭堂",)), r"no sheet '日间照料'"),
        (book([], headers={"长者饭堂": ["日期", "姓名"]}), r"sheet 长者饭堂: no column\(s\) "),
    ],
)
def test_a_broken_ledger_is_refused_with_its_file_and_reason(body: bytes, message: str):
    with pytest.raises(FeedFormatError, match=message):
        decode_ledger(body, LEDGER)
