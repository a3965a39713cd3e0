"""End-to-end benchmark: a district-year from the feed simulator through real Airflow, then a day.

As ``make demo`` does it: an embedded PostgreSQL holds the warehouse and Airflow's
metadata, the simulator serves the feeds at ``--scale`` (1.0 is domain.md's
district-year), ``airflow db migrate``, then ``python -m civicflow.airflow.dagtest
<day> <dag>`` (``airflow dags test``) runs ``positions_ingest`` (the divisions the other
feeds resolve against), then the other four ingest DAGs, then ``warehouse_marts``, all
in one process; ``--parallel`` runs the four ingest DAGs at once, a process each, as the
scheduler would run them.

- **Backfill** (the day before yesterday): every feed serves a year. The positions
  connection's extra reads 366 days of tallies (``lookback_days`` and
  ``max_catchup_days``), the ledgers' lists 12 months back (``lookback_months``),
  the health and volunteer feeds send their whole history on a first run, and the
  register its newest snapshot.
- **Incremental** (yesterday): about 0.3 % of the records change through the
  simulator's steering endpoints (health cancellations, revoked volunteer hours,
  a republished ledger), the positions feed has a new day and the register a new
  snapshot; the same DAGs run again, positions with its everyday look-back.

Measured: wall seconds per DAG (from its process's start to the result line dagtest
prints, so each carries Airflow's import; Airflow's own run durations are reported
beside), rows loaded (``meta.load_audit.source_rows``), peak RSS of the dagtest
processes (their sum, and the largest one) sampled every 0.5 s, and the simulator's RSS
(this process).

``.venv/bin/python bench/end_to_end.py --scale 0.1`` prints a Markdown table and
writes ``bench/results/end-to-end-<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import psutil
import psycopg

from civicflow.cli import DEMO_DAGS, airflow_environment
from civicflow.localdb import LocalPostgres, free_port
from civicflow.simulator.server import RunningSimulator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHANGHAI = ZoneInfo("Asia/Shanghai")
CHANGE_SHARE = 0.003  # of the records, changed between the backfill and the next day
TIMEOUT_S = 25 * 60  # a phase running longer is stopped and reported as such
FEED_OF_DAG = {dag: dag.removesuffix("_ingest") for dag in DEMO_DAGS if dag.endswith("_ingest")}
MB = 1024 * 1024


class RssSampler(threading.Thread):
    """The largest RSS of some process trees (summed), of one process, and of this process.

    ``roots`` gives the processes whose trees are sampled, every ``interval_s``.
    """

    def __init__(self, roots: Callable[[], list[int]], interval_s: float = 0.5):
        super().__init__(daemon=True)
        self.roots = roots
        self.interval_s = interval_s
        self.tree_max = 0
        self.single_max = 0
        self.processes_max = 0
        self.own_max = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        own = psutil.Process()
        while not self.stopped.is_set():
            procs = []
            for pid in self.roots():
                with contextlib.suppress(psutil.NoSuchProcess):
                    root = psutil.Process(pid)
                    procs += [root, *root.children(recursive=True)]
            sizes = []
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    sizes.append(proc.memory_info().rss)
            self.tree_max = max(self.tree_max, sum(sizes))
            self.single_max = max(self.single_max, max(sizes, default=0))
            self.processes_max = max(self.processes_max, len(sizes))
            self.own_max = max(self.own_max, own.memory_info().rss)
            self.stopped.wait(self.interval_s)


class CpuClock:
    """CPU seconds (user + system) spent over a phase: the dagtest processes, PostgreSQL, this one.

    On 2 cores a phase cannot take less wall time than the CPU seconds it spends over two,
    whatever the scheduling: the sum is the floor of any parallel run of the same work.

    - dagtest: this process's waited-for children (``RUSAGE_CHILDREN``), that is the dagtest
      processes, which are its only children during a phase;
    - postgres: the postmaster, the backends it has reaped and those still running (the
      warehouse and Airflow's metadata share the one server);
    - simulator: this process, the feed simulator's threads serving the pages (and the
      sampling, a few milliseconds a second).
    """

    def __init__(self, pgdata: Path | None):
        self.pgdata = pgdata
        self.start = self._now()

    def _postgres(self) -> float:
        if self.pgdata is None:  # no server of ours: its CPU is not counted (the floor is low)
            return 0.0
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        own = postmaster.cpu_times()
        total = own.user + own.system + own.children_user + own.children_system
        for child in postmaster.children():
            with contextlib.suppress(psutil.NoSuchProcess):  # a backend that just ended
                times = child.cpu_times()
                total += times.user + times.system
        return total

    def _now(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "dagtest": children.ru_utime + children.ru_stime,
            "postgres": self._postgres(),
            "simulator": own.ru_utime + own.ru_stime,
        }

    def spent(self) -> dict[str, float]:
        now = self._now()
        spent = {f"{k}_s": round(now[k] - self.start[k], 1) for k in now}
        spent["total_s"] = round(sum(now[k] - self.start[k] for k in now), 1)
        return spent


def dag_groups(parallel: bool) -> list[list[tuple[str, ...]]]:
    """The dagtest processes, group after group, each running its DAGs in order.

    Sequential: one process runs every DAG (Airflow and GX are imported once). Parallel:
    positions (the divisions every other feed resolves against), then the other ingest
    DAGs at once, a process each, as Airflow's scheduler would run them, then the marts.
    """
    if not parallel:
        return [[tuple(DEMO_DAGS)]]
    first, *middle, last = DEMO_DAGS
    return [[(first,)], [(dag,) for dag in middle], [(last,)]]


def _dagtest(
    env: dict[str, str],
    day: dt.date,
    log_path: Path,
    timeout_s: float,
    groups: list[list[tuple[str, ...]]],
    pgdata: Path | None = None,
) -> dict:
    """Run dagtest for ``day``: the processes of a group at once, the groups in turn.

    Each DAG's wall seconds run from the previous result line of its process, or from the
    process's start (so the first DAG of each process carries Airflow's import).
    """
    started = time.perf_counter()
    cpu = CpuClock(pgdata)
    running: list[subprocess.Popen] = []
    sampler = RssSampler(lambda: [p.pid for p in running if p.poll() is None])
    sampler.start()
    results: list[dict[str, Any]] = []
    timed_out = threading.Event()

    def kill(sig: int) -> None:
        for proc in running:
            if proc.poll() is None:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    def stop_on_timeout() -> None:
        kill(signal.SIGTERM)  # Airflow may be in a task that ignores it: kill after a grace
        threading.Timer(30, kill, (signal.SIGKILL,)).start()

    def follow(proc: subprocess.Popen, since: float, log: Any, lock: threading.Lock) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with lock:
                log.write(line)
                log.flush()
                if line.startswith('{"dag_id"'):
                    now = time.perf_counter()
                    results.append({**json.loads(line), "wall_s": round(now - since, 2)})
                    since = now

    timer = threading.Timer(timeout_s, stop_on_timeout)
    timer.start()
    codes = []
    lock = threading.Lock()
    with log_path.open("w") as log:
        for group in groups:
            if timed_out.is_set():
                break
            followers = []
            for dag_ids in group:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "civicflow.airflow.dagtest", day.isoformat(), *dag_ids],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    bufsize=1,
                    start_new_session=True,  # its own process group, to stop it on time-out
                )
                running.append(proc)
                follower = threading.Thread(
                    target=follow, args=(proc, time.perf_counter(), log, lock), daemon=True
                )
                follower.start()
                followers.append((proc, follower))
            for proc, follower in followers:
                codes.append(proc.wait())
                follower.join()
    timer.cancel()
    total = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    spent = cpu.spent()
    order = {dag_id: i for i, dag_id in enumerate(DEMO_DAGS)}
    return {
        "exit_code": next((c for c in codes if c), 0),
        "timed_out": timed_out.is_set(),
        "total_s": round(total, 2),
        "processes": [[list(dags) for dags in group] for group in groups],
        "dags": sorted(results, key=lambda r: order.get(r["dag_id"], len(order))),
        "peak_rss_tree_mb": round(sampler.tree_max / MB),
        "peak_rss_largest_process_mb": round(sampler.single_max / MB),
        "processes_max": sampler.processes_max,
        "simulator_process_rss_mb": round(sampler.own_max / MB),
        "cpu_s": spent,
        # No 2-core run of this work can be shorter; without the simulator, whose CPU a real
        # department's server spends elsewhere.
        "two_core_floor_s": round(spent["total_s"] / 2, 1),
        "two_core_floor_without_simulator_s": round(
            (spent["total_s"] - spent["simulator_s"]) / 2, 1
        ),
        "log": str(log_path),
    }


def _dag_runs(metadata: str, day: dt.date) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds from each DAG's first task start to its last task end for ``day``; per task."""
    with psycopg.connect(metadata) as conn:
        tasks = conn.execute(
            "select ti.dag_id, ti.task_id, ti.start_date, ti.end_date from task_instance ti "
            "join dag_run r on r.dag_id = ti.dag_id and r.run_id = ti.run_id "
            "where (r.logical_date at time zone 'Asia/Shanghai')::date = %s "
            "order by ti.start_date",
            (day,),
        ).fetchall()
    spans: dict[str, list[dt.datetime]] = {}
    per_task = {}
    for dag_id, task_id, start, end in tasks:
        if start is None or end is None:
            continue
        span = spans.setdefault(dag_id, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
        per_task[f"{dag_id}.{task_id}"] = round((end - start).total_seconds(), 2)
    runs = {dag_id: round((e - s).total_seconds(), 2) for dag_id, (s, e) in spans.items()}
    # How long any DAG was running: the union of their spans (they may overlap).
    busy, reach = 0.0, None
    for start, end in sorted(spans.values()):
        if reach is None or start > reach:
            busy += (end - start).total_seconds()
            reach = end
        elif end > reach:
            busy += (end - reach).total_seconds()
            reach = end
    runs["*"] = round(busy, 2)
    return runs, per_task


def _loads(warehouse: str, seen: set[str]) -> tuple[dict[str, dict[str, int]], set[str]]:
    """Rows of the batches not in ``seen``, per feed and entity; and every load id now."""
    with psycopg.connect(warehouse) as conn:
        rows = conn.execute(
            "select load_id::text, feed, entity, status, coalesce(source_rows, 0), "
            "coalesce(accepted_rows, 0), coalesce(quarantined_rows, 0) from meta.load_audit"
        ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for load_id, feed, entity, status, source, accepted, quarantined in rows:
        if load_id in seen:
            continue
        figures = out.setdefault(
            f"{feed}.{entity}", {"batches": 0, "source_rows": 0, "accepted_rows": 0}
        )
        figures["batches"] += 1
        figures["source_rows"] += source
        figures["accepted_rows"] += accepted
        figures["quarantined_rows"] = figures.get("quarantined_rows", 0) + quarantined
        if status not in ("published", "merged", "succeeded"):
            figures.setdefault("statuses", []).append(status)  # type: ignore[arg-type]
    return out, {r[0] for r in rows}


def _summarise(run: dict, loads: dict[str, dict[str, int]], airflow: tuple[dict, dict]) -> None:
    airflow_s, run["tasks_s"] = airflow
    rows = sum(f["source_rows"] for f in loads.values())
    run["loads"] = loads
    run["rows_loaded"] = rows
    run["rows_per_s"] = round(rows / run["total_s"]) if run["total_s"] else None
    for dag in run["dags"]:
        feed = FEED_OF_DAG.get(dag["dag_id"])
        dag["airflow_run_s"] = airflow_s.get(dag["dag_id"])
        if feed:
            rows_of = (f["source_rows"] for k, f in loads.items() if k.startswith(feed + "."))
            dag["rows"] = sum(rows_of)
    # Imports, DagBag parse, process start: the time no DAG of the run was running.
    run["startup_s"] = round(run["total_s"] - airflow_s.get("*", 0.0), 2)


@contextlib.contextmanager
def indexed_listings() -> Iterator[None]:
    """The simulator's incremental listings computed once per query instead of once per page.

    As written, ``HealthFeed.listing`` and ``VolunteerFeed.listing`` parse and sort the
    whole history for every page asked, so paging through N records costs O(N² log N / page)
    in the simulator, which then sets the pace of the benchmark. Here a listing is kept per
    (feed, query, changes made so far): pages come from the same sorted list, as a real
    source's index would serve them. Only this process's simulator is affected.
    """
    from civicflow.simulator.health import HealthFeed
    from civicflow.simulator.volunteer import VolunteerFeed

    cache: dict[tuple, list] = {}

    def keep(original: Callable, changes: Callable[[Any], int]) -> Callable:
        def listing(self: Any, *args: Any) -> list:
            key = (original.__qualname__, id(self), args, changes(self))
            if key not in cache:
                cache[key] = original(self, *args)
            return cache[key]

        return listing

    with (
        mock.patch.object(
            HealthFeed, "listing", keep(HealthFeed.listing, lambda f: len(f.changed))
        ),
        mock.patch.object(
            VolunteerFeed, "listing", keep(VolunteerFeed.listing, lambda f: len(f.revoked_later))
        ),
    ):
        try:
            yield
        finally:
            cache.clear()


def _build_source(sim: RunningSimulator, prebuilt: bool) -> None:
    """Generate the simulator's data before the clock starts: the source exists already."""
    state = sim.state
    for feed in ("health", "volunteer", "civil_affairs", "elderly_care"):
        getattr(state, feed)
    if prebuilt:  # files a department has on disk, not written on the first request
        state.civil_affairs.exports()
        for month in state.elderly_care.months:
            for ledger in state.elderly_care.listing(month):
                state.elderly_care.workbook(ledger["file"])


def _steer(sim: RunningSimulator, share: float) -> dict[str, Any]:
    """Change about ``share`` of the records through the simulator's steering endpoints."""
    import requests

    state = sim.state
    health = len(state.health.listing(None))
    hours = len(state.volunteer.listing("service-hours", None))
    ledgers = sum(len(state.elderly_care.listing(m)) for m in state.elderly_care.months)
    asked = {
        "health/cancel": max(1, round(health * share)),
        "volunteer/revoke": max(1, round(hours * share)),
        "elderly_care/republish": max(1, round(ledgers * share)),
    }
    out: dict[str, Any] = {"of": {"health": health, "service_hours": hours, "ledgers": ledgers}}
    for path, count in asked.items():
        response = requests.post(f"{sim.url}/_sim/{path}", params={"count": count}, timeout=60)
        response.raise_for_status()
        out[path] = len(next(iter(response.json().values())))
    # A department's API answers from an index it keeps: the simulator's sorted listings are
    # rebuilt now, before the clock starts, not by the first page the run asks for (a sort
    # of 1.5 million health records: over 20 s at district scale).
    state.health.listing(None)
    state.volunteer.listing("service-hours", None)
    return out


def measure(
    scale: float,
    timeout_s: float = TIMEOUT_S,
    durable: bool = True,
    workdir: Path | None = None,
    source: str = "indexed",
    parallel: bool = False,
) -> dict:
    """The backfill and the next day's incremental run at ``scale``; figures as a dict.

    ``workdir`` (new or empty) keeps the databases and the dagtest logs; else a temporary one.
    ``source`` "indexed" serves the simulator's listings from a sorted index and builds its
    files first (``indexed_listings``), so the figures are the pipeline's; "as-is" runs the
    simulator as written, whose paging is quadratic in the history.
    """
    as_of = dt.datetime.now(SHANGHAI).date()
    day, next_day = as_of - dt.timedelta(days=2), as_of - dt.timedelta(days=1)
    result: dict[str, Any] = {
        "scale": scale,
        "backfill_day": day.isoformat(),
        "incremental_day": next_day.isoformat(),
        "dags": list(DEMO_DAGS),
        "durable_postgres": durable,
        "source": source,
        "parallel": parallel,
    }
    with contextlib.ExitStack() as cleanup:
        if workdir is None:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="e2e-")))
        tmp = workdir
        tmp.mkdir(parents=True, exist_ok=True)
        if source == "indexed":
            cleanup.enter_context(indexed_listings())
        pg = LocalPostgres(tmp / "postgres", port=free_port(), durable=durable)
        pg.start()
        try:
            warehouse, metadata = pg.ensure_database("civicflow"), pg.ensure_database("airflow")
            with RunningSimulator(port=0, scale=scale, as_of=as_of) as sim:
                started = time.perf_counter()
                _build_source(sim, prebuilt=source == "indexed")
                result["simulator_build_s"] = round(time.perf_counter() - started, 1)
                result["simulator_rss_after_build_mb"] = round(
                    psutil.Process().memory_info().rss / MB
                )
                env = airflow_environment(warehouse, metadata, sim.url)
                home = tmp / "airflow"
                home.mkdir(exist_ok=True)
                env.update(
                    {
                        "AIRFLOW_HOME": str(home),
                        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                            home / "passwords.json"
                        ),
                        "CIVICFLOW_REPORT_DIR": str(tmp / "reports"),
                        "CIVICFLOW_GX_DIR": str(tmp / "gx"),
                        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                    }
                )
                started = time.perf_counter()
                airflow = Path(sys.executable).with_name("airflow")
                with (tmp / "migrate.log").open("w") as log:
                    subprocess.run(
                        [str(airflow), "db", "migrate"], env=env, check=True, stdout=log,
                        stderr=subprocess.STDOUT,
                    )  # fmt: skip
                result["airflow_db_migrate_s"] = round(time.perf_counter() - started, 1)

                def with_extras(**extras: dict[str, Any]) -> dict[str, str]:
                    out = dict(env)
                    for conn_id, extra in extras.items():
                        name = f"AIRFLOW_CONN_{conn_id.upper()}"
                        conn = json.loads(out[name])
                        out[name] = json.dumps({**conn, "extra": extra})
                    return out

                year = {"lookback_days": 366, "max_catchup_days": 366}
                months = {"lookback_months": 12}
                result["backfill_extras"] = {"positions_feed": year, "elderly_care_feed": months}
                backfill = _dagtest(
                    with_extras(positions_feed=year, elderly_care_feed=months),
                    day,
                    tmp / "backfill.log",
                    timeout_s,
                    dag_groups(parallel),
                    pg.pgdata,
                )
                loads, seen = _loads(warehouse, set())
                _summarise(backfill, loads, _dag_runs(metadata, day))
                result["backfill"] = backfill
                if backfill["exit_code"] != 0:
                    result["backfill_log_tail"] = Path(backfill["log"]).read_text()[-4000:]
                    return result
                result["changes"] = _steer(sim, CHANGE_SHARE)
                result["incremental_extras"] = {"elderly_care_feed": months}
                incremental = _dagtest(
                    with_extras(elderly_care_feed=months),
                    next_day,
                    tmp / "incremental.log",
                    timeout_s,
                    dag_groups(parallel),
                    pg.pgdata,
                )
                loads, _ = _loads(warehouse, seen)
                _summarise(incremental, loads, _dag_runs(metadata, next_day))
                result["incremental"] = incremental
                if incremental["exit_code"] != 0:
                    result["incremental_log_tail"] = Path(incremental["log"]).read_text()[-4000:]
                result["incremental_ratio"] = round(incremental["total_s"] / backfill["total_s"], 4)
                result["incremental_ratio_without_startup"] = round(
                    (incremental["total_s"] - incremental["startup_s"])
                    / (backfill["total_s"] - backfill["startup_s"]),
                    4,
                )
                result["simulator_peak_rss_mb"] = max(
                    result["simulator_rss_after_build_mb"],
                    backfill["simulator_process_rss_mb"],
                    incremental["simulator_process_rss_mb"],
                )
        finally:
            pg.stop()
    return result


def table(result: dict) -> str:
    phases = [p for p in ("backfill", "incremental") if p in result]
    lines = [
        f"End to end at scale {result['scale']} (backfill {result['backfill_day']}, "
        f"incremental {result['incremental_day']}):",
        "",
        "| DAG | " + " | ".join(f"{p} wall s | {p} tasks s | {p} rows" for p in phases) + " |",
        "|---" * (1 + 3 * len(phases)) + "|",
    ]
    for dag_id in result["dags"]:
        cells = []
        for phase in phases:
            dag = next((d for d in result[phase]["dags"] if d["dag_id"] == dag_id), {})
            cells += [
                f"{dag.get('wall_s', '-')}",
                f"{dag.get('airflow_run_s', '-')}",
                f"{dag.get('rows', '-'):,}" if isinstance(dag.get("rows"), int) else "-",
            ]
        lines.append(f"| {dag_id} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| measure | " + " | ".join(phases) + " |")
    lines.append("|---" * (1 + len(phases)) + "|")
    for key, label in (
        ("total_s", "total wall s"),
        ("startup_s", "outside the DAGs' task spans (imports, parse) s"),
        ("rows_loaded", "rows loaded (source_rows)"),
        ("rows_per_s", "rows per second"),
        ("peak_rss_tree_mb", "peak RSS, dagtest processes summed, MB"),
        ("peak_rss_largest_process_mb", "peak RSS, largest process, MB"),
        ("exit_code", "exit code"),
    ):
        lines.append(f"| {label} | " + " | ".join(str(result[p].get(key)) for p in phases) + " |")
    for key, label in (
        ("dagtest_s", "CPU s, dagtest processes"),
        ("postgres_s", "CPU s, PostgreSQL"),
        ("simulator_s", "CPU s, feed simulator"),
        ("total_s", "CPU s, all"),
    ):
        cells = [str(result[p].get("cpu_s", {}).get(key, "-")) for p in phases]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key, label in (
        ("two_core_floor_s", "2-core floor (CPU s / 2)"),
        ("two_core_floor_without_simulator_s", "2-core floor without the simulator"),
    ):
        cells = [str(result[p].get(key, "-")) for p in phases]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key in (
        "incremental_ratio",
        "incremental_ratio_without_startup",
        "simulator_build_s",
        "simulator_peak_rss_mb",
        "airflow_db_migrate_s",
    ):
        if key in result:
            lines.append(f"| {key} | {result[key]} |" + " |" * (len(phases) - 1))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="1.0: domain.md's district-year")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per phase")
    parser.add_argument(
        "--no-fsync", action="store_true", help="throw-away PostgreSQL without fsync"
    )
    parser.add_argument(
        "--source",
        choices=("indexed", "as-is"),
        default="indexed",
        help="simulator listings from a sorted index and files built first (default), or as-is",
    )
    parser.add_argument("--workdir", type=Path, help="keep databases and logs here (new folder)")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="the ingest DAGs after positions at once, a process each (default: one process)",
    )
    args = parser.parse_args(argv)
    figures = measure(
        args.scale,
        args.timeout,
        durable=not args.no_fsync,
        workdir=args.workdir,
        source=args.source,
        parallel=args.parallel,
    )
    figures["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"end-to-end-{dt.date.today().isoformat()}.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    mode = "parallel" if args.parallel else "sequential"
    runs[f"scale_{args.scale:g}_{args.source}_{mode}"] = figures
    path.write_text(json.dumps(runs, indent=2, ensure_ascii=False) + "\n")
    print(table(figures))
    print(f"\nwritten to {path}")
    return 0 if figures.get("backfill", {}).get("exit_code") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
