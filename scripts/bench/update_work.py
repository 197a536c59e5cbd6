"""The update graph's own accounting of its work, written to a file for scripts/bench.sh, run inside the server.

Executed by scripts/deephaven_server.py --script in the server's Python session, started by bench.sh with
BENCH_UPDATE_WORK (the file) and a short UpdatePerformanceTracker reporting interval. Every few seconds it rewrites
the file with one CSV line per reporting interval of the update performance log: the interval's start (Unix
nanoseconds), then the wall-clock and the CPU nanoseconds every table operation spent in it, summed. Unlike the
process' CPU time, this counts only the table operations' work: not the collector, the compiler or the server's
housekeeping, which on a heap holding a million rows cost more than the operations do while nothing is written.
"""

import os
import threading
import time

from deephaven import perfmon
from deephaven.pandas import to_pandas

PATH = os.environ["BENCH_UPDATE_WORK"]
REWRITE_EVERY_S = 2


def per_interval():
    return (
        perfmon.update_performance_log()
        .view(["Start = epochNanos(IntervalStartTime)", "UsageNanos", "CpuNanos"])
        .sum_by("Start")
        .sort("Start")
    )


def rewrite_forever(work):
    while True:
        time.sleep(REWRITE_EVERY_S)
        partial = PATH + ".partial"
        to_pandas(work).to_csv(partial, index=False, header=False)
        os.replace(partial, PATH)


threading.Thread(target=rewrite_forever, args=(per_interval(),), daemon=True).start()
