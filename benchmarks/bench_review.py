"""The review page's speed as an annotator feels it: start-up, and the round trip of one label
over HTTP (stored in SQLite, next turn with its stages, neighbours and model guess back), both
while the model is idle and while a background refit runs.

A scripted annotator answers each shown turn with its simulated gold label, through the real
server on a loopback port, waiting for each answer before the next key press (as the page does).

    python benchmarks/bench_review.py [--turns 5000] [--labels 150] [--refit-every 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import polars as pl

from fpi.labels import LabelStore
from fpi.model import load_bundle
from fpi.review import ReviewServer, ReviewSession
from fpi.review.server import TOKEN_HEADER
from fpi.simulate import simulate


def post(server: ReviewServer, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        server.url + path.lstrip("/"),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", TOKEN_HEADER: server.token},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--labels", type=int, default=150)
    parser.add_argument("--refit-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    traces = simulate(args.turns, seed=args.seed, weeks=1)
    gold = dict(traces.select("turn_id", pl.col("label").struct.field("failure_point")).iter_rows())
    bundle = load_bundle()
    with tempfile.TemporaryDirectory() as folder, LabelStore(Path(folder) / "l.db") as store:
        started = time.perf_counter()
        session = ReviewSession(
            traces, store, bundle, annotator="bench", refit_every=args.refit_every
        )
        start_s = time.perf_counter() - started
        server = ReviewServer(session, port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        idle, refitting, refits = [], [], []
        refit_started = None
        state = session.state()
        for _ in range(args.labels):
            turn = state["turn"]["turn_id"]
            sent = time.perf_counter()
            state = post(server, "/api/label", {"turn_id": turn, "failure_point": gold[turn]})
            elapsed = time.perf_counter() - sent
            (refitting if state["model"]["refitting"] else idle).append(elapsed)
            if state["model"]["refitting"] and refit_started is None:
                refit_started = time.perf_counter()
            if not state["model"]["refitting"] and refit_started is not None:
                refits.append(time.perf_counter() - refit_started)
                refit_started = None
        session.wait_for_refit(600)
        if refit_started is not None:
            refits.append(time.perf_counter() - refit_started)
        final = session.state()["model"]
        server.shutdown()
        server.server_close()
        session.close()

    print(f"{args.turns} simulated turns, bundled model, refit every {args.refit_every} labels")
    print(f"{'figure':<46} {'value':>10}")
    print(f"{'session start (explainer, queue, guesses), s':<46} {start_s:>10.2f}")
    for name, values in (("idle", idle), ("during a refit", refitting)):
        if values:
            print(
                f"{'label round trip ' + name + ', median ms':<46} "
                f"{1000 * statistics.median(values):>10.1f}"
            )
            print(
                f"{'label round trip ' + name + ', p95 ms':<46} "
                f"{1000 * percentile(values, 0.95):>10.1f}"
            )
            print(f"{'labels answered ' + name:<46} {len(values):>10}")
    for i, seconds in enumerate(refits, start=1):
        print(f"{f'refit {i} (adapt + re-rank), s, <=':<46} {seconds:>10.2f}")
    print(f"{'model version at the end':<46} {final['version']:>10}")


if __name__ == "__main__":
    main()
