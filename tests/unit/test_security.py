"""No secret in the repository, and SQL that takes values only as bound parameters.

Both read the tracked files as text or as Python syntax trees; each check is first shown
to catch what it looks for, so that a pass means something.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from civicflow.config import DEMO_PERSON_KEY
from civicflow.simulator.server import (
    DEMO_API_KEY,
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
)

ROOT = Path(__file__).resolve().parents[2]
# The documented demo values (README, .env.example) and the tests' own throw-away keys.
ALLOWED = {
    DEMO_PERSON_KEY,
    *DEMO_CLIENT,
    DEMO_API_KEY,
    *DEMO_REGISTER_LOGIN,
    DEMO_LEDGER_TOKEN,
    "a-test-secret-of-32-bytes-length",
    "a-bench-secret-of-32-bytes-long!",
    "alerts-bearer-tok",
    "not-a-jwt",
}
# Secrets that look like themselves wherever they are.
SHAPES = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bA(?:KIA|SIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
}
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s@'\"]+)@([^/\s:'\"]+)")
SECRET_NAME = re.compile(
    r"(pass(word|wd)?|secret|token|api_?key|person_?key|private_?key|credentials?)$", re.I
)
ENV_ASSIGNMENT = re.compile(
    r"^\s*(?:export\s+|-\s+)?([A-Z][A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|API_KEY|PERSON_KEY))"
    r"\s*[:=]\s*(.*?)\s*$"
)


def tracked_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    return [ROOT / name for name in names if name and (ROOT / name).is_file()]


def _allowed(value: str | bytes) -> bool:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.strip().strip("'\"")
    # Empty, or a reference: ${VAR}, ${VAR:?set} (also inside a JSON value), <placeholder>, '...'
    return not text or text in ALLOWED or "${" in text or text[0] == "<" or set(text) <= {"."}


def python_literals(source: str, filename: str) -> Iterator[tuple[int, str, str | bytes]]:
    """(line, name, literal) for each literal string given to a name that means a secret."""
    for node in ast.walk(ast.parse(source, filename)):
        pairs: list[tuple[str, ast.AST]] = []
        if isinstance(node, ast.Assign):
            pairs = [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            pairs = [(node.target.id, node.value)]
        elif isinstance(node, ast.keyword) and node.arg:
            pairs = [(node.arg, node.value)]
        elif isinstance(node, ast.Dict):
            pairs = [
                (k.value, v)
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            ]
        for name, value in pairs:
            if not SECRET_NAME.search(name.replace("-", "_")):
                continue
            for v in value.elts if isinstance(value, ast.Tuple) else [value]:
                if isinstance(v, ast.Constant) and isinstance(v.value, str | bytes):
                    yield node.lineno, name, v.value


def findings(path: str, text: str) -> list[str]:
    """Every secret in one file's text that is not an allowed demo or test value."""
    found = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        for kind, shape in SHAPES.items():
            if shape.search(line):
                found.append(f"{path}:{line_no}: a {kind}")
        for password, host in URL_CREDENTIALS.findall(line):
            if not (_allowed(password) or re.search(r"(^|\.)example(\.(com|org))?$", host)):
                found.append(f"{path}:{line_no}: a password in a URL")
        if not path.endswith(".py"):
            assignment = ENV_ASSIGNMENT.match(line)
            if assignment and not _allowed(assignment[2]):
                found.append(f"{path}:{line_no}: {assignment[1]} has a value")
    if path.endswith(".py"):
        for line_no, name, value in python_literals(text, path):
            if not _allowed(value) and len(value) >= 6:
                found.append(f"{path}:{line_no}: {name} is a literal")
    return found


def test_the_scan_finds_each_kind_of_secret():
    # Split where a whole one would be found in this very file by the scan below.
    planted = {
        "a.env": "HEALTH_CLIENT_SECRET=s3cr3t-from-prod\n",
        "b.yml": "  CIVICFLOW_DB_PASSWORD: hunter2hunter2\n",
        "c.md": "postgresql://etl:" + "hunter2@db.internal:5432/civicflow\n",
        "d.py": 'API_KEY = "live-key-0123456789"\nconnect(password="hunter2hunter2")\n',
        "e.txt": "-----BEGIN RSA PRIVATE " + "KEY-----\n" + "AKIA" + "ABCDEFGHIJKLMNOP\n",
    }
    found = [f for path, text in planted.items() for f in findings(path, text)]
    assert len(found) == 7, found
    allowed = {
        "a.env": "HEALTH_CLIENT_SECRET=\nVOLUNTEER_API_KEY=${VOLUNTEER_API_KEY:?set}\n",
        "c.md": "postgresql://etl:secret@db.example:5432/civicflow\n",
        "d.py": f"DEMO_API_KEY = {DEMO_API_KEY!r}\n",
    }
    assert [f for path, text in allowed.items() for f in findings(path, text)] == []


def test_no_secret_is_tracked_in_the_repository():
    files = tracked_files()
    assert len(files) > 100
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a workbook or another binary file
        found += findings(str(path.relative_to(ROOT)), text)
    assert found == []


# --- SQL ---------------------------------------------------------------------------------------

SQL_CALLS = {"execute", "executemany", "copy", "SQL", "stream"}


def _built_from_values(node: ast.AST) -> bool:
    """Whether an expression builds text out of other values: f-string, %, + or str.format."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return any(not isinstance(side, ast.Constant) for side in (node.left, node.right)) or (
            isinstance(node.op, ast.Mod)
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and isinstance(node.func.value, ast.Constant)
    return False


def sql_built_from_values(source: str, filename: str) -> list[str]:
    """Calls that hand the database (or psycopg's ``sql.SQL``) text built out of values."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in SQL_CALLS and _built_from_values(node.args[0]):
            out.append(f"{filename}:{node.lineno}: {name}() of text built from values")
    return out


def test_the_sql_check_finds_text_built_from_values():
    source = """
conn.execute(f"select * from core.dim_person where name = '{name}'")
cur.executemany("insert into t values (%s)" % values, rows)
conn.execute("delete from " + table)
sql.SQL("select {}".format(column))
conn.execute("select %s", (value,))
conn.execute(sql.SQL("select {} from t").format(sql.Identifier(column)))
"""
    assert len(sql_built_from_values(source, "sample.py")) == 4


@pytest.mark.parametrize("folder", ["plugins", "dags"])
def test_sql_takes_values_only_as_bound_parameters(folder):
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files
    found = []
    for path in files:
        found += sql_built_from_values(path.read_text(encoding="utf-8"), str(path))
    assert found == []
