"""Writes the bad-input corpus: every file under tests/data/bad/ and its manifest, cases.json.

Run it from the repository root after changing a case: ``.venv/bin/python
tests/data/bad/make_corpus.py``. Each case is one small file in its feed's own format
(JSON pages, a GB18030 CSV export, an .xlsx ledger) and the exact outcome
``tests/integration/test_bad_inputs.py`` expects of loading it:

- ``{"error": regex, "error_type": name}``: the batch fails with that message (the
  class is ``FeedError``, ``BatchError`` or one of its subclasses), nothing is published;
- ``{"quarantined": {reasons: count}, "accepted": n, "duplicates": n}``: the batch is
  published; ``reasons`` is a quarantined row's reasons joined with `` | ``, matched exactly.
  ``extra_columns`` (default ``[]``) is what meta.load_audit must report.

Rows are judged under the entity's own ``max_rejection_rate``, unless a case sets
``max_rejection_rate`` (these files are a few rows each, so one bad row is far more
than the 5 % a real batch may lose: the corpus lifts the limit to see each row's verdict,
and keeps a few cases at the real limit to see the batch refused).

A case's file may be ``generated`` at test time instead (the 10 MB field), named by
the generator the test module knows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from stdnum.cn import ric
from stdnum.cn import uscc as std_uscc

from civicflow.simulator.civil_affairs import HEADER as REGISTER_HEADER
from civicflow.simulator.elderly_care import SHEETS as LEDGER_SHEETS

HERE = Path(__file__).resolve().parent
INJECTION = "'); drop table core.dim_person; --"
LIFTED = 1.0  # see the module docstring

CASES: list[dict[str, Any]] = []


def case(
    name: str,
    feed: str,
    entity: str,
    tests: str,
    file: str,
    body: bytes | None,
    expect: dict[str, Any],
    **extra: Any,
) -> None:
    if body is not None:
        path = HERE / feed / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    CASES.append(
        {
            "name": name,
            "feed": feed,
            "entity": entity,
            "file": f"{feed}/{file}",
            "tests": tests,
            **extra,
            "expect": expect,
        }
    )


def idno(born: str, seq: int, check: str | None = None) -> str:
    """A resident ID number of Yuexiu (440104) with a right check digit unless ``check``."""
    first = f"440104{born.replace('-', '')}{seq:03d}"
    return first + (check if check is not None else ric.calc_check_digit(first + "0"))


def wrong_check(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


def credit_code(body17: str) -> str:
    return body17 + std_uscc.calc_check_digit(body17 + "0")


def published(expect_accepted: int, quarantined=None, duplicates: int = 0, **more) -> dict:
    return {
        "accepted": expect_accepted,
        "quarantined": quarantined or {},
        "duplicates": duplicates,
        **more,
    }


def failed(error: str, error_type: str, **more) -> dict:
    return {"error": error, "error_type": error_type, **more}


def jdump(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


# People: born long ago, odd sequence = male.
WANG = idno("1942-03-05", 22)  # 女
LI = idno("1950-07-14", 31)  # 男
ZHANG = idno("1938-12-01", 44)  # 女
FUTURE = idno("2031-05-01", 12)  # a right check digit, a birth date to come
LEGACY15 = f"440104{'420305'}022"  # 15 digits: the same person as WANG

# --- health: JSON pages of service records ----------------------------------------------------


def health_record(n: int, **changes: Any) -> dict[str, Any]:
    record = {
        "record_id": f"H{n:04d}",
        "id_no": WANG,
        "name": "王芳",
        "service_type": "ELDER_CHECKUP",
        "service_time": "2026-11-10T09:30:00+08:00",
        "institution_code": "YX-CHC-02",
        "institution_name": "北京街社区卫生服务中心",
        "street": "北京街",
        "community": "农林",
        "status": "completed",
        "updated_at": f"2026-11-10T10:{n % 60:02d}:00+08:00",
        "details": {"blood_pressure": "135/85", "glucose_mmol_l": 6.1},
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def health_page(records: list[Any]) -> bytes:
    return jdump(
        {"data": records, "page": 1, "page_size": 500, "total": len(records), "total_pages": 1}
    )


def health_cases() -> None:
    def h(name, tests, records, expect, **extra):
        case(
            name,
            "health",
            "service_records",
            tests,
            f"{name}.json",
            health_page(records),
            expect,
            **extra,
        )

    h(
        "health_id_spellings",
        "ID numbers as departments spell them (lowercase x, full-width digits, spaces, 15 "
        "digits) are read, not quarantined",
        [
            health_record(1, id_no=WANG.lower()),
            health_record(2, id_no=WANG.translate({c: c + 0xFEE0 for c in range(0x30, 0x3A)})),
            health_record(3, id_no=f"  {LI[:6]} {LI[6:14]} {LI[14:]} "),
            health_record(4, id_no=LEGACY15),
        ],
        published(4),
    )
    h(
        "health_invalid_id_check_digit",
        "a wrong GB 11643 check digit quarantines the record",
        [health_record(1), health_record(2, id_no=wrong_check(LI)), health_record(3)],
        published(2, {"invalid ID number check digit": 1}),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_future_birth_date",
        "an ID number whose birth date is in the future (right check digit) is impossible",
        [health_record(1), health_record(2, id_no=FUTURE)],
        published(1, {"impossible birth date in ID number": 1}),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_malformed_id",
        "an ID number of 17 characters, or with letters, is malformed",
        [health_record(1, id_no=WANG[:17]), health_record(2, id_no="44010419420305A22X")],
        published(0, {"malformed ID number": 2}),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_unknown_street_and_community",
        "a street or community the divisions do not know is quarantined with its name",
        [
            health_record(1),
            health_record(2, street="火星街"),
            health_record(3, community="不存在社区"),
        ],
        published(
            1,
            {
                "unknown street '火星街'": 1,
                "unknown community '不存在社区' in street 440104002": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_duplicate_record_ids",
        "the same record_id three times in a page: the latest updated_at wins, two duplicates",
        [
            health_record(1, status="completed", updated_at="2026-11-10T10:00:00+08:00"),
            health_record(1, status="cancelled", updated_at="2026-11-12T10:00:00+08:00"),
            health_record(1, status="completed", updated_at="2026-11-11T10:00:00+08:00"),
            health_record(2),
        ],
        published(2, duplicates=2, core={"health:H0001": {"status": "cancelled"}}),
    )
    h(
        "health_null_keys",
        "a null record_id and a null id_no fail their not-null expectations",
        [health_record(1), health_record(2, record_id=None), health_record(3, id_no=None)],
        published(
            1,
            {
                "failed expect_column_values_to_not_be_null(record_id)": 1,
                "failed expect_column_values_to_not_be_null(id_no)": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_bad_values",
        "values that are not of their type or not in their set, each reason named",
        [
            health_record(1),
            health_record(2, service_time="yesterday morning"),
            health_record(3, service_type="MASSAGE"),
            health_record(4, status="done", updated_at="2026-13-01T00:00:00+08:00"),
        ],
        published(
            1,
            {
                "field service_time: not a timestamp ('yesterday morning')": 1,
                "failed expect_column_values_to_be_in_set(service_type)": 1,
                "field updated_at: not a timestamp ('2026-13-01T00:00:00+08:00')": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_record_not_an_object",
        "a page whose data array holds a string and a number among records",
        [health_record(1), "H0002", 42],
        published(
            1,
            {"record is not an object (str)": 1, "record is not an object (int)": 1},
        ),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_sql_injection_text",
        "a name and an institution code like SQL are kept as plain data",
        [
            health_record(1, name=INJECTION, institution_code=INJECTION),
            health_record(2, community=INJECTION),
        ],
        published(
            1,
            {f"unknown community {INJECTION!r} in street 440104002": 1},
            core={"health:H0001": {"provider_code": INJECTION}},
        ),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_missing_required_column",
        "schema drift: no record has `street`",
        [health_record(n, street=...) for n in (1, 2, 3)],
        failed(
            r"health\.service_records \(load [0-9a-f-]+\): required field\(s\) street missing "
            r"from every record: the interface has changed; nothing was loaded",
            "SchemaDriftError",
        ),
    )
    h(
        "health_renamed_column",
        "schema drift: `service_type` renamed to `serviceType`",
        [{**health_record(n, service_type=...), "serviceType": "HOME_VISIT"} for n in (1, 2, 3)],
        failed(
            r"health\.service_records \(load [0-9a-f-]+\): required field\(s\) service_type "
            r"missing from every record \(which carry unknown field\(s\) serviceType\)",
            "SchemaDriftError",
        ),
    )
    h(
        "health_extra_columns",
        "unknown extra fields (one named like SQL) are tolerated, kept in raw, reported",
        [{**health_record(n), "insurance_no": f"INS{n}", f"x{INJECTION}": None} for n in (1, 2)],
        published(2, extra_columns=sorted(["insurance_no", f"x{INJECTION}"])),
    )
    h(
        "health_one_record_lacks_a_field",
        "a required field missing from one record only is that record's fault, not drift",
        [health_record(1), health_record(2, status=...), health_record(3)],
        published(2, {"missing field status": 1}),
        max_rejection_rate=LIFTED,
    )
    h(
        "health_rejected_batch",
        "at the entity's own limit (5 %), one bad record in three refuses the whole batch",
        [health_record(1), health_record(2, id_no=wrong_check(WANG)), health_record(3)],
        failed(
            r"health\.service_records \(load [0-9a-f-]+\): 1 of 3 rows \(33\.3%\) failed "
            r"validation, more than the 5\.0% allowed; nothing was published\. Most common "
            r"reasons: invalid ID number check digit ×1",
            "BatchRejected",
            quarantined={"invalid ID number check digit": 1},
        ),
    )
    h(
        "health_empty_page",
        "a page with no records: an empty batch is published, nothing changes",
        [],
        published(0),
    )
    case(
        "health_not_json",
        "health",
        "service_records",
        "the API answers an HTML error page with status 200",
        "health_not_json.html",
        b"<html><body><h1>Service temporarily unavailable</h1></body></html>",
        failed(r"health feed: .*service-records.*body is not valid JSON", "FeedError"),
        content_type="text/html",
    )
    case(
        "health_wrong_shape",
        "health",
        "service_records",
        "a page whose records are under `records`, not `data`",
        "health_wrong_shape.json",
        jdump({"records": [health_record(1)], "page": 1, "total_pages": 1}),
        failed(r"health feed: .*expected an object with a 'data' array", "FeedError"),
    )
    case(
        "health_10mb_name",
        "health",
        "service_records",
        "a 10 MB name (personal, raw only) loads; a 10 MB record_id is quarantined",
        "health_10mb_field.json",
        None,
        published(1, {"failed expect_column_values_to_match_regex(record_id)": 1}),
        generated="health_10mb_field",
        max_rejection_rate=LIFTED,
    )


# --- civil affairs: the register's GB18030 CSV export -----------------------------------------

# The register's columns, as the interface (and the simulator) gives them.
HEADER = list(REGISTER_HEADER)


def person(id_no=WANG, **changes: Any) -> dict[str, str]:
    born = f"{id_no[6:10]}-{id_no[10:12]}-{id_no[12:14]}" if len(id_no) == 18 else ""
    row = {
        "身份证号": id_no,
        "姓名": "王芳",
        "性别": "男" if len(id_no) == 18 and int(id_no[16]) % 2 else "女",
        "出生日期": born,
        "街道": "北京街",
        "社区": "农林",
        "居住地址": "北京街农林路1号",
        "联系电话": "13812345678",
        "人员类别": "高龄老人、独居老人",
        "登记状态": "在册",
        "更新时间": "2026-11-18 14:03:11",
    }
    row.update(changes)
    return row


def csv_bytes(rows: list[dict[str, str]], header=HEADER, encoding="gb18030") -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return out.getvalue().encode(encoding)


def ragged(body: bytes) -> bytes:
    """The export with the first data row's last cell cut off."""
    lines = body.decode("gb18030").split("\r\n")
    lines[1] = lines[1].rsplit(",", 1)[0]
    return "\r\n".join(lines).encode("gb18030")


def civil_cases() -> None:
    def c(name, tests, body, expect, rows, **extra):
        case(
            name,
            "civil_affairs",
            "register",
            tests,
            f"{name}.csv",
            body,
            expect,
            index_rows=rows,
            **extra,
        )

    three = [
        person(WANG),
        person(LI, 姓名="李伟", 社区="竹丝岗社区"),
        person(ZHANG, 街道="洪桥", 社区="光明"),
    ]
    c(
        "civil_valid_control",
        "a well-formed export with every spelling the interface allows loads whole",
        csv_bytes(
            [
                person(WANG, 出生日期="1942/3/5"),
                person(LI, 出生日期="19500714", 街道="北京街道", 社区="竹丝岗社区"),
                person(ZHANG, 街道="洪桥", 社区="光明社区", 人员类别="特困人员;残疾人"),
            ]
        ),
        published(3),
        3,
    )
    c(
        "civil_utf8_encoding",
        "the export saved as UTF-8 instead of GB18030",
        csv_bytes(three, encoding="utf-8"),
        failed(
            r"civil_affairs\.register \(load [0-9a-f-]+\): payload of \S+/exports/"
            r"civil_utf8_encoding\.csv cannot be read: civil_utf8_encoding\.csv: not GB18030 "
            r"text \('gb18030' codec can't decode byte 0x80",
            "BatchError",
        ),
        3,
    )
    c(
        "civil_utf16_encoding",
        "the export saved as UTF-16 (Excel's 'Unicode text')",
        csv_bytes(three, encoding="utf-16"),
        failed(r"civil_utf16_encoding\.csv: not GB18030 text", "BatchError"),
        3,
    )
    c(
        "civil_empty_file",
        "a zero-byte export",
        b"",
        failed(r"civil_empty_file\.csv: the file is empty", "BatchError"),
        0,
    )
    c(
        "civil_header_only",
        "an export with its header and no rows, as its index says",
        csv_bytes([]),
        published(0),
        0,
    )
    c(
        "civil_missing_column",
        "schema drift: no 社区 column",
        csv_bytes(three, header=[h for h in HEADER if h != "社区"]),
        failed(
            r"civil_affairs\.register \(load [0-9a-f-]+\): required field\(s\) 社区 missing "
            r"from every record: the interface has changed; nothing was loaded",
            "SchemaDriftError",
        ),
        3,
    )
    renamed = [{**{("证件号码" if k == "身份证号" else k): v for k, v in r.items()}} for r in three]
    c(
        "civil_renamed_column",
        "schema drift: 身份证号 renamed to 证件号码",
        csv_bytes(renamed, header=["证件号码", *HEADER[1:]]),
        failed(
            r"civil_affairs\.register \(load [0-9a-f-]+\): required field\(s\) 身份证号 "
            r"missing from every record \(which carry unknown field\(s\) 证件号码\)",
            "SchemaDriftError",
        ),
        3,
    )
    c(
        "civil_extra_column",
        "an unknown extra column 民族 is tolerated and reported",
        csv_bytes([{**r, "民族": "汉"} for r in three], header=[*HEADER, "民族"]),
        published(3, extra_columns=["民族"]),
        3,
    )
    c(
        "civil_invalid_ids",
        "a wrong check digit, an impossible date, a future birth date, a malformed number",
        csv_bytes(
            [
                person(WANG),
                person(wrong_check(LI), 姓名="李伟"),
                person(idno("1950-02-30", 31), 姓名="赵六", 出生日期="1950-03-01"),
                person(FUTURE, 出生日期="2031-05-01"),
                person("4401041942030502", 出生日期="1942-03-05"),
            ]
        ),
        published(
            1,
            {
                "invalid ID number check digit": 1,
                "impossible birth date in ID number": 2,
                "malformed ID number": 1,
            },
        ),
        5,
        max_rejection_rate=LIFTED,
    )
    c(
        "civil_birth_date_and_gender_disagree",
        "出生日期 in the future and 性别 contradicting the ID number",
        csv_bytes([person(WANG), person(LI, 出生日期="2030-07-14"), person(ZHANG, 性别="男")]),
        published(
            1,
            {
                "出生日期 differs from the ID number's birth date": 1,
                "性别 differs from the ID number": 1,
            },
        ),
        3,
        max_rejection_rate=LIFTED,
    )
    c(
        "civil_unknown_divisions",
        "an unknown street, and a community of another street",
        csv_bytes([person(WANG), person(LI, 街道="火星街"), person(ZHANG, 社区="光明社区")]),
        published(
            1,
            {
                "unknown street '火星街'": 1,
                "unknown community '光明社区' in street 440104002": 1,
            },
        ),
        3,
        max_rejection_rate=LIFTED,
    )
    c(
        "civil_duplicate_person",
        "one person twice (the later 更新时间 wins) and an exact copy of a row",
        csv_bytes(
            [
                person(WANG, 更新时间="2026-11-18 09:00:00", 人员类别="高龄老人"),
                person(WANG, 更新时间="2026-11-18 15:00:00", 人员类别="独居老人"),
                person(LI),
                person(LI),
            ]
        ),
        published(2, duplicates=2),
        4,
    )
    c(
        "civil_null_keys",
        "an empty 身份证号 and an empty 登记状态",
        csv_bytes([person(WANG), person(LI, 身份证号=""), person(ZHANG, 登记状态="")]),
        published(
            1,
            {
                "failed expect_column_values_to_not_be_null(id_no)": 1,
                "failed expect_column_values_to_not_be_null(registry_status)": 1,
            },
        ),
        3,
        max_rejection_rate=LIFTED,
    )
    c(
        "civil_sql_injection",
        "a name like SQL is data (never staged); the same in 人员类别 is an unknown category",
        csv_bytes([person(WANG, 姓名=INJECTION), person(LI, 人员类别=INJECTION)]),
        # 人员类别 splits at ";": the first unknown part is named
        published(1, {'unknown category "\')"': 1}),
        2,
        max_rejection_rate=LIFTED,
    )
    c(
        "civil_ragged_row",
        "a row with a cell too few",
        ragged(csv_bytes(three)),
        failed(r"civil_ragged_row\.csv line 2: 10 cells under 11 headers", "BatchError"),
        3,
    )
    c(
        "civil_unclosed_quote",
        "a quoted address whose closing quote is missing swallows the rest of the file",
        csv_bytes(three).replace("北京街农林路1号".encode("gb18030"), b'"unclosed', 1),
        failed(
            r"civil_unclosed_quote\.csv line 4: not RFC 4180 CSV \(unexpected end of data\)",
            "BatchError",
        ),
        3,
    )
    c(
        "civil_row_count_differs_from_index",
        "the index says 5 rows, the file has 3: a truncated export",
        csv_bytes(three),
        failed(
            r"civil_row_count_differs_from_index\.csv: 3 data rows, the index says 5", "BatchError"
        ),
        5,
    )
    case(
        "civil_10mb_field",
        "civil_affairs",
        "register",
        "a 10 MB 居住地址 in one row",
        "civil_10mb_field.csv",
        None,
        failed(
            r"civil_10mb_field\.csv line 2: not RFC 4180 CSV \(field larger than field limit "
            r"\(131072\)\)",
            "BatchError",
        ),
        generated="civil_10mb_field",
        index_rows=2,
    )


# --- elderly care: monthly .xlsx ledgers ------------------------------------------------------

# The ledgers' sheets' columns, as the interface (and the simulator) gives them.
MEAL_HEADER = list(LEDGER_SHEETS["meals"].header)
CARE_HEADER = list(LEDGER_SHEETS["day_care"].header)


def meal(day="2026-10-05", id_no=WANG, **changes) -> dict[str, Any]:
    row = {
        "日期": day,
        "饭堂名称": "北京街长者饭堂",
        "身份证号": id_no,
        "姓名": "王芳",
        "餐次": "午餐",
        "就餐方式": "堂食",
        "补贴金额(元)": 8,
        "个人支付(元)": 5,
    }
    row.update(changes)
    return row


def care(day="2026-10-06", id_no=LI, **changes) -> dict[str, Any]:
    row = {
        "日期": day,
        "服务中心": "北京街长者日间照料中心",
        "身份证号": id_no,
        "姓名": "李伟",
        "服务时长(小时)": 2.5,
        "服务项目": "助浴",
    }
    row.update(changes)
    return row


def ledger(
    meals: list[dict[str, Any]],
    cares: list[dict[str, Any]],
    meal_header: list[str] = MEAL_HEADER,
    care_header: list[str] = CARE_HEADER,
    total: bool = True,
    sheets: tuple[str, ...] = ("长者饭堂", "日间照料"),
) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for sheet, header, rows in (("长者饭堂", meal_header, meals), ("日间照料", care_header, cares)):
        if sheet not in sheets:
            continue
        ws = book.create_sheet(sheet)
        ws.append([f"北京街2026年10月{sheet}服务台账"])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(header))
        ws.append(header)
        for row in rows:
            values = [row.get(h) for h in header]
            values = [
                dt.datetime.fromisoformat(v)
                if h == "日期" and isinstance(v, str) and v.count("-") == 2
                else v
                for h, v in zip(header, values, strict=True)
            ]
            ws.append(values)
        if total:
            ws.append(["合计", None, None, None, len(rows)])
    out = io.BytesIO()
    book.properties.created = dt.datetime(2026, 11, 3, 10, 0)  # a reproducible file
    book.save(out)
    return _stamped(out.getvalue())


STAMP = b"2026-11-03T10:00:00Z"


def _stamped(body: bytes) -> bytes:
    """The workbook with every zip member dated alike: the same bytes every time it is made."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(body)) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=(2026, 11, 3, 10, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = source.read(member)
            if member.filename == "docProps/core.xml":  # openpyxl dates a save "now"
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + STAMP, data)
            target.writestr(info, data)
    return out.getvalue()


def elderly_cases() -> None:
    def e(name, tests, body, expect, **extra):
        case(name, "elderly_care", "ledgers", tests, f"{name}.xlsx", body, expect, **extra)

    e(
        "ledger_valid_control",
        "a well-formed ledger: Excel and text dates, the total row skipped",
        ledger([meal(), meal("2026/10/6", 餐次="早餐")], [care()]),
        published(3),
    )
    e(
        "ledger_service_hours_out_of_range",
        "day care of 30 hours, of -2 hours and of 0 hours",
        ledger(
            [meal()],
            [
                care(),
                care(**{"服务时长(小时)": 30}),
                care(**{"服务时长(小时)": -2}),
                care(**{"服务时长(小时)": 0}),
            ],
        ),
        published(
            2,
            {
                "failed expect_column_values_to_be_between(hours)": 2,
                "a day-care visit without 服务时长": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    e(
        "ledger_bad_ids_and_money",
        "a wrong check digit, an empty ID number, a negative subsidy, a meal of 350 yuan",
        ledger(
            [
                meal(),
                meal(id_no=wrong_check(WANG)),
                meal(id_no=None),
                meal(**{"补贴金额(元)": -8}),
                meal(**{"个人支付(元)": 350}),
            ],
            [care()],
        ),
        published(
            2,
            {
                "invalid ID number check digit": 1,
                "failed expect_column_values_to_not_be_null(id_no)": 1,
                "failed expect_column_values_to_be_between(subsidy_yuan)": 1,
                "failed expect_column_values_to_be_between(paid_yuan)": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    e(
        "ledger_dates_outside_month",
        "a row dated in another month, and a date that is no date",
        ledger([meal(), meal("2026-09-30"), meal("2026/10/32")], [care()]),
        published(
            2,
            {
                "日期 2026-09-30 is outside the ledger's month 2026-10": 1,
                "field 日期: not a valid date ('2026/10/32')": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    e(
        "ledger_missing_column",
        "schema drift: the day-care sheet has no 身份证号 column",
        ledger([meal()], [care()], care_header=[h for h in CARE_HEADER if h != "身份证号"]),
        failed(
            r"ledger_missing_column\.xlsx, sheet 日间照料: no column\(s\) 身份证号", "BatchError"
        ),
    )
    e(
        "ledger_renamed_column",
        "schema drift: 服务时长(小时) renamed to 时长",
        ledger(
            [meal()],
            [{**care(), "时长": 2}],
            care_header=[h if h != "服务时长(小时)" else "时长" for h in CARE_HEADER],
        ),
        failed(
            r"ledger_renamed_column\.xlsx, sheet 日间照料: no column\(s\) 服务时长\(小时\)",
            "BatchError",
        ),
    )
    e(
        "ledger_extra_column",
        "an unknown extra column 备注 is tolerated and reported",
        ledger([{**meal(), "备注": "素食"}], [care()], meal_header=[*MEAL_HEADER, "备注"]),
        published(2, extra_columns=["备注"]),
    )
    e(
        "ledger_no_total_row",
        "a ledger without its 合计 row: truncated",
        ledger([meal()], [care()], total=False),
        failed(
            r"ledger_no_total_row\.xlsx, sheet 长者饭堂: no 合计 row; truncated\?", "BatchError"
        ),
    )
    e(
        "ledger_missing_sheet",
        "a ledger without its day-care sheet",
        ledger([meal()], [], sheets=("长者饭堂",)),
        failed(
            r"ledger_missing_sheet\.xlsx: no sheet '日间照料' \(has \['长者饭堂'\]\)", "BatchError"
        ),
    )
    e(
        "ledger_not_a_workbook",
        "a CSV file published with an .xlsx name",
        csv_bytes([person()]),
        failed(r"ledger_not_a_workbook\.xlsx: not an Excel workbook", "BatchError"),
    )
    e(
        "ledger_sql_injection_name",
        "a canteen named like SQL and a person named like SQL are plain data",
        ledger([meal(姓名=INJECTION, 饭堂名称=INJECTION)], [care()]),
        published(2),
    )


# --- volunteer: JSON pages with cursors -------------------------------------------------------

ORGANISER = credit_code("91440104MA5C0A1B2")


def volunteer(n: int, **changes: Any) -> dict[str, Any]:
    record = {
        "volunteer_id": f"V{n:04d}",
        "id_no": [WANG, LI, ZHANG][n % 3],
        "name": "志愿者",
        "gender": "女",
        "birth_date": "1990-04-01",
        "phone": "13812345678",
        "street": "北京街",
        "community": "农林",
        "is_party_member": True,
        "registered_at": "2025-03-01T09:00:00+08:00",
        "updated_at": f"2026-11-10T10:{n % 60:02d}:00+08:00",
    }
    record.update(changes)
    return record


def activity(n: int, **changes: Any) -> dict[str, Any]:
    record = {
        "activity_id": f"A{n:04d}",
        "title": "长者上门探访",
        "category": "助老服务",
        "position_code": "440104002-S",
        "venue_address": None,
        "start_time": "2026-11-10 09:00:00",
        "end_time": "2026-11-10 11:00:00",
        "organizer_name": "北京街志愿服务队",
        "organizer_uscc": ORGANISER,
        "status": "finished",
        "updated_at": f"2026-11-10T12:{n % 60:02d}:00+08:00",
    }
    record.update(changes)
    return record


def hours(n: int, **changes: Any) -> dict[str, Any]:
    record = {
        "record_id": f"S{n:04d}",
        "activity_id": "A0001",
        "volunteer_id": "V0001",
        "hours": "2.5",
        "beneficiary_id_no": None,
        "status": "confirmed",
        "updated_at": f"2026-11-10T13:{n % 60:02d}:00+08:00",
    }
    record.update(changes)
    return record


def items(records: list[Any]) -> bytes:
    return jdump({"items": records, "next_cursor": None})


def volunteer_cases() -> None:
    def v(name, entity, tests, records, expect, **extra):
        body = items(records) if records is not None else extra.pop("body")
        case(name, "volunteer", entity, tests, f"{name}.json", body, expect, **extra)

    # The references every volunteer case's warehouse holds (loaded, not a case).
    refs = HERE / "volunteer" / "references"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "volunteers.json").write_bytes(items([volunteer(1), volunteer(2)]))
    (refs / "activities.json").write_bytes(items([activity(1), activity(2)]))

    v(
        "volunteers_ids_and_birth_dates",
        "volunteers",
        "a null id_no is allowed (outside the mainland); a wrong check digit, a future "
        "birth_date and an unknown community are not",
        [
            volunteer(11),
            volunteer(12, id_no=None),
            volunteer(13, id_no=wrong_check(LI)),
            volunteer(14, id_no=None, birth_date="2031-01-01"),
            volunteer(15, community="不存在社区"),
        ],
        published(
            2,
            {
                "invalid ID number check digit": 1,
                "birth_date 2031-01-01 is in the future": 1,
                "unknown community '不存在社区' in street 440104002": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    v(
        "activities_credit_codes",
        "activities",
        "an organiser's credit code with a wrong check character, a malformed one, a null one",
        [
            activity(11),
            activity(12, organizer_uscc=ORGANISER[:17] + ("0" if ORGANISER[17] != "0" else "1")),
            activity(13, organizer_uscc="91440104MA5C0A1B"),
            activity(14, organizer_uscc=None),
            activity(15, position_code="NO-SUCH-POSITION"),
            activity(16, end_time="2026-11-10 08:00:00"),
        ],
        published(
            1,
            {
                "invalid credit code check character": 1,
                "malformed credit code": 1,
                "failed expect_column_values_to_not_be_null(organizer_uscc)": 1,
                "unknown position 'NO-SUCH-POSITION'": 1,
                "end_time is before start_time": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    v(
        "service_hours_out_of_range",
        "service_hours",
        "30 hours, negative hours, zero hours and hours that are no number",
        [
            hours(1),
            hours(2, hours=30),
            hours(3, hours="-1.5"),
            hours(4, hours=0),
            hours(5, hours="两小时"),
            hours(6, hours=24),
        ],
        published(
            2,
            {
                "failed expect_column_values_to_be_between(hours)": 3,
                "field hours: not a number ('两小时')": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )
    v(
        "service_hours_unknown_references_and_duplicates",
        "service_hours",
        "an unknown activity, an unknown volunteer, a record sent twice",
        [
            hours(1),
            hours(2, activity_id="A9999"),
            hours(3, volunteer_id="V9999"),
            hours(4, updated_at="2026-11-10T13:00:00+08:00"),
            hours(4, hours="3", updated_at="2026-11-11T13:00:00+08:00"),
        ],
        published(
            2,
            {"unknown activity 'A9999'": 1, "unknown volunteer 'V9999'": 1},
            duplicates=1,
        ),
        max_rejection_rate=LIFTED,
    )
    v(
        "volunteer_help_bad_beneficiary",
        "volunteer_help",
        "help given to a resident whose ID number has a wrong check digit",
        [
            hours(1, beneficiary_id_no=WANG),
            hours(2, beneficiary_id_no=wrong_check(ZHANG)),
            hours(3),
        ],
        published(1, {"invalid ID number check digit": 1}),
        max_rejection_rate=LIFTED,
    )
    v(
        "volunteers_missing_required_column",
        "volunteers",
        "schema drift: no record has is_party_member",
        [{k: x for k, x in volunteer(n).items() if k != "is_party_member"} for n in (21, 22)],
        failed(
            r"volunteer\.volunteers \(load [0-9a-f-]+\): required field\(s\) is_party_member "
            r"missing from every record",
            "SchemaDriftError",
        ),
    )
    v(
        "volunteers_wrong_shape",
        "volunteers",
        "a page whose list is under `data`, not `items`",
        None,
        failed(r"volunteer feed: .*v2/volunteers.*expected an object with 'items'", "FeedError"),
        body=jdump({"data": [volunteer(1)], "next_cursor": None}),
    )


# --- positions: divisions, positions, daily tallies -------------------------------------------


def position_cases() -> None:
    def p(name, entity, tests, document, expect, **extra):
        case(name, "positions", entity, tests, f"{name}.json", jdump(document), expect, **extra)

    visit = {
        "position_code": "440104002-S",
        "date": "2026-11-20",
        "visitors": 312,
        "activities_held": 3,
        "participants": 85,
    }
    p(
        "visits_bad_tallies",
        "visits",
        "an unknown position, negative visitors, a string count, a null date, a day twice",
        [
            visit,
            {**visit, "position_code": "440104-X99"},
            {**visit, "position_code": "440104001-S", "visitors": -5},
            {**visit, "position_code": "440104003-S", "participants": "many"},
            {**visit, "position_code": "440104004-S", "date": None},
            {**visit, "visitors": 320},
        ],
        published(
            1,
            {
                "unknown position '440104-X99'": 1,
                "failed expect_column_values_to_be_between(visitors)": 1,
                "field participants: not an integer ('many')": 1,
                "failed expect_column_values_to_not_be_null(date)": 1,
            },
            duplicates=1,
        ),
        max_rejection_rate=LIFTED,
    )
    p(
        "divisions_missing_code",
        "streets",
        "schema drift: the divisions' streets have `id` where `code` belongs",
        {
            "district": {"code": "440104", "name": "越秀区"},
            "streets": [
                {"id": "440104002", "name": "北京街道", "aliases": ["北京街"], "communities": []}
            ],
        },
        failed(
            r"positions\.streets \(load [0-9a-f-]+\): required field\(s\) code missing from "
            r"every record",
            "SchemaDriftError",
        ),
    )
    p(
        "positions_unknown_divisions",
        "positions",
        "a position in an unknown street, one with a community but no street, one off the map",
        [
            {
                "position_code": f"T-{n}",
                "name": f"测试站{n}",
                "level": "public_space",
                "street": "北京街",
                "community": None,
                "address": "北京路1号",
                "longitude": 113.27,
                "latitude": 23.12,
                "services": ["综合接待"],
                "status": "open",
                **changes,
            }
            for n, changes in enumerate(
                [
                    {},
                    {"street": "火星街"},
                    {"street": None, "community": "农林"},
                    {"longitude": 23.12, "latitude": 113.27},
                    {"services": ["综合接待", "算命"]},
                ]
            )
        ],
        published(
            1,
            {
                "unknown street '火星街'": 1,
                "a community is given without its street": 1,
                "failed expect_column_values_to_be_between(longitude) | "
                "failed expect_column_values_to_be_between(latitude)": 1,
                "unknown service areas ['算命']": 1,
            },
        ),
        max_rejection_rate=LIFTED,
    )


def main() -> None:
    health_cases()
    civil_cases()
    elderly_cases()
    volunteer_cases()
    position_cases()
    manifest = {
        "about": "Bad inputs and their exact outcomes; written by make_corpus.py, read by "
        "tests/integration/test_bad_inputs.py. `quarantined` maps a row's reasons (joined "
        "with ' | ') to how many rows were quarantined with exactly those reasons.",
        "cases": CASES,
    }
    (HERE / "cases.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
