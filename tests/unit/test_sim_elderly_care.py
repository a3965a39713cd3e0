"""The elderly-care ledger simulator: the workbooks' format, and truth() against what they hold.

The workbooks are read back with openpyxl and cleaned with the project's own
ID and date rules, independently of how the simulator wrote them.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from civicflow.identity import birth_date_of, resident_id
from civicflow.parse import to_date
from civicflow.simulator.elderly_care import ElderlyCareFeed
from civicflow.simulator.people import residents
from civicflow.simulator.world import District, build_district
from civicflow.spec import Reject

SHANGHAI = ZoneInfo("Asia/Shanghai")
SCALE = 0.002
AS_OF = dt.date(2026, 11, 27)
MEALS_HEADER = (
    "日期",
    "饭堂名称",
    "身份证号",
    "姓名",
    "餐次",
    "就餐方式",
    "补贴金额(元)",
    "个人支付(元)",
)
DAY_CARE_HEADER = ("日期", "服务中心", "身份证号", "姓名", "服务时长(小时)", "服务项目")
TEXT_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{4}/\d{1,2}/\d{1,2}$")


@pytest.fixture(scope="module")
def district() -> District:
    return build_district()


def make_feed(district: District, as_of: dt.date = AS_OF) -> ElderlyCareFeed:
    return ElderlyCareFeed(district, residents(district, SCALE), SCALE, as_of, district.seed)


@pytest.fixture(scope="module")
def feed(district: District) -> ElderlyCareFeed:
    """Never republished: tests that publish make their own."""
    return make_feed(district)


def read(data: bytes) -> dict[str, Any]:
    """Each sheet's title, header, data rows and total row, as openpyxl reads them."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    out: dict[str, Any] = {"sheets": book.sheetnames}
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows())
        out[sheet.title] = {
            "merged": [str(r) for r in sheet.merged_cells.ranges],
            "title": rows[0][0].value,
            "header": tuple(c.value for c in rows[1]),
            "data": rows[2:-1],
            "total": tuple(c.value for c in rows[-1]),
        }
    return out


def number(value: Any) -> Decimal:
    assert isinstance(value, int | float), value
    return Decimal(str(value))


def newest(feed: ElderlyCareFeed, month: str) -> dict[str, dict[str, Any]]:
    """The newest listed version of each street's ledger of ``month``."""
    out: dict[str, dict[str, Any]] = {}
    for entry in feed.listing(month):
        if entry["street"] not in out or entry["version"] > out[entry["street"]]["version"]:
            out[entry["street"]] = entry
    return out


def load(feed: ElderlyCareFeed, months: list[str]) -> dict[str, Any]:
    """What a load of the newest ledgers of ``months`` makes of the workbooks, counted by hand."""
    sheets = {"长者饭堂": "meals", "日间照料": "day_care"}
    out: dict[str, Any] = {
        key: {"rows": 0, "loaded": 0, "quarantined": 0, "id_spellings": 0, "text_dates": 0}
        for key in sheets.values()
    }
    amount, hours, by_ledger = Decimal(0), Decimal(0), {}
    for month in months:
        for street, entry in newest(feed, month).items():
            book = read(feed.workbook(entry["file"]))
            counted = {}
            for name, key in sheets.items():
                data = book[name]["data"]
                counted[key] = len(data)
                out[key]["rows"] += len(data)
                for row in data:
                    raw_id = row[2].value
                    try:
                        canonical = resident_id(raw_id, today=AS_OF)
                    except Reject:
                        out[key]["quarantined"] += 1
                        continue
                    out[key]["loaded"] += 1
                    out[key]["id_spellings"] += raw_id != canonical
                    out[key]["text_dates"] += isinstance(row[0].value, str)
                    if key == "meals":
                        amount += number(row[6].value) + number(row[7].value)
                    else:
                        hours += number(row[4].value)
            by_ledger[f"{month}_{street}"] = {"version": entry["version"], **counted}
    return {**out, "amount_yuan": amount, "hours": hours, "by_ledger": by_ledger}


def test_the_year_is_the_twelve_months_before_as_of_and_each_month_is_listed(feed, district):
    assert feed.months[0] == "2025-11"
    assert feed.months[-1] == "2026-10"
    assert len(feed.months) == 12
    listing = feed.listing("2026-10")
    firsts = [e for e in listing if e["version"] == 1]
    assert [e["street"] for e in firsts] == [s.aliases[0] for s in district.streets]
    for e in firsts:
        assert e["file"] == f"2026-10_{e['street']}_v1.xlsx"
        assert e["month"] == "2026-10"
        assert e["published_at"] == "2026-11-03T10:00:00+08:00"
    order = [s.aliases[0] for s in district.streets]
    keys = [(order.index(e["street"]), e["version"]) for e in listing]
    assert keys == sorted(keys)
    assert feed.listing("2026-11") == []
    assert feed.workbook("2026-10_nowhere_v1.xlsx") is None


def test_about_fifteen_percent_of_ledgers_have_a_second_version_published_before_as_of(feed):
    seconds = [e for m in feed.months for e in feed.listing(m) if e["version"] == 2]
    assert 10 <= len(seconds) <= 60  # of 216
    for e in seconds:
        published = dt.datetime.fromisoformat(e["published_at"])
        due = dt.date.fromisoformat(f"{e['month']}-01") + dt.timedelta(days=31)
        assert (published.year, published.month) == (due.year, due.month)
        assert 8 <= published.day <= 20
        assert published < dt.datetime.combine(AS_OF, dt.time(), SHANGHAI)
        assert e["file"].replace("_v2", "_v1") in {x["file"] for x in feed.listing(e["month"])}


def test_a_workbook_has_a_title_a_header_data_rows_and_a_total(feed, district):
    street = district.streets[1]
    month = "2026-09"
    book = read(feed.workbook(f"{month}_{street.aliases[0]}_v1.xlsx"))
    assert book["sheets"] == ["长者饭堂", "日间照料"]
    canteens = {
        p.name
        for p in district.positions
        if p.level == "community"
        and p.street is not None
        and p.street.code == street.code
        and p.status == "open"
        and "长者饭堂" in p.integrated_platforms
    } | {f"{street.aliases[0]}长者饭堂"}
    people = {r.id_no: r for r in residents(district, SCALE)}
    cutoff = dt.date(2026 - 60, 9, 1)
    for name, header, title in (
        ("长者饭堂", MEALS_HEADER, "北京街2026年9月长者饭堂服务台账"),
        ("日间照料", DAY_CARE_HEADER, "北京街2026年9月日间照料服务台账"),
    ):
        sheet = book[name]
        assert sheet["title"] == title
        assert sheet["merged"] == [f"A1:{'ABCDEFGH'[len(header) - 1]}1"]
        assert sheet["header"] == header
        assert len(sheet["data"]) >= 3
        assert sheet["total"][0] == "合计"
        for row in sheet["data"]:
            when = row[0]
            if isinstance(when.value, str):
                assert TEXT_DATE.match(when.value)
            else:
                assert isinstance(when.value, dt.datetime)
                assert when.is_date
            assert to_date(when.value).strftime("%Y-%m") == month
            try:
                person = people[resident_id(row[2].value, today=AS_OF)]
            except Reject:
                continue
            assert person.name == row[3].value
            assert person.street.code == street.code
            assert birth_date_of(person.id_no) <= cutoff  # 60 or older
        data = [[c.value for c in row] for row in sheet["data"]]
        if name == "长者饭堂":
            assert {r[1] for r in data} <= canteens
            assert {r[4] for r in data} <= {"早餐", "午餐", "晚餐"}
            assert {r[5] for r in data} <= {"堂食", "配送上门"}
            for column, low, high in ((6, 5, 12), (7, 3, 15)):
                values = [number(r[column]) for r in data]
                assert all(low <= v <= high and v == v.quantize(Decimal("0.01")) for v in values)
                assert number(sheet["total"][column]) == sum(values)
        else:
            assert {r[1] for r in data} == {f"{street.aliases[0]}长者日间照料中心"}
            assert {r[5] for r in data} <= {"康复训练", "助浴", "文娱活动", "健康监测", "助餐"}
            values = [number(r[4]) for r in data]
            assert all(Decimal("0.5") <= v <= 8 and (v * 2) % 1 == 0 for v in values)
            assert number(sheet["total"][4]) == sum(values)


def test_truth_is_what_the_newest_workbooks_of_the_month_hold(feed):
    months = ["2025-11"]  # the first month: it has every kind of dirt, and second versions
    truth = feed.truth(months)
    loaded = load(feed, months)
    for key in ("meals", "day_care"):
        assert loaded[key]["quarantined"] >= 1
        assert loaded[key]["id_spellings"] >= 1
        assert truth[key]["rows"] == loaded[key]["rows"]
        assert truth[key]["loaded"] == loaded[key]["loaded"]
        assert truth[key]["quarantined"] == {"invalid_check_digit": loaded[key]["quarantined"]}
        assert truth[key]["id_spellings"] == loaded[key]["id_spellings"]
        assert truth[key]["text_dates"] == loaded[key]["text_dates"]
    assert Decimal(truth["amount_yuan"]) == loaded["amount_yuan"]
    assert Decimal(truth["hours"]) == loaded["hours"]
    assert {
        k: {x: v[x] for x in ("version", "meals", "day_care")}
        for k, v in truth["by_ledger"].items()
    } == loaded["by_ledger"]
    listed = [e for m in months for e in feed.listing(m)]
    assert truth["ledgers"] == len(loaded["by_ledger"]) == 18
    assert truth["superseded_files"]
    assert len(truth["superseded_files"]) == len(listed) - 18
    newest_files = {e["file"] for m in months for e in newest(feed, m).values()}
    assert set(truth["superseded_files"]) == {e["file"] for e in listed} - newest_files
    assert truth["republished"] == []


def test_a_second_version_drops_two_clean_rows_changes_one_and_adds_one(feed):
    second = next(e for m in reversed(feed.months) for e in feed.listing(m) if e["version"] == 2)
    before = read(feed.workbook(second["file"].replace("_v2", "_v1")))["长者饭堂"]["data"]
    after = read(feed.workbook(second["file"]))["长者饭堂"]["data"]
    old = Counter(tuple(c.value for c in row) for row in before)
    new = Counter(tuple(c.value for c in row) for row in after)
    gone, came = old - new, new - old
    assert len(after) == len(before) - 1
    assert sum(gone.values()) == 3  # two removed, and the changed row as it was
    assert sum(came.values()) == 2  # the changed row as it is, and the added one
    changed = [(g, c) for g in gone for c in came if g[:6] == c[:6] and g[7] == c[7]]
    assert len(changed) == 1
    assert changed[0][0][6] != changed[0][1][6]  # 补贴金额(元)
    for row in [*gone, *came]:
        assert resident_id(row[2], today=AS_OF) == row[2]  # clean: canonical ID, Excel date
        assert isinstance(row[0], dt.datetime)


def test_republish_publishes_a_next_version_of_the_latest_ledgers(district):
    feed = make_feed(district)
    at = dt.datetime(2026, 11, 28, 9, 30, tzinfo=SHANGHAI)
    before = newest(feed, "2026-10")
    files = feed.republish(2, at)
    streets = [s.aliases[0] for s in district.streets[:2]]
    assert files == [f"2026-10_{s}_v{before[s]['version'] + 1}.xlsx" for s in streets]
    listing = {e["file"]: e for e in feed.listing("2026-10")}
    for file in files:
        assert listing[file]["published_at"] == "2026-11-28T09:30:00+08:00"
    truth = feed.truth(["2026-10"])
    assert truth["republished"] == files
    assert {before[s]["file"] for s in streets} <= set(truth["superseded_files"])
    for s, file in zip(streets, files, strict=True):
        ledger = truth["by_ledger"][f"2026-10_{s}"]
        assert ledger["version"] == before[s]["version"] + 1
        book = read(feed.workbook(file))
        previous = read(feed.workbook(before[s]["file"]))
        assert len(book["长者饭堂"]["data"]) == ledger["meals"]
        assert ledger["meals"] == len(previous["长者饭堂"]["data"]) - 1
        assert len(book["日间照料"]["data"]) == ledger["day_care"] >= 3
    assert feed.truth(["2026-09"])["republished"] == []
    again = feed.republish(1, at + dt.timedelta(hours=1))
    assert again == [f"2026-10_{streets[0]}_v{before[streets[0]]['version'] + 2}.xlsx"]


def test_a_year_has_every_kind_of_dirt_and_the_volumes_of_its_scale(feed):
    truth = feed.truth()
    assert truth["ledgers"] == 12 * 18
    assert 4_000 <= truth["meals"]["rows"] <= 6_000  # 2.5 million a year at scale 1.0
    assert 12 * 18 * 3 <= truth["day_care"]["rows"] <= 1_500  # 300,000, at least 3 a ledger
    for key in ("meals", "day_care"):
        counted = truth[key]
        assert counted["quarantined"]["invalid_check_digit"] >= 1
        assert counted["loaded"] == counted["rows"] - counted["quarantined"]["invalid_check_digit"]
        assert counted["id_spellings"] >= 1
        assert 0.2 * counted["rows"] <= counted["text_dates"] <= 0.4 * counted["rows"]
    assert truth["meals"]["quarantined"]["invalid_check_digit"] <= 0.02 * truth["meals"]["rows"]
    assert sum(v["version"] for v in truth["by_ledger"].values()) > 12 * 18
    assert Decimal(truth["amount_yuan"]) > 0 and Decimal(truth["hours"]) > 0


def test_the_same_inputs_give_the_same_workbooks_and_truth(district, feed):
    again = make_feed(district)
    file = feed.listing("2026-03")[4]["file"]
    assert again.workbook(file) == feed.workbook(file)
    assert again.truth(["2026-03"]) == feed.truth(["2026-03"])


def test_a_month_is_listed_only_once_its_ledgers_are_published(district):
    early = make_feed(district, dt.date(2026, 11, 3))
    assert early.listing("2026-10") == []  # published at 10:00 on the 3rd
    assert early.truth(["2026-10"])["ledgers"] == 0
    assert len(early.listing("2026-09")) >= 18
