"""What the loss and duplicate guarantees cost, as ratios in one run (issue 13).

    .venv/bin/python -m bench.costs [--transactions]   (not with another benchmark or stress run)

1. With --transactions: Kafka transactions (Faust's `processing_guarantee="exactly_once"`),
   the alternative to the worker's redo. faust-streaming 0.15.3's exactly-once worker fails
   at its first partition assignment (KeyError in `PartitionAssignor.group_for_topic` from
   `TransactionManager.on_rebalance`), so this gives no figure until that works: see
   docs/design/crash-redo.md, "Why not one write, or a transaction, per record". The Faust
   floor (bench/faust_floor.py: an agent writing N table keys per event, the omnihooks
   transport) with at-least-once and with exactly-once, for 0 and 3 writes per event (3:
   what a message record writes).
2. The settled-jobs table (one changelog write per delivered job, so a job read again is not
   POSTed again): the delivery worker's jobs/s with and without it
   (OMNIHOOKS_SETTLED_RETENTION_S=0), each as a share of raw aiohttp POSTs (the ceiling).

Writes bench/results/costs.json.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import RESULTS, bench_session  # noqa: E402
from topics import codec  # noqa: E402


def main() -> int:
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with bench_session() as bench:
        ceiling = bench.ceiling_post()
        results["ceiling_post_per_s"] = round(ceiling)
        for label, retention in (("with_settled_table", 600.0), ("without_settled_table", 0.0)):
            delivery, _ = bench.delivery_throughput(settled_retention_s=retention)
            results[f"delivery_{label}_per_s"] = round(delivery)
            results[f"delivery_{label}_share"] = round(delivery / ceiling, 3)
            print(f"delivery {label}: {delivery:.0f}/s = {delivery / ceiling:.0%} of {ceiling:.0f} POSTs/s", flush=True)  # fmt: skip
        for writes in (0, 3) if "--transactions" in sys.argv else ():
            for guarantee in ("at_least_once", "exactly_once"):
                os.environ["BENCH_PROCESSING_GUARANTEE"] = guarantee
                rate = bench.faust_floor(writes)
                results[f"{guarantee}_{writes}_writes_per_s"] = round(rate)
                print(f"{guarantee:14} {writes} writes/event: {rate:8.0f} events/s", flush=True)
            ratio = results[f"exactly_once_{writes}_writes_per_s"] / results[f"at_least_once_{writes}_writes_per_s"]  # type: ignore[operator]  # fmt: skip
            results[f"ratio_{writes}_writes"] = round(ratio, 2)
            print(f"exactly-once / at-least-once, {writes} writes: {ratio:.2f}", flush=True)
        os.environ.pop("BENCH_PROCESSING_GUARANTEE", None)
    (RESULTS / "costs.json").write_text(codec.dumps_pretty(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
