"""What tracing costs a delivery worker (issue 37's benchmark).

    .venv/bin/python -m bench.tracing_cost [--against REF]   # about 4 minutes

A delivery worker's rate over the same jobs (each carrying a caller's traceparent), paired
and in alternating order: the workers of REF (default 67dad44, the last commit without
tracing), this checkout's with tracing off, with tracing on (spans exported over OTLP/HTTP
to the benchmark's receiver), and on with one trace in ten sampled (the SDK's own
`OTEL_TRACES_SAMPLER=traceidratio`, which ignores the caller's sampled flag). Targets: off at
most 2 % below REF, on at most 10 %. Into bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from typing import Any

from bench.run import RESULTS, Bench, baseline_tree, bench_session
from topics import codec

JOBS = 20_000
PAIRS = 3
# one trace in ten, by trace id, whatever the caller's sampled flag says
SAMPLED = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


def traceparent(n: int) -> str:
    """Each job a caller's trace of its own (random ids, as traces are), the same every run."""
    trace_id = random.Random(n).getrandbits(128)
    return f"00-{trace_id:032x}-b7ad6b7169203331-01"


def rate(bench: Bench, **overrides: Any) -> float:
    fields = {"traceparent": traceparent}
    return bench.delivery_throughput(count=JOBS, job_fields=fields, **overrides)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description="tracing's cost to a delivery worker")
    parser.add_argument("--against", default="67dad44", help="a commit without tracing")
    args = parser.parse_args()
    r: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                         "against": args.against, "trials": []}  # fmt: skip
    with bench_session() as bench:
        before = baseline_tree(args.against)
        kinds = ["baseline", "off", "on", "sampled"]
        for n in range(PAIRS):
            trial: dict[str, float] = {}
            for kind in kinds[n % 4 :] + kinds[: n % 4]:  # a different kind first each time
                bench.worker_source = before if kind == "baseline" else None
                otlp = {"otlp_endpoint": bench.url("/otlp")} if kind in ("on", "sampled") else {}
                sampler = SAMPLED if kind == "sampled" else {}
                os.environ.update(sampler)
                try:
                    trial[kind] = round(rate(bench, **otlp), 1)
                finally:
                    for name in sampler:
                        os.environ.pop(name)
            bench.worker_source = None
            r["trials"].append(trial)
            print(trial, flush=True)
    trials = r["trials"]
    r["off_share_of_baseline"] = round(
        statistics.median(t["off"] / t["baseline"] for t in trials), 3
    )
    r["on_share_of_baseline"] = round(statistics.median(t["on"] / t["baseline"] for t in trials), 3)
    r["sampled_share_of_baseline"] = round(
        statistics.median(t["sampled"] / t["baseline"] for t in trials), 3
    )
    r["targets"] = "off ≥ 98 % of the baseline's rate, on ≥ 90 %"
    r["met"] = r["off_share_of_baseline"] >= 0.98 and r["on_share_of_baseline"] >= 0.90
    (RESULTS / "tracing.json").write_text(codec.dumps_pretty(r) + "\n")
    print(codec.dumps_pretty(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
