"""Load on `qaexp serve`: N concurrent clients on 127.0.0.1, with request batching and with --no-batching.

For each mode a fresh `python -m qaexp.serve MODEL_DIR --port 0` is started; after one warm-up request,
--clients clients each send one question at a time (POST /predict, one question per request, as the
Hugging Face Inference API is used), the next as soon as the last is answered, until --requests requests were
sent or --duration seconds passed; requests in flight then finish. Questions are qaexp's synthetic validation
questions, in turn. Reported per mode: requests sent and answered (HTTP 200 with an answer; anything else is
counted as lost), throughput (answered requests per second of the load), latency p50/p99, and the service's
own batch figures from /health. Finally: whether every request got an answer in both modes, and whether both
modes gave every question the same answer.

    python benchmarks/serve_load.py MODEL_DIR [--clients 16] [--requests 600] [--duration 60]

Prints the figures, then exactly one JSON line as the last line of output.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = {"batching": [], "no-batching": ["--no-batching"]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=600, help="at most this many requests per mode")
    parser.add_argument("--duration", type=float, default=60.0, help="at most this many seconds of load per mode")
    parser.add_argument("--questions", type=int, default=200, help="distinct questions, sent in turn")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take")
    parser.add_argument("--order", choices=["batching-first", "no-batching-first"], default="batching-first",
                        help="which mode runs first (the second one gets a machine warmed by the first)")
    parser.add_argument("--serve-args", default="", help="more arguments for qaexp serve, e.g. '--max-wait-ms 2'")
    args = parser.parse_args(argv)
    if min(args.clients, args.requests, args.questions) < 1 or args.duration <= 0:
        parser.error("--clients, --requests, --questions and --duration must be positive")
    return args


def questions(count: int) -> list[dict]:
    sys.path.insert(0, str(REPO))
    from qaexp.data.synthetic import generate_examples

    return [{"id": r["id"], "question": r["question"], "context": r["context"]}
            for r in generate_examples(count, seed=11, split="validation")]


class Server:
    """`python -m qaexp.serve` on a free port of 127.0.0.1, stopped with SIGTERM."""

    def __init__(self, model_dir: str, extra: list[str]):
        self.exit_status = None
        self.process = subprocess.Popen([sys.executable, "-m", "qaexp.serve", model_dir, "--port", "0", *extra],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> str:
        for _ in range(2):
            line = self.process.stdout.readline()
            found = re.search(r"listening on (http://\S+)/ ", line)
            if found:
                return found.group(1)
        self.process.kill()
        raise SystemExit(f"qaexp serve did not start: {self.process.stderr.read()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def load(url: str, items: list[dict], args) -> dict:
    import aiohttp  # a lighter client than httpx: the clients share the machine's CPU with the service

    latencies, answers, lost = [], {}, []
    sent = 0
    deadline = time.monotonic() + args.duration

    def next_item():
        nonlocal sent
        if sent >= args.requests or time.monotonic() >= deadline:
            return None
        sent += 1
        return items[(sent - 1) % len(items)]

    async def ask(http, item) -> tuple[int, object]:
        body = {"inputs": {"question": item["question"], "context": item["context"]}}
        async with http.post(f"{url}/predict", json=body) as response:
            return response.status, await response.json()

    async def client(http):
        while (item := next_item()) is not None:
            began = time.perf_counter()
            try:
                status, reply = await ask(http, item)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
                status, reply = type(err).__name__, None
            if status == 200 and isinstance(reply, dict) and "answer" in reply:
                latencies.append(time.perf_counter() - began)
                answers.setdefault(item["id"], set()).add(reply["answer"])
            else:
                lost.append(str(status))

    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=args.timeout)) as http:
        await ask(http, items[0])
        before = await health(http, url)
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(args.clients)))
        elapsed = time.perf_counter() - began
        after = await health(http, url)
    batches = after["batches"] - before["batches"]
    return {"sent": sent, "answered": len(latencies), "lost": len(lost), "lost_statuses": sorted(set(lost))[:5],
            "seconds": round(elapsed, 2), "throughput_rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(1000 * percentile(latencies, 50), 1), "p99_ms": round(1000 * percentile(latencies, 99), 1),
            "batches": batches,
            "mean_batch_requests": round((after["requests"] - before["requests"]) / batches, 2) if batches else 0,
            "largest_batch_requests": after["largest_batch_requests"],
            "model_busy": round((after["model_seconds"] - before["model_seconds"]) / elapsed, 2), "answers": answers}


async def health(http, url: str) -> dict:
    async with http.get(f"{url}/health") as response:
        return await response.json()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[rank]


def same_answers(results: dict) -> bool:
    """Every question got one answer text in every mode, and the same one in all modes."""
    per_mode = [r["answers"] for r in results.values()]
    if any(len(texts) != 1 for answers in per_mode for texts in answers.values()):
        return False
    common = set.intersection(*(set(answers) for answers in per_mode))
    return all(len({next(iter(answers[qid])) for answers in per_mode}) == 1 for qid in common)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    load1, load5, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, {model}, load average {load1:.2f} / {load5:.2f} (1 / 5 min) at the start"


def main(argv=None) -> int:
    args = parse_args(argv)
    items = questions(args.questions)
    described = machine()
    print(f"machine: {described}")
    print(f"load: {args.clients} clients, at most {args.requests} requests or {args.duration:g} s per mode, "
          f"{len(items)} distinct questions, one per request")
    results = {}
    order = list(MODES) if args.order == "batching-first" else list(reversed(MODES))
    for mode in order:
        flags = MODES[mode]
        server = Server(args.model_dir, flags + args.serve_args.split())
        with server as url:
            results[mode] = asyncio.run(load(url, items, args))
        r = results[mode]
        r["server_exit_status"] = server.exit_status  # 0: it stopped cleanly on SIGTERM
        print(f"{mode:12s} sent {r['sent']:5d}  answered {r['answered']:5d}  lost {r['lost']}  "
              f"{r['throughput_rps']:7.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"({r['batches']} forward batches, {r['mean_batch_requests']} requests each on average, "
              f"largest {r['largest_batch_requests']}; model busy {100 * r['model_busy']:.0f}% of the time)")
    every_answered = all(r["lost"] == 0 and r["answered"] == r["sent"] for r in results.values())
    identical = same_answers(results)
    speedup = results["batching"]["throughput_rps"] / max(results["no-batching"]["throughput_rps"], 1e-9)
    print(f"every request got an answer: {'yes' if every_answered else 'NO'}; both modes gave every question the "
          f"same answer: {'yes' if identical else 'NO'}; batching throughput {speedup:.2f}x")
    summary = {mode: {k: v for k, v in r.items() if k != "answers"} for mode, r in results.items()}
    print(json.dumps({**summary, "every_request_answered": every_answered, "same_answers": identical,
                      "throughput_ratio": round(speedup, 2), "clients": args.clients, "machine": described}))
    return 0 if every_answered and identical else 1


if __name__ == "__main__":
    sys.exit(main())
