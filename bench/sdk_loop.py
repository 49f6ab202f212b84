"""The Python SDK in the loop (run by bench/sdk.sh): how many durable
receipts per second `Client.receipt` from THREADS threads and `AsyncClient`
from TASKS asyncio tasks get from a real server, whether the GIL is released
while they wait, and what background mode's `enqueue` costs per signal and
holds in memory.

Environment: SENDPROMPTLY_BENCH_URL, SENDPROMPTLY_BENCH_API_KEY (a running
server with the rate limit off), BENCH_DURATION (seconds per measurement,
default 10), BENCH_THREADS (32), BENCH_TASKS (256), BENCH_QUICK=1 (smoke).
Prints one `key=value` line per figure for bench/sdk.sh to compare with wrk.
Each receipt has a new event id and, as every SDK call, its own
Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid

import sendpromptly

URL = os.environ["SENDPROMPTLY_BENCH_URL"]
KEY = os.environ["SENDPROMPTLY_BENCH_API_KEY"]
QUICK = os.environ.get("BENCH_QUICK") == "1"
DURATION = float(os.environ.get("BENCH_DURATION", "1" if QUICK else "10"))
THREADS = int(os.environ.get("BENCH_THREADS", "4" if QUICK else "32"))
TASKS = int(os.environ.get("BENCH_TASKS", "8" if QUICK else "256"))
RUN = uuid.uuid4().hex[:8]


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


CPU = {}


def threads(client: sendpromptly.Client, n: int, seconds: float, tag: str) -> float:
    """Receipts per second from n threads, each calling client.receipt in a
    loop; the process's CPU per call goes to CPU[tag]."""
    stop = time.perf_counter() + seconds
    counts = [0] * n

    def worker(i: int) -> None:
        j = 0
        while time.perf_counter() < stop:
            j += 1
            client.receipt(provider="stripe", event_id=f"evt_{tag}_{RUN}_{i}_{j}",
                           event_type="invoice.paid", subject="cus_bench")
        counts[i] = j

    started, cpu = time.perf_counter(), time.process_time()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    CPU[tag] = (time.process_time() - cpu) * 1e6 / max(1, sum(counts))
    return sum(counts) / (time.perf_counter() - started)


async def tasks(n: int, seconds: float) -> float:
    """Receipts per second from n asyncio tasks on one AsyncClient."""
    client = sendpromptly.AsyncClient(api_key=KEY, base_url=URL)
    stop = time.perf_counter() + seconds
    counts = [0] * n

    async def worker(i: int) -> None:
        j = 0
        while time.perf_counter() < stop:
            j += 1
            await client.receipt(provider="stripe", event_id=f"evt_async_{RUN}_{i}_{j}",
                                 event_type="invoice.paid", subject="cus_bench")
        counts[i] = j

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(n)))
    CPU["async"] = (time.process_time() - cpu) * 1e6 / max(1, sum(counts))
    return sum(counts) / (time.perf_counter() - started)


def spin(seconds: float) -> float:
    """Iterations per second of a pure-Python loop (it needs the GIL)."""
    n = 0
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        n += 1
    return n / seconds


def gil(client: sendpromptly.Client, seconds: float) -> None:
    """A CPU-bound thread's progress alone, and while THREADS threads wait on
    receipts. If the SDK held the GIL while waiting for the server, the
    spinning thread would get ~1/(THREADS+1) of its solo rate."""
    alone = spin(seconds / 2)
    result = {}
    spinner = threading.Thread(target=lambda: result.setdefault("rate", spin(seconds)))
    spinner.start()
    rate = threads(client, THREADS, seconds, "gil")
    spinner.join()
    print(f"gil_spin_alone={alone:.0f}")
    print(f"gil_spin_during={result['rate']:.0f}")
    print(f"gil_spin_share={result['rate'] / alone:.3f}")
    print(f"gil_receipts_during={rate:.0f}")
    print(f"gil_fair_share_if_held={1 / (THREADS + 1):.3f}")


def background() -> None:
    """enqueue's cost per signal, and memory with a full queue (run it in a
    process of its own for a clean RSS). The server is unreachable (port 9),
    so nothing leaves the queue but the few in flight."""
    capacity = int(os.environ.get("BENCH_BG_CAPACITY", "2000" if QUICK else "100000"))
    client = sendpromptly.Client(api_key=KEY, base_url="http://127.0.0.1:9")
    bg = client.background(sendpromptly.BackgroundConfig(capacity=capacity))
    before = rss_kib()
    started = time.perf_counter()
    taken = 0
    for i in range(capacity):
        taken += bg.receipt(provider="stripe", event_id=f"evt_bg_{RUN}_{i}",
                            event_type="invoice.paid", subject="cus_bench")
    elapsed = time.perf_counter() - started
    full = rss_kib()
    # Past capacity: dropped (QueueFull), memory must not grow.
    for i in range(capacity):
        bg.receipt(provider="stripe", event_id=f"evt_bgx_{RUN}_{i}",
                   event_type="invoice.paid", subject="cus_bench")
    after = rss_kib()
    stats = bg.stats()
    bg.shutdown(timeout=0.1)
    print(f"bg_enqueue_us={elapsed * 1e6 / capacity:.2f}")
    print(f"bg_accepted={taken} of {capacity}")
    print(f"bg_dropped_queue_full={stats.dropped_queue_full}")
    print(f"bg_rss_full_queue_kib={full - before}")
    print(f"bg_bytes_per_queued_signal={(full - before) * 1024 / capacity:.0f}")
    print(f"bg_rss_growth_past_capacity_kib={after - full}")


def main() -> None:
    what = set(sys.argv[1:]) or {"all"}
    if "all" in what:
        what = {"threads", "async", "gil", "background"}
    client = sendpromptly.Client(api_key=KEY, base_url=URL)
    if what != {"background"}:
        client.receipt(provider="stripe", event_id=f"evt_warm_{RUN}", event_type="invoice.paid")
    if "threads" in what:
        print(f"python_threads={THREADS}")
        print(f"python_threads_rps={threads(client, THREADS, DURATION, 'sync'):.0f}")
        print(f"python_threads_cpu_us_per_call={CPU['sync']:.0f}")
    if "async" in what:
        print(f"python_tasks={TASKS}")
        print(f"python_async_rps={asyncio.run(tasks(TASKS, DURATION)):.0f}")
        print(f"python_async_cpu_us_per_call={CPU['async']:.0f}")
    if "gil" in what:
        gil(client, DURATION)
    if "background" in what:
        background()


if __name__ == "__main__":
    main()
