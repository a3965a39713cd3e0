"""Run the feed simulator: ``python -m civicflow.simulator --port 8765``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from civicflow.simulator.server import make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m civicflow.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument(
        "--scale",
        type=float,
        default=0.001,
        help="share of a district-year of department records (1.0: about 300,000 registered "
        "people, 1.5 million health records); default 0.001",
    )
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = make_server(args.host, args.port, args.seed, scale=args.scale)
    port = server.server_address[1]
    if args.port_file:
        args.port_file.write_text(str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"feed simulator listening on http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
