"""``vms sim`` and ``vms demo``: virtual ONVIF cameras alone, or with a server recording them.

Part of the composition root (the CLI package; :func:`register` adds the commands): ``sim`` runs
:mod:`camsim` cameras until interrupted; ``demo`` is :func:`vms.demo.run_demo`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from vms.logs import setup_logging


def register(sub: Any) -> None:
    """Add ``demo`` and ``sim`` to the top-level subparsers."""
    p = sub.add_parser("demo", help="virtual cameras + server on SQLite, ready in a browser")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--data-dir", default="./vms-demo-data")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sim", help="run virtual ONVIF cameras (camsim)")
    p.add_argument("--cameras", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--json", action="store_true", help="one JSON line per camera")
    p.set_defaults(func=cmd_sim)


def cmd_sim(args: argparse.Namespace) -> int:
    setup_logging("WARNING" if args.json else "INFO")
    from camsim.cli import run_sim

    try:
        asyncio.run(run_sim(cameras=args.cameras, host=args.host, json_out=args.json))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vms.demo import run_demo

    return run_demo(cameras=args.cameras, port=args.port, data_dir=Path(args.data_dir),
                    host=args.host)
