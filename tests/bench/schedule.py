#!/usr/bin/env python3
"""Schedule benchmarks (issue 18): what a schedule of runs costs in requests, against the
built-in simulator, with the export's defaults (--window 1d, --recheck 1d) unless a scenario says
otherwise. Prints, per scenario: the requests of all runs against the minimum ceil(N/100) and
the target 1.10 x ceil(N/100) + 2 x runs, the requests of one more run with nothing new, and the
files per closed day partition. Run through `make bench` (tests/bench/run.sh).

  sched-hourly        (a) 48 hourly runs over 2 days of 20,000 records
  sched-5min          (b) 288 runs every 5 minutes over one day of 10,000 records
  sched-hourly-1h     (c) (a) with --window 1h
  sched-hourly-nosort (d) (a) against a simulator that ignores sort_by/sort_order (offset form)
"""
import datetime as dt
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time

BIN, OUT = sys.argv[1], sys.argv[2]
# The simulator may come from another binary (BENCH_SIM_BIN), to measure an older export with it.
SIM_BIN = os.environ.get("BENCH_SIM_BIN", BIN)
SCENARIOS = {
    "sched-hourly": dict(records=20_000, days=2, step=3600, window="1d", nosort=False),
    "sched-5min": dict(records=10_000, days=1, step=300, window="1d", nosort=False),
    "sched-hourly-1h": dict(records=20_000, days=2, step=3600, window="1h", nosort=False),
    "sched-hourly-nosort": dict(records=20_000, days=2, step=3600, window="1d", nosort=True),
}
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulator(name, records, days, nosort):
    url_file = os.path.join(OUT, f"{name}.sim.url")
    args = [SIM_BIN, "simulate", "--bind", f"127.0.0.1:{free_port()}", "--records", str(records),
            "--from", START.strftime("%Y-%m-%d"),
            "--to", (START + dt.timedelta(days=days)).strftime("%Y-%m-%d"),
            "--rate-limit", "4000000000"]
    if nosort:
        args.append("--ignore-offset-sort")
    out = open(url_file, "w")
    sim = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.getsize(url_file) > 0:
            break
        time.sleep(0.05)
    return sim, open(url_file).read().strip()


def export(name, url, until, window):
    summary = os.path.join(OUT, f"{name}.json")
    env = dict(os.environ, ZENDESK_OAUTH_TOKEN="sim-token")
    subprocess.run(
        [BIN, "export", "--subdomain", "bench", "--dest", os.path.join(OUT, f"{name}-lake"),
         "--since", START.strftime("%Y-%m-%d"), "--until", until.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "--window", window, "--base-url", url, "--rate-limit-share", "1",
         "--summary-json", summary, "--quiet"],
        env=env, check=True)
    result = json.load(open(summary))
    assert result["windows_failed"] == 0, result["failures"]
    return result


def files_per_closed_day(name, days):
    root = os.path.join(OUT, f"{name}-lake", "audit_logs", "subdomain=bench")
    counts = []
    for d in range(days):
        day = (START + dt.timedelta(days=d)).strftime("%Y-%m-%d")
        folder = os.path.join(root, f"created_date={day}")
        counts.append(len([f for f in os.listdir(folder) if f.endswith(".parquet")]))
    return counts


def scenario(name, records, days, step, window, nosort):
    shutil.rmtree(os.path.join(OUT, f"{name}-lake"), ignore_errors=True)
    sim, url = simulator(name, records, days, nosort)
    try:
        runs = days * 86_400 // step
        total = 0
        for i in range(1, runs + 1):
            total += export(name, url, START + dt.timedelta(seconds=i * step), window)["requests"]
        idle = export(name, url, START + dt.timedelta(seconds=runs * step), window)["requests"]
    finally:
        sim.terminate()
        sim.wait()
    minimum = math.ceil(records / 100)
    target = 1.10 * minimum + 2 * runs
    files = files_per_closed_day(name, days)
    verdict = "ok" if total <= target and idle <= 3 and max(files) == 1 else "MISSED"
    print(f"{name:<20} runs={runs:>3}  requests={total:>6} ({total / minimum:5.2f}x ceil(N/100)={minimum}; "
          f"target {target:.0f})  nothing-new run={idle}  files per closed day={files}  {verdict}")


for name in sys.argv[3:]:
    scenario(name, **SCENARIOS[name])
