"""client.py end to end, and long-poll at scale, against the real server (`python app.py serve`).

1. Wrapping a command that prints as fast as it can (`python client.py run -- python -c ...`): lines/s
   from the wrapper's start until every line is stored and the session ended; the wrapper's own CPU per
   line (its children's CPU less what the command reports for itself); the server's CPU per line; and
   the command's own run time (measured inside the command) alone, writing to /dev/null or into a pipe
   that `cat` drains, and under the wrapper: the wrapper must not slow it down. Beside it, the same batches POSTed directly by a client
   that does nothing else: the server's own ceiling for this traffic.
2. `--polls` long-polls waiting at once (`wait=60`, one session, from a separate process) while this
   process measures GET /health one request at a time: p50/p99 with and without them; then one message
   wakes them all: how long until every poll has its answer, and the server's memory per waiting poll.

The machine is shared: compare within one run, and read the load average printed with the tables.
Usage: python bench/client.py [--lines 200000] [--rounds 3] [--polls 1000]
"""
import argparse
import asyncio
import http.client
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import LiveServer  # noqa: E402

# Prints N lines as fast as Python can, then its own run time and CPU on stderr (the last line).
PRINTER = """import os, sys, time
started = time.perf_counter()
write = sys.stdout.write
for i in range({lines}):
    write(f"line {{i}}: the quick brown fox jumps over the lazy dog\\n")
sys.stdout.flush()
cpu = os.times()
print(f"RUN {{time.perf_counter() - started}} {{cpu.user + cpu.system}}", file=sys.stderr)
"""


def worker_cpu(server):
    times = server.worker.cpu_times()
    return times.user + times.system


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_run(stderr):
    """(seconds, cpu seconds) the printer reported for itself."""
    [line] = [line for line in stderr.splitlines() if line.startswith("RUN ")]
    _, seconds, cpu = line.split()
    return float(seconds), float(cpu)


def alone(lines, reader=None):
    """The printer's own run time writing to /dev/null, or into a pipe that `reader` drains."""
    if reader is None:
        proc = subprocess.run([sys.executable, "-c", PRINTER.format(lines=lines)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=True)
        return own_run(proc.stderr)[0]
    printer = subprocess.Popen([sys.executable, "-c", PRINTER.format(lines=lines)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    drain = subprocess.Popen(reader, stdin=printer.stdout, stdout=subprocess.DEVNULL)
    printer.stdout.close()
    _, err = printer.communicate()
    drain.wait()
    return own_run(err)[0]


def wrapped(server, lines, tag):
    cpu_before, server_before = children_cpu(), worker_cpu(server)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "client.py"), "run", "--url", server.url, "--token",
                           server.token, "--tag", tag, "--", sys.executable, "-c", PRINTER.format(lines=lines)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    elapsed = time.perf_counter() - started
    server_cpu = worker_cpu(server) - server_before  # before the check below reads every line back
    command_seconds, command_cpu = own_run(proc.stderr)
    wrapper_cpu = children_cpu() - cpu_before - command_cpu
    stored = stored_lines(server, tag)
    assert stored == lines + 1, f"{stored} of {lines} lines (+ the RUN line) stored"  # and the exit message
    return {"rate": lines / elapsed, "wrapper_us": wrapper_cpu / lines * 1e6,
            "server_us": server_cpu / lines * 1e6, "command": command_seconds}


def stored_lines(server, tag):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/api/sessions", headers=server.headers)
    [sid] = [s["id"] for s in json.loads(conn.getresponse().read())["items"] if s["tag"] == tag]
    count, after = 0, 0
    while True:
        conn.request("GET", f"/v3/sessions/{sid}/messages?after_seq={after}&limit=500", headers=server.headers)
        page = json.loads(conn.getresponse().read())
        count += sum(1 for m in page["messages"] if m["role"] is None)
        if not page["hasMore"]:
            return count
        after = page["messages"][-1]["seq"]


def direct(server, lines, tag):
    """The server's own ceiling for this traffic: the same messages in batches of 100, POSTed one after
    another on one keep-alive connection by a client that does nothing else."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {**server.headers, "Content-Type": "application/json"}
    conn.request("POST", "/v1/sessions", json.dumps({"tag": tag, "metadata": ""}), headers)
    sid = json.loads(conn.getresponse().read())["session"]["id"]
    text = "line {}: the quick brown fox jumps over the lazy dog"
    bodies = [json.dumps({"messages": [
        {"content": {"type": "output", "stream": "stdout", "text": text.format(i)}, "localId": f"0123456789abcdef-{i}"}
        for i in range(start, min(start + 100, lines))]}) for start in range(0, lines, 100)]
    server_before, started = worker_cpu(server), time.perf_counter()
    for body in bodies:
        conn.request("POST", f"/v3/sessions/{sid}/messages", body, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    return {"rate": lines / (time.perf_counter() - started),
            "server_us": (worker_cpu(server) - server_before) / lines * 1e6}


def bench_wrapper(server, lines, rounds):
    print(f"\n1. python client.py run -- (a command printing {lines:,} lines as fast as it can), best of {rounds}")
    best_alone = min(alone(lines) for _ in range(rounds))
    best_cat = min(alone(lines, ["cat"]) for _ in range(rounds))
    runs = [wrapped(server, lines, f"bench-{i}") for i in range(rounds)]
    best = max(runs, key=lambda r: r["rate"])
    ceiling = max((direct(server, lines, f"direct-{i}") for i in range(rounds)), key=lambda r: r["rate"])
    print(f"{'':<28}{'lines/s':>9} {'server CPU/line':>16} {'wrapper CPU/line':>17} {'command run time':>17}")
    print(f"{'command alone (> /dev/null)':<28}{'':>9} {'':>16} {'':>17} {best_alone:>15.3f} s")
    print(f"{'command | cat > /dev/null':<28}{'':>9} {'':>16} {'':>17} {best_cat:>15.3f} s")
    print(f"{'wrapped, end to end':<28}{best['rate']:>9,.0f} {best['server_us']:>13.1f} µs "
          f"{best['wrapper_us']:>14.1f} µs {min(r['command'] for r in runs):>15.3f} s")
    print(f"{'same batches POSTed direct':<28}{ceiling['rate']:>9,.0f} {ceiling['server_us']:>13.1f} µs")
    print(f"wrapped / direct: {best['rate'] / ceiling['rate']:.2f}")


# --- long-poll -----------------------------------------------------------------------------------

async def _polls(port, headers, sid, count, ready, done):
    request = (f"GET /v3/sessions/{sid}/messages?after_seq=0&wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: {headers['Authorization']}\r\nConnection: close\r\n\r\n").encode()

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer.startswith(b"HTTP/1.1 200") and b'"content":"wake up"' in answer

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    await asyncio.sleep(0)
    ready.put("sent")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    done.put((sum(1 for r in results if r is True), time.perf_counter()))


def pollers(port, headers, sid, count, ready, done):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_polls(port, headers, sid, count, ready, done))


def health_latencies(server, seconds=3.0):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    latencies, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99)], len(latencies) / seconds


def bench_longpoll(server, count):
    print(f"\n2. {count:,} long-polls waiting at once (wait=60) while GET /health is measured one at a time")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/v1/sessions", json.dumps({"tag": "polled", "metadata": ""}),
                 {**server.headers, "Content-Type": "application/json"})
    sid = json.loads(conn.getresponse().read())["session"]["id"]
    quiet = health_latencies(server)
    rss_before = server.worker.memory_info().rss
    ready, done = multiprocessing.Queue(), multiprocessing.Queue()
    process = multiprocessing.Process(target=pollers, args=(server.port, server.headers, sid, count, ready, done))
    process.start()
    ready.get(timeout=60)
    time.sleep(3)  # every poll connected and waiting
    rss_per_poll = (server.worker.memory_info().rss - rss_before) / count
    busy = health_latencies(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)  # the first one idled out
    started = time.perf_counter()
    conn.request("POST", f"/v3/sessions/{sid}/messages", json.dumps({"messages": [{"content": "wake up"}]}),
                 {**server.headers, "Content-Type": "application/json"})
    assert conn.getresponse().read()
    answered, finished = done.get(timeout=120)
    process.join(30)
    print(f"{'waiting polls':>14} {'/health p50':>12} {'p99':>9} {'req/s':>8} {'all answered after':>19} "
          f"{'answered':>9} {'RSS/poll':>9}")
    print(f"{0:>14} {quiet[0]:>9.2f} ms {quiet[1]:>6.2f} ms {quiet[2]:>8,.0f}")
    print(f"{count:>14,} {busy[0]:>9.2f} ms {busy[1]:>6.2f} ms {busy[2]:>8,.0f} "
          f"{(finished - started) * 1000:>16,.0f} ms {answered:>9,} {rss_per_poll / 1024:>5.0f} KiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--polls", type=int, default=1000, help="0: skip the long-poll part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server = LiveServer(Path(directory) / "bench.db").start()
        try:
            print(f"load average before: {open('/proc/loadavg').read().split()[:3]}")
            bench_wrapper(server, args.lines, args.rounds)
            if args.polls:
                bench_longpoll(server, args.polls)
            print(f"\nload average after: {open('/proc/loadavg').read().split()[:3]}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
