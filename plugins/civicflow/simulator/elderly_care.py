"""The elderly-care department's monthly service ledgers: Excel workbooks, with their dirt.

Every street hands in one workbook a month with two sheets, 长者饭堂 (canteen
meals) and 日间照料 (day-care visits), published on the 3rd of the next month
at 10:00. About 15% of street-months are corrected and republished as version
2 between the 8th and the 20th; the newest version replaces every row of that
street and month (rows carry no ids), and the listing still shows the older
versions. About 2.5 million meals and 300,000 day-care visits a year at scale
1.0, by residents of the street aged 60 or more, over the twelve calendar
months before ``as_of``'s month.

Besides the shape of a hand-made workbook (a merged title row, the header on
row 2, a ``合计`` total row that is no data), dirt at fixed rates, each data
row at most one kind, so the ground truth is exact: ID numbers with a wrong
check digit (0.5%, quarantined by a load), ID numbers in other spellings (3%,
the same person after cleaning) and dates written as text, ``2026-10-05`` or
``2026/10/5``, instead of Excel dates (30%, valid). A correction removes two
clean rows, changes the amount or hours of another and adds one clean row.

Rows are drawn per street-month (and corrected per version) from their own
seeds, so a workbook is built only when it is asked for, the same file always
has the same bytes, and ``truth`` counts the very rows the workbooks hold. The
workbooks are written as SpreadsheetML directly: openpyxl without lxml needs
tens of seconds for one street-month at scale 1.0.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import io
import itertools
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from civicflow.simulator.people import Resident, id_spelling, wrong_check_digit
from civicflow.simulator.world import District, Street

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT_SCALE_1 = {"meals": 2_500_000, "day_care": 300_000}  # rows a year
MIN_ROWS = 3  # data rows per sheet of a street-month, however small the scale
RATES = {"invalid_check_digit": 0.005, "id_spelling": 0.03, "text_date": 0.30}
REJECTED = ("invalid_check_digit",)  # dirt a load quarantines; the rest is valid after cleaning
SECOND_VERSION_SHARE = 0.15
ELDERLY_AGE = 60
MEALS = ("早餐", "午餐", "晚餐")
MEAL_EDGES = (0.15, 0.75)  # cumulative shares: 15% breakfast, 60% lunch, 25% supper
DELIVERED = 0.15  # share of meals 配送上门
OWN_CANTEEN = 0.7  # share of meals at the diner's own community canteen, where it has one
SERVINGS = ("堂食", "配送上门")
DAY_CARE_ITEMS = ("康复训练", "助浴", "文娱活动", "健康监测", "助餐")
LEADING = 4  # the columns every sheet starts with: 日期, place, 身份证号, 姓名; then Row.details


@dataclass(frozen=True)
class Sheet:
    name: str  # the worksheet's name
    title: str  # what follows street and month in the title row
    header: tuple[str, ...]
    totals: tuple[int, ...]  # the details the 合计 row sums (indexes into Row.details)
    changed: int  # the detail a correction changes (index into Row.details)
    number_style: int  # the cell style of the sheet's numbers (see _STYLES)


SHEETS = {
    "meals": Sheet(
        name="长者饭堂",
        title="长者饭堂服务台账",
        header=(
            "日期",
            "饭堂名称",
            "身份证号",
            "姓名",
            "餐次",
            "就餐方式",
            "补贴金额(元)",
            "个人支付(元)",
        ),
        totals=(2, 3),
        changed=2,  # 补贴金额(元)
        number_style=3,  # 0.00
    ),
    "day_care": Sheet(
        name="日间照料",
        title="日间照料服务台账",
        header=("日期", "服务中心", "身份证号", "姓名", "服务时长(小时)", "服务项目"),
        totals=(0,),
        changed=0,  # 服务时长(小时)
        number_style=0,  # General
    ),
}


class Row(NamedTuple):
    """One data row as written, and the dirt that tells what a load should make of it."""

    serial: int  # the order it was drawn in its sheet; tells rows apart across versions
    day: dt.date
    date_text: str | None  # the date written as text (dirt text_date), else an Excel date
    place: str  # 饭堂名称 / 服务中心
    id_text: str  # the ID number as written
    name: str
    details: tuple[str | Decimal, ...]  # the sheet's remaining columns, in order
    dirt: str | None = None
    id_no: str = ""  # the diner's canonical ID number, whatever id_text says

    @property
    def cells(self) -> tuple[str | dt.date | Decimal, ...]:
        return (self.date_text or self.day, self.place, self.id_text, self.name, *self.details)

    @property
    def quantity(self) -> Decimal:
        """Yuan (subsidy plus personal payment) for a meal, hours for a day-care visit."""
        return sum((d for d in self.details if isinstance(d, Decimal)), Decimal(0))


@dataclass
class Version:
    number: int
    published_at: dt.datetime


@dataclass
class Ledger:
    """One street-month's workbook, in all its published versions."""

    month: str  # YYYY-MM
    street: Street
    counts: dict[str, int]  # data rows of version 1, per sheet
    versions: list[Version] = field(default_factory=list)

    @property
    def street_name(self) -> str:
        return self.street.aliases[0]  # 北京街: in the file name, the listing and the title

    @property
    def key(self) -> str:
        return f"{self.month}_{self.street_name}"

    def file(self, version: int) -> str:
        return f"{self.key}_v{version}.xlsx"

    @property
    def first_day(self) -> dt.date:
        return _first_day(self.month)


def _first_day(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[5:]), 1)


def _months_before(as_of: dt.date, count: int = 12) -> list[str]:
    """The ``count`` calendar months before ``as_of``'s month, oldest first."""
    index = as_of.year * 12 + as_of.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count, index)]


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _aged(day: dt.date, years: int) -> dt.date:
    """The latest birth date of someone ``years`` old on ``day`` (day is the 1st: no 29 Feb)."""
    return day.replace(year=day.year - years)


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)).scaleb(-2)


def _hours(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(1, 16)) / 2


@dataclass
class ElderlyCareFeed:
    """The ledgers the elderly-care interface publishes, and what a load should make of them."""

    district: District
    residents: tuple[Resident, ...]
    scale: float
    as_of: dt.date
    seed: int
    months: list[str] = field(init=False)  # YYYY-MM, oldest first
    ledgers: dict[str, Ledger] = field(init=False)  # "2026-10_北京街" -> its published versions
    republished: list[str] = field(init=False)  # files published by republish()
    _files: dict[str, tuple[Ledger, int]] = field(init=False, repr=False)  # -> ledger, version
    _bytes: dict[str, bytes] = field(init=False, repr=False)  # file -> workbook, once built
    _summaries: dict[str, dict[str, Any]] = field(init=False, repr=False)  # file -> _summary
    # street code -> month index -> the street's residents 60 years old from that month on
    # (the last list: not within the year), each in the register's order
    _elderly: dict[str, list[list[Resident]]] = field(init=False, repr=False)
    # street code -> community code -> name of the community position serving meals
    _canteens: dict[str, dict[str, str]] = field(init=False, repr=False)
    _first: str = field(init=False, repr=False)  # the ledger every kind of dirt is forced into

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:elderly_care:{self.scale}:{self.as_of}")
        now = dt.datetime.combine(self.as_of, dt.time(), SHANGHAI)
        self.months = _months_before(self.as_of)
        self.ledgers, self.republished = {}, []
        self._files, self._bytes, self._summaries = {}, {}, {}
        # The latest birth date of a diner, month by month: 60 on the month's first day.
        cutoffs = [_aged(_first_day(m), ELDERLY_AGE) for m in self.months]
        self._elderly = {
            s.code: [[] for _ in range(len(cutoffs) + 1)] for s in self.district.streets
        }
        for person in self.residents:
            since = bisect.bisect_left(cutoffs, person.birth_date)
            self._elderly[person.street.code][since].append(person)
        self._canteens = {s.code: {} for s in self.district.streets}
        for p in self.district.positions:
            if (
                p.level == "community"
                and p.status == "open"
                and p.street is not None
                and p.community is not None
                and "长者饭堂" in p.integrated_platforms
            ):
                self._canteens[p.street.code][p.community.code] = p.name
        # Rows are shared out by the street's elderly people and the month's days.
        weights = {
            code: max(1, sum(len(people) for people in by_month[:-1]))
            for code, by_month in self._elderly.items()
        }
        total_weight = sum(weights.values())
        days = {m: calendar.monthrange(int(m[:4]), int(m[5:]))[1] for m in self.months}
        total_days = sum(days.values())
        for month in self.months:
            for street in self.district.streets:
                share = weights[street.code] / total_weight * days[month] / total_days
                counts = {
                    sheet: max(
                        MIN_ROWS, round(yearly * self.scale * share * rng.uniform(0.85, 1.15))
                    )
                    for sheet, yearly in AT_SCALE_1.items()
                }
                ledger = Ledger(month, street, counts)
                due = _next_month(ledger.first_day)
                first = dt.datetime.combine(due.replace(day=3), dt.time(10), SHANGHAI)
                second = dt.datetime.combine(
                    due.replace(day=rng.randint(8, 20)), dt.time(rng.choice((10, 14, 16))), SHANGHAI
                )
                corrected = rng.random() < SECOND_VERSION_SHARE
                if first > now:
                    continue  # not published yet
                ledger.versions.append(Version(1, first))
                if corrected and second < now:
                    ledger.versions.append(Version(2, second))
                self._add(ledger)
        self._first = next(iter(self.ledgers), "")

    def _add(self, ledger: Ledger) -> None:
        self.ledgers[ledger.key] = ledger
        for v in ledger.versions:
            self._files[ledger.file(v.number)] = (ledger, v.number)

    # --- the interface ---------------------------------------------------------------------

    def listing(self, month: str) -> list[dict[str, Any]]:
        """Every published version of ``month``'s ledgers, by street (district order), version."""
        return [
            {
                "file": ledger.file(v.number),
                "street": ledger.street_name,
                "month": ledger.month,
                "version": v.number,
                "published_at": v.published_at.astimezone(SHANGHAI).isoformat(timespec="seconds"),
            }
            for ledger in self.ledgers.values()
            if ledger.month == month
            for v in ledger.versions
        ]

    def workbook(self, file: str) -> bytes | None:
        """The .xlsx bytes of a published ledger version, or None for an unknown file."""
        if file not in self._files:
            return None
        if file not in self._bytes:
            ledger, version = self._files[file]
            rows = self._rows(ledger, version)
            if file not in self._summaries:
                self._summaries[file] = _summary(rows)
            self._bytes[file] = _workbook(ledger, rows)
        return self._bytes[file]

    def republish(self, count: int, at: dt.datetime) -> list[str]:
        """Publish a corrected next version of ``count`` ledgers at ``at``; returns the new files.

        The ledgers are the first by month (newest first), then street, whose newest
        version was published before ``at``.
        """
        if at.tzinfo is None:
            at = at.replace(tzinfo=SHANGHAI)
        candidates = sorted(
            (ledger for ledger in self.ledgers.values() if ledger.versions[-1].published_at < at),
            key=lambda ledger: (-int(ledger.month.replace("-", "")), ledger.street.code),
        )
        files = []
        for ledger in candidates[:count]:
            version = Version(ledger.versions[-1].number + 1, at)
            ledger.versions.append(version)
            files.append(ledger.file(version.number))
            self._files[files[-1]] = (ledger, version.number)
        self.republished.extend(files)
        return files

    def truth(self, months: list[str] | None = None) -> dict[str, Any]:
        """Exactly what a load of the newest version of every ledger of ``months`` should make."""
        chosen = set(self.months if months is None else months)
        ledgers = [ledger for ledger in self.ledgers.values() if ledger.month in chosen]
        sheets: dict[str, dict[str, Any]] = {
            sheet: {
                "rows": 0,
                "loaded": 0,
                "quarantined": dict.fromkeys(REJECTED, 0),
                "id_spellings": 0,
                "text_dates": 0,
            }
            for sheet in SHEETS
        }
        amount, hours = Decimal("0.00"), Decimal("0.0")
        by_ledger = {}
        for ledger in ledgers:
            newest = ledger.versions[-1].number
            summary = self._summary(ledger, newest)
            for sheet, counted in summary.items():
                into = sheets[sheet]
                for key in ("rows", "loaded", "id_spellings", "text_dates"):
                    into[key] += counted[key]
                for kind in REJECTED:
                    into["quarantined"][kind] += counted["quarantined"][kind]
            amount += summary["meals"]["quantity"]
            hours += summary["day_care"]["quantity"]
            by_ledger[ledger.key] = {
                "version": newest,
                "file": ledger.file(newest),
                "meals": summary["meals"]["rows"],
                "day_care": summary["day_care"]["rows"],
            }
        return {
            "ledgers": len(ledgers),
            "superseded_files": [
                ledger.file(v.number) for ledger in ledgers for v in ledger.versions[:-1]
            ],
            **sheets,
            "amount_yuan": str(amount.quantize(Decimal("0.01"))),
            "hours": str(hours.quantize(Decimal("0.1"))),
            "by_ledger": by_ledger,
            "republished": [f for f in self.republished if self._files[f][0].month in chosen],
        }

    def services(self, months: list[str] | None = None) -> list[dict[str, Any]]:
        """The core.fact_service rows a load of the newest versions of ``months``' ledgers makes.

        One per data row not quarantined (canteen meals and day-care visits); a meal at a
        canteen that is a registered community position is placed in that community.
        """
        chosen = set(self.months if months is None else months)
        out = []
        for ledger in self.ledgers.values():
            if ledger.month not in chosen:
                continue
            newest = ledger.versions[-1].number
            file = ledger.file(newest)
            communities = {name: code for code, name in self._canteens[ledger.street.code].items()}
            for sheet, rows in self._rows(ledger, newest).items():
                for number, row in enumerate(rows, 3):  # as _sheet_xml writes them
                    if row.dirt in REJECTED:
                        continue
                    placed = communities.get(row.place) if sheet == "meals" else None
                    out.append(
                        {
                            "feed": "elderly_care",
                            "record_id": f"{file}:{sheet}:{number}",
                            "id_no": row.id_no,
                            "service_date": row.day.isoformat(),
                            "service_area": sheet,
                            "status": "completed",
                            "street_code": ledger.street.code,
                            "community_code": placed,
                        }
                    )
        return out

    # --- the rows --------------------------------------------------------------------------

    def _summary(self, ledger: Ledger, version: int) -> dict[str, Any]:
        file = ledger.file(version)
        if file not in self._summaries:
            self._summaries[file] = _summary(self._rows(ledger, version))
        return self._summaries[file]

    def _rows(self, ledger: Ledger, version: int) -> dict[str, list[Row]]:
        """The data rows of ``version``: version 1 drawn, each later one corrected from the last."""
        rows = {sheet: self._draw(ledger, sheet) for sheet in SHEETS}
        for number in range(2, version + 1):
            rows = self._correct(ledger, number, rows)
        return rows

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(
            ":".join(map(str, (self.seed, "elderly_care", self.scale, self.as_of, *parts)))
        )

    def _diners(self, ledger: Ledger) -> list[Resident]:
        """The street's residents aged 60 or more on the month's first day (else the district's)."""
        upto = self.months.index(ledger.month) + 1
        diners = list(itertools.chain.from_iterable(self._elderly[ledger.street.code][:upto]))
        if not diners:  # a tiny scale can leave a street without old people
            everyone = (p for by_month in self._elderly.values() for p in by_month[:upto])
            diners = list(itertools.chain.from_iterable(everyone)) or list(self.residents)
        return diners

    def _draw(self, ledger: Ledger, sheet: str) -> list[Row]:
        """Version 1 of a sheet's rows, in the order of the ledger (by date)."""
        rng = self._rng(ledger.key, sheet)
        row = self._drawer(ledger, sheet)
        kinds = list(RATES)
        edges = list(itertools.accumulate(RATES.values()))
        forced = ledger.key == self._first
        rows = []
        for i in range(ledger.counts[sheet]):
            at = bisect.bisect_right(edges, rng.random())
            kind = kinds[at] if at < len(kinds) else None
            # Every kind of dirt shows at least once in a year, however small the scale.
            if forced and i < len(kinds):
                kind = kinds[i]
            rows.append(row(rng, i, kind))
        rows.sort(key=_ledger_order)
        return rows

    def _drawer(
        self, ledger: Ledger, sheet: str
    ) -> Callable[[random.Random, int, str | None], Row]:
        """A function drawing one row of the ledger's sheet with the given dirt (or none)."""
        diners = self._diners(ledger)
        first = ledger.first_day
        days = [
            first + dt.timedelta(days=d)
            for d in range(calendar.monthrange(first.year, first.month)[1])
        ]
        canteens = self._canteens[ledger.street.code]
        canteen = f"{ledger.street_name}长者饭堂"  # standalone, not a registered position
        centre = f"{ledger.street_name}长者日间照料中心"  # likewise

        def row(rng: random.Random, serial: int, kind: str | None) -> Row:
            person = diners[rng.randrange(len(diners))]
            day = days[rng.randrange(len(days))]
            details: tuple[str | Decimal, ...]
            if sheet == "meals":
                own = canteens.get(person.community.code)
                place = own if own and rng.random() < OWN_CANTEEN else canteen
                details = (
                    MEALS[bisect.bisect_right(MEAL_EDGES, rng.random())],
                    SERVINGS[rng.random() < DELIVERED],
                    _money(rng, 5, 12),
                    _money(rng, 3, 15),
                )
            else:
                place = centre
                details = (_hours(rng), DAY_CARE_ITEMS[rng.randrange(len(DAY_CARE_ITEMS))])
            id_text = person.id_no
            date_text = None
            if kind == "invalid_check_digit":
                id_text = wrong_check_digit(person.id_no)
            elif kind == "id_spelling":
                id_text = id_spelling(rng, person.id_no)
            elif kind == "text_date":
                iso = rng.random() < 0.5
                date_text = day.isoformat() if iso else f"{day.year}/{day.month}/{day.day}"
            return Row(
                serial, day, date_text, place, id_text, person.name, details, kind, person.id_no
            )

        return row

    def _correct(
        self, ledger: Ledger, version: int, previous: dict[str, list[Row]]
    ) -> dict[str, list[Row]]:
        """``version`` from the one before: two clean rows removed, one changed, one added.

        A sheet with fewer clean rows loses fewer, and never drops below MIN_ROWS.
        """
        rng = self._rng(ledger.key, f"v{version}")
        out = {}
        for sheet, rows in previous.items():
            spec = SHEETS[sheet]
            clean = [r for r in rows if r.dirt is None]
            replaced: dict[int, Row] = {}
            removed: set[int] = set()
            if clean:
                changed = clean[rng.randrange(len(clean))]
                others = [r for r in clean if r is not changed]
                removing = max(0, min(2, len(others), len(rows) + 1 - MIN_ROWS))
                removed = {r.serial for r in rng.sample(others, removing)}
                old = changed.details[spec.changed]
                new = old
                while new == old:
                    new = _money(rng, 5, 12) if sheet == "meals" else _hours(rng)
                details = list(changed.details)
                details[spec.changed] = new
                replaced[changed.serial] = changed._replace(details=tuple(details))
            # Each version adds one row a sheet: its serial follows those of the versions before.
            added = self._drawer(ledger, sheet)(rng, ledger.counts[sheet] + version - 2, None)
            kept = [replaced.get(r.serial, r) for r in rows if r.serial not in removed]
            out[sheet] = sorted([*kept, added], key=_ledger_order)
        return out


def _ledger_order(row: Row) -> tuple[dt.date, int]:
    return row.day, row.serial


def _summary(rows: dict[str, list[Row]]) -> dict[str, Any]:
    """What a load makes of one version's rows, per sheet."""
    out = {}
    for sheet, sheet_rows in rows.items():
        loaded = [r for r in sheet_rows if r.dirt not in REJECTED]
        out[sheet] = {
            "rows": len(sheet_rows),
            "loaded": len(loaded),
            "quarantined": {k: sum(1 for r in sheet_rows if r.dirt == k) for k in REJECTED},
            "id_spellings": sum(1 for r in sheet_rows if r.dirt == "id_spelling"),
            "text_dates": sum(1 for r in sheet_rows if r.dirt == "text_date"),
            "quantity": sum((r.quantity for r in loaded), Decimal(0)),
        }
    return out


# --- SpreadsheetML, written directly ---------------------------------------------------------

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_EPOCH = dt.date(1899, 12, 30)  # Excel's day 0 (1900 date system)
_COLUMNS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)  # fixed, so the same rows give the same bytes
# Cell styles: 0 General, 1 date (yyyy-mm-dd), 2 title, 3 money (0.00), 4 header.
_STYLES = (
    _XML + f'<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="3"><font><sz val="11"/><name val="宋体"/></font>'
    '<font><b/><sz val="14"/><name val="宋体"/></font>'
    '<font><b/><sz val="11"/><name val="宋体"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"'
    ' applyAlignment="1"><alignment horizontal="center"/></xf>'
    '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _row_xml(
    number: int, values: tuple[Any, ...], text_style: int = 0, number_style: int = 0
) -> str:
    """One row: text inline (no shared-string table), dates as Excel day numbers."""
    text_attr = f' s="{text_style}"' if text_style else ""
    cells = []
    for column, value in zip(_COLUMNS, values, strict=False):
        if value is None:
            continue
        ref = f"{column}{number}"
        if isinstance(value, str):
            space = ' xml:space="preserve"' if value != value.strip() else ""
            if "&" in value or "<" in value or ">" in value:
                value = escape(value)
            cells.append(
                f'<c r="{ref}"{text_attr} t="inlineStr"><is><t{space}>{value}</t></is></c>'
            )
        elif isinstance(value, dt.date):
            cells.append(f'<c r="{ref}" s="1"><v>{(value - _EPOCH).days}</v></c>')
        else:
            cells.append(f'<c r="{ref}" s="{number_style}"><v>{value}</v></c>')
    return f'<row r="{number}">{"".join(cells)}</row>'


def _sheet_xml(ledger: Ledger, spec: Sheet, rows: list[Row]) -> str:
    month = ledger.first_day
    width = len(spec.header)
    last = len(rows) + 3
    end = _COLUMNS[width - 1]
    total: list[Any] = ["合计", *[None] * (width - 1)]
    for detail in spec.totals:
        total[LEADING + detail] = sum((r.details[detail] for r in rows), Decimal(0))
    body = [
        _row_xml(1, (f"{ledger.street_name}{month.year}年{month.month}月{spec.title}",), 2),
        _row_xml(2, spec.header, 4),
        *(_row_xml(i, r.cells, 0, spec.number_style) for i, r in enumerate(rows, 3)),
        _row_xml(last, tuple(total), 0, spec.number_style),
    ]
    widths = "".join(
        f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
        for i, w in enumerate((12, 26, 22, 10, 14, 14, 14, 14)[:width], 1)
    )
    return (
        _XML + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
        f'<dimension ref="A1:{end}{last}"/><cols>{widths}</cols>'
        f"<sheetData>{''.join(body)}</sheetData>"
        f'<mergeCells count="1"><mergeCell ref="A1:{end}1"/></mergeCells></worksheet>'
    )


def _workbook(ledger: Ledger, rows: dict[str, list[Row]]) -> bytes:
    """The ledger's .xlsx: one worksheet per sheet, in SHEETS order."""
    names = list(SHEETS)
    sheets = "".join(
        f'<sheet name="{SHEETS[s].name}" sheetId="{i}" r:id="rId{i}"/>'
        for i, s in enumerate(names, 1)
    )
    relations = "".join(
        f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(names) + 1)
    )
    worksheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{worksheet_type}"/>'
        for i in range(1, len(names) + 1)
    )
    parts = {
        "[Content_Types].xml": _XML
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType='
        '"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType='
        '"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        f"{overrides}</Types>",
        "_rels/.rels": _XML + f'<Relationships xmlns="{_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>",
        "xl/workbook.xml": _XML + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
        f"<sheets>{sheets}</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": _XML + f'<Relationships xmlns="{_PKG_REL}">{relations}'
        f'<Relationship Id="rId{len(names) + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        "</Relationships>",
        "xl/styles.xml": _STYLES,
    }
    for i, sheet in enumerate(names, 1):
        parts[f"xl/worksheets/sheet{i}.xml"] = _sheet_xml(ledger, SHEETS[sheet], rows[sheet])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()
