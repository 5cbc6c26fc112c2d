"""Dramatiq half of the queue throughput benchmark (run by benches/queue.rs).

Usage: python3 dramatiq_queue.py --url redis://127.0.0.1:6379 --jobs 20000 --workers 4 \
           [--prefetch P]

No-op jobs through Dramatiq's RedisBroker (default middleware), in a namespace of its own on
the given Redis, the same two scenarios as the Rust half:

- burst:  one producer sends N messages, then a Worker with W threads drains them;
- stream: a Worker with W threads is running (warmed up by one message), one producer in a
          separate process (its own interpreter, so it does not share the workers' GIL) sends N
          messages as fast as it can while they are consumed.

Dramatiq's consumer thread fetches at most `prefetch` unacked messages (default 2 per worker
thread) and sleeps 5 ms and more, doubling, whenever that many are outstanding; with no-op
jobs that sleep, not Redis or the CPU, bounds its rate. `--prefetch P` (Dramatiq's
`dramatiq_queue_prefetch` setting) runs it tuned for throughput instead.

Each message carries its send time (time.monotonic_ns, CLOCK_MONOTONIC, the same clock in
every process on the machine); an `after_ack` middleware hook records the ack time, so the
latency is enqueue to ack. Prints one JSON object per scenario on stdout. Exits with status 3
and a note on stderr when dramatiq or redis (the Python packages) cannot be imported.
"""

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid

# Dramatiq reads its prefetch setting when it is imported: set it before the import.
_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--prefetch", type=int, default=0)
PREFETCH = _pre.parse_known_args()[0].prefetch
if PREFETCH:
    os.environ["dramatiq_queue_prefetch"] = str(PREFETCH)

try:
    import dramatiq
    import redis
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.middleware import Middleware
except ImportError as e:  # the Rust half prints the note and skips this half
    print(f"dramatiq benchmark skipped: {e} (pip install dramatiq redis)", file=sys.stderr)
    sys.exit(3)


class AckClock(Middleware):
    """Counts acks, records ack time minus send time per message."""

    def __init__(self, expected):
        self.expected = expected
        self.latencies_ns = []
        self.last_ack_ns = 0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def reset(self, expected):
        with self.lock:
            self.expected = expected
            self.latencies_ns = []
            self.last_ack_ns = 0
            self.done.clear()

    def after_ack(self, broker, message):
        now = time.monotonic_ns()
        with self.lock:
            self.latencies_ns.append(now - message.args[1])
            self.last_ack_ns = now
            if len(self.latencies_ns) >= self.expected:
                self.done.set()


def make_broker(url, namespace, clock=None):
    broker = RedisBroker(url=url, namespace=namespace)
    if clock is not None:
        broker.add_middleware(clock)
    dramatiq.set_broker(broker)
    return broker


def declare(broker):
    @dramatiq.actor(broker=broker, max_retries=0, queue_name="bench")
    def noop(i, sent_ns):
        pass

    return noop


def produce(url, namespace, jobs, start_event):
    """Child process: send `jobs` messages, each stamped with its send time."""
    broker = make_broker(url, namespace)
    noop = declare(broker)
    start_event.wait()
    for i in range(jobs):
        noop.send(i, time.monotonic_ns())


def percentile(sorted_ns, p):
    if not sorted_ns:
        return 0.0
    idx = min(len(sorted_ns) - 1, int(round(p / 100 * (len(sorted_ns) - 1))))
    return sorted_ns[idx] / 1e6


def report(mode, jobs, workers, start_ns, enqueued_ns, clock):
    lat = sorted(clock.latencies_ns)
    total_s = (clock.last_ack_ns - start_ns) / 1e9
    out = {
        "system": "dramatiq",
        "mode": mode,
        "jobs": jobs,
        "workers": workers,
        "prefetch": PREFETCH or 2 * workers,
        "jobs_per_s": jobs / total_s,
        "enqueue_per_s": jobs / ((enqueued_ns - start_ns) / 1e9) if enqueued_ns else None,
        "drain_per_s": jobs / ((clock.last_ack_ns - enqueued_ns) / 1e9) if enqueued_ns else None,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "seconds": total_s,
    }
    print(json.dumps(out), flush=True)


def wait_done(clock, jobs, what):
    if not clock.done.wait(timeout=600):
        print(f"dramatiq {what}: only {len(clock.latencies_ns)} of {jobs} acked", file=sys.stderr)
        sys.exit(1)


def burst(url, jobs, workers):
    namespace = f"heimdex-bench-dramatiq-{uuid.uuid4().hex}"
    clock = AckClock(jobs)
    broker = make_broker(url, namespace, clock)
    noop = declare(broker)
    try:
        start = time.monotonic_ns()
        for i in range(jobs):
            noop.send(i, time.monotonic_ns())
        enqueued = time.monotonic_ns()
        worker = dramatiq.Worker(broker, worker_threads=workers)
        worker.start()
        wait_done(clock, jobs, "burst")
        worker.stop()
        report("burst", jobs, workers, start, enqueued, clock)
    finally:
        cleanup(url, namespace)


def stream(url, jobs, workers):
    namespace = f"heimdex-bench-dramatiq-{uuid.uuid4().hex}"
    clock = AckClock(1)
    broker = make_broker(url, namespace, clock)
    noop = declare(broker)
    worker = dramatiq.Worker(broker, worker_threads=workers)
    worker.start()
    try:
        # Warm up: the worker is fetching before the clock starts.
        noop.send(-1, time.monotonic_ns())
        wait_done(clock, 1, "warm-up")
        clock.reset(jobs)
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Event()
        producer = ctx.Process(target=produce, args=(url, namespace, jobs, go))
        producer.start()
        time.sleep(1.0)  # let the child import dramatiq and connect
        start = time.monotonic_ns()
        go.set()
        wait_done(clock, jobs, "stream")
        producer.join()
        worker.stop()
        report("stream", jobs, workers, start, None, clock)
    finally:
        cleanup(url, namespace)


def cleanup(url, namespace):
    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter(match=f"{namespace}*", count=1000))
    if keys:
        r.delete(*keys)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="redis://127.0.0.1:6379")
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--prefetch", type=int, default=0, help="0: Dramatiq's default (2 x workers)")
    args = ap.parse_args()
    burst(args.url, args.jobs, args.workers)
    stream(args.url, args.jobs, args.workers)


if __name__ == "__main__":
    main()
