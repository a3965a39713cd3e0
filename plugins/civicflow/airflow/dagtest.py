"""Run several ``airflow dags test`` commands in one interpreter, in the order given.

Each run goes through Airflow's own command-line parser and command, exactly as
``airflow dags test <dag_id> <date>`` would; sharing the interpreter saves
importing Airflow and Great Expectations once per DAG, which costs minutes on
a small shared machine. Prints one JSON line per DAG: its id and exit code.

Usage: python -m civicflow.airflow.dagtest <logical-date> <dag_id> [<dag_id> ...]
(with the Airflow environment of the project, as ``make demo`` and the tests set it).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from airflow.cli.cli_parser import get_parser

    logical_date, *dag_ids = argv
    worst = 0
    for dag_id in dag_ids:
        args = get_parser().parse_args(["dags", "test", dag_id, logical_date])
        try:
            args.func(args)
            code = 0
        except SystemExit as exc:  # what the command does when the run fails
            code = exc.code if isinstance(exc.code, int) else 1
        print(json.dumps({"dag_id": dag_id, "exit_code": code}), flush=True)
        worst = worst or code
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
