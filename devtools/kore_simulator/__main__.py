"""Run the Kore.ai campaign simulator until Ctrl-C.

    python -m devtools.kore_simulator --port 8787 --seed devtools/kore_simulator/seed.example.json

The first line on stdout is the base URL (scripts can read it, e.g. with --port 0); the request
log goes to stderr, one line per answered request.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devtools.kore_simulator.server import KoreSimulator
from devtools.kore_simulator.state import ALREADY_STOPPED_MODES


def _rate_limit(text: str) -> tuple[int, float]:
    """Parse "N/SECONDS", e.g. "10/1" or "600/60"."""
    count, _, seconds = text.partition("/")
    try:
        parsed = int(count), float(seconds or "1")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N/SECONDS, got {text!r}") from None
    if parsed[0] < 1 or parsed[1] <= 0:
        raise argparse.ArgumentTypeError("N and SECONDS must be positive")
    return parsed


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.kore_simulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=8787, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--seed", type=Path, help="JSON file with apps, campaigns and enforceJti")
    parser.add_argument("--already-stopped-mode", choices=ALREADY_STOPPED_MODES, default="error")
    parser.add_argument("--unknown-campaign-status", type=int, default=404, metavar="HTTP_STATUS")
    parser.add_argument("--rate-limit", type=_rate_limit, metavar="N/SECONDS", help="per accountId")
    return parser.parse_args(argv)


def _log_requests(sim: KoreSimulator, stop: threading.Event) -> None:
    """Print each logged request once; polling keeps the server free of any CLI concern."""
    printed: set[int] = set()  # ids of logged objects: the log is sorted by arrival, not append order
    while not stop.wait(0.2):
        for request in sim.requests:
            if id(request) not in printed:
                printed.add(id(request))
                print(
                    f"{request.status} {request.method} {request.path} kind={request.kind}", file=sys.stderr
                )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    seed = json.loads(args.seed.read_text()) if args.seed else {}
    sim = KoreSimulator.from_seed(seed, port=args.port)
    sim.already_stopped_mode = args.already_stopped_mode
    sim.unknown_campaign_status = args.unknown_campaign_status
    if args.rate_limit:
        count, seconds = args.rate_limit
        sim.set_rate_limit(count, seconds, retry_after=math.ceil(seconds))

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Handled explicitly: a simulator started in the background (`&`) inherits an ignored SIGINT.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    with sim:
        print(sim.base_url, flush=True)
        print(
            f"{len(seed.get('campaigns', []))} campaigns, {len(seed.get('apps', []))} apps; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        logger = threading.Thread(target=_log_requests, args=(sim, stop), daemon=True)
        logger.start()
        while not stop.wait(0.5):  # a timeout keeps the main thread responsive to signals everywhere
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
