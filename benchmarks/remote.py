"""Remote model benchmark: a backfill through ``lh.functions.openai.chat`` against a local
OpenAI-compatible server limited to R requests a minute that refuses 20% of requests with 429.

    .venv/bin/python benchmarks/remote.py            # R = 1,200/min, 1,200 rows (about 1 min)
    .venv/bin/python benchmarks/remote.py --small    # R = 1,200/min, 200 rows (about 10 s)

The server is tests/openai_server.py, in its own process on 127.0.0.1: it answers chat with
``echo: <prompt>``, refuses a seeded 20% of requests with 429 (``Retry-After: 1`` and
``retry-after-ms: 250``, as OpenAI sends both), and enforces its limit of R accepted requests in
any 60-second window (a refused request does not count). A
table of N text rows gets ``add_computed_column(answer=chat(text, rpm=R, concurrency=16,
cache=False))``. Measured:

  throughput   rows answered / wall time of the backfill, in requests a minute, as a share
               of R. Target: at least 0.9.
  lost rows    rows without their answer ``echo: <text>`` (null, wrong, or with an error).
               Target: 0.

Also reported: requests the server saw, 429s it sent (injected and over its limit), retries and
tokens counted by ``lh.functions.openai.stats``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from reporting import add_output_options, machine, table, write_report

import lakehouse as lh

DEFAULTS = {"rows": 1_200, "rpm": 1_200}
SMALL = {"rows": 200, "rpm": 1_200}
REFUSED_SHARE = 0.2
THROUGHPUT_TARGET = 0.9
KEY_NAME = "BENCH_REMOTE_KEY"
SERVER = Path(__file__).resolve().parent.parent / "tests" / "openai_server.py"


def log(message: str) -> None:
    print(f"[remote] {message}", file=sys.stderr, flush=True)


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with _opener().open(request, timeout=10) as answer:
        answer.read()


def _get(url: str) -> Any:
    with _opener().open(url, timeout=30) as answer:
        return json.loads(answer.read())


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, no proxy


def start_server(key: str) -> tuple[subprocess.Popen, str]:
    """The fake server in its own process; its /v1 URL once it answers."""
    sys.path.insert(0, str(SERVER.parent))
    from openai_server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port), key],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("http"):
        proc.kill()
        said = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"the fake server did not start: {said}")
    return proc, line.strip()


def run(db: lh.Catalog, base_url: str, rows: int, rpm: int) -> dict[str, Any]:
    control = base_url.removesuffix("/v1") + "/control"
    _post(control + "/faults", {"rate_429": REFUSED_SHARE, "retry_after": 0.25,
                                "limit": rpm, "window_s": 60.0, "seed": 14})
    t = db.create_table("prompts", {"text": lh.String})
    t.insert([{"text": f"prompt number {i}"} for i in range(rows)], progress=False)
    lh.functions.openai.reset_stats()
    answer = lh.functions.openai.chat(t.text, model="bench", base_url=base_url,
                                      api_key=lh.secret(KEY_NAME), rpm=rpm, concurrency=16,
                                      max_retries=10, cache=False)
    log(f"backfill of {rows:,} rows at {rpm:,} requests/min")
    start = time.perf_counter()
    t.add_computed_column(answer=answer, on_error="ignore", progress=False)
    elapsed = time.perf_counter() - start
    got = t.select(t.text, t.answer, t.answer.errortype).collect().rows()
    lost = sum(1 for text, value, error in got if value != f"echo: {text}" or error is not None)
    records = _get(control)["records"]
    statuses = [r["status"] for r in records]
    usage = lh.functions.openai.stats(t).row(0, named=True)
    achieved = rows / elapsed * 60
    share = achieved / rpm
    return {"rows": rows, "rpm_limit": rpm, "seconds": elapsed,
            "achieved_rpm": achieved, "share_of_limit": share,
            "target_share": THROUGHPUT_TARGET, "lost_rows": lost,
            "server_requests": len(records), "server_429": statuses.count(429),
            "server_429_over_limit": sum(1 for r in records
                                         if r["status"] == 429 and r["retry_after"] != 0.25),
            "retries": usage["retries"], "tokens_in": usage["tokens_in"],
            "tokens_out": usage["tokens_out"],
            "met": bool(share >= THROUGHPUT_TARGET and lost == 0)}


def render(op: dict[str, Any]) -> str:
    met = "yes" if op["met"] else "NO"
    return table([
        ("measure", "value", "target", "met?"),
        (f"throughput ({op['rows']:,} rows)", f"{op['achieved_rpm']:,.0f}/min = "
         f"{op['share_of_limit']:.2f} R", f">= {THROUGHPUT_TARGET} R", met),
        ("lost rows", str(op["lost_rows"]), "0", "yes" if op["lost_rows"] == 0 else "NO"),
        ("wall time", f"{op['seconds']:.1f} s", "", "-"),
        ("server requests (429s; over its limit)",
         f"{op['server_requests']:,} ({op['server_429']:,}; {op['server_429_over_limit']:,})",
         "", "-"),
        ("retries, tokens in/out", f"{op['retries']:,}, {op['tokens_in']:,}/"
         f"{op['tokens_out']:,}", "", "-"),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true",
                        help=f"a quick run: {SMALL['rows']} rows at {SMALL['rpm']}/min")
    parser.add_argument("--rows", type=int, default=None, help="rows to backfill")
    parser.add_argument("--rpm", type=int, default=None, help="the server's limit R (per min)")
    add_output_options(parser, "remote", "lakehouse")
    args = parser.parse_args(argv)
    sizes = SMALL if args.small else DEFAULTS
    rows, rpm = args.rows or sizes["rows"], args.rpm or sizes["rpm"]
    if rows < 10 or rpm < 60:
        parser.error("need --rows >= 10 and --rpm >= 60")
    info = machine(("lakehouse", "pylance", "httpx", "starlette", "uvicorn"))
    started = dt.datetime.now(dt.UTC)
    key = "sk-bench-" + os.urandom(12).hex()
    os.environ[KEY_NAME] = key
    proc, base_url = start_server(key)
    work = Path(tempfile.mkdtemp(prefix="lh-bench-remote-", dir=args.root))
    try:
        op = run(lh.connect(str(work / "lakehouse")), base_url, rows, rpm)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())
    print(f"remote benchmark: {rows:,} rows through chat against a local server limited to "
          f"R = {rpm:,} requests/min with {REFUSED_SHARE:.0%} refused (429), on "
          f"{info['cpu_count']} CPU(s) ({info['cpu_model']}), load average "
          f"{info['load_average'][0]:.1f} at start")
    print(render(op))
    report = {"benchmark": "remote", "started": started.isoformat(timespec="seconds"),
              "small": args.small, "machine": info, "operations": {"backfill": op},
              "all_targets_met": op["met"]}
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
