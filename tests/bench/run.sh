#!/usr/bin/env bash
# Benchmark: export a 1,000,000-record simulated account and report records/s, CPU-seconds per
# million records and peak RSS of the auditlake process (GNU time). Run through `make bench`.
#
# Scenarios (BENCH_SCENARIOS picks some, space-separated; default: all):
#   one-window   1M records in one 1d window: the memory bound (a window is never buffered whole)
#   ten-days     1M records over 10 days, 1d windows, 4 at a time: end-to-end throughput
#   window-2m    2M records in one 1d window: peak RSS stays near one-window's (memory depends on
#                the largest second and the part-file batch, not on the window's size)
#
# Request scenarios (issue 11), against a rate-limited simulator with latency; they report requests
# made / the minimum ceil(records/100), the budget used (requests per minute / budget), 429s, and
# wall time / the physical limit (the minimum spent at the budget's pace):
#   req-sparse   (a) 50,000 records over 5 years, --window 1h, --since a year before the first
#                record; 700/min account, share 0.5 (budget 350/min), 150 ms latency
#   req-busy-day (b) BENCH_BUSY_RECORDS (default 300,000) records in one day, --window 1d,
#                --concurrency 4, 250 ms latency, budget 700/min
#   req-30d      (c) 30,000 records over 30 days, --window 1d, budget 350/min, 150 ms latency
#   req-busy-day-nosort (e) req-busy-day against a simulator whose offset form ignores sort_by /
#                sort_order (the list operation documents no order parameter for it)
#
# hash-cost     (issue 20) after one-window: the CPU of SHA-256 over that lake's Parquet bytes
#               (what hashing every file as it is written costs), per million records and as a
#               share of one-window's own CPU
#
# Delta scenarios (issue 19): the cost of --table-format delta.
#   ten-days-delta  ten-days with the Delta log: records/s against ten-days
#   delta-log       100,000 records over 30 days, --window 1h (720 windows, one commit each, 7
#                   checkpoints), plain and delta: time per commit and log bytes per window
#
# Erasure scenario (issue 27):
#   erase-year   365,000 records over a year of 1d windows (plain, then delta), then `erase` of one
#                user: windows and files rewritten, older copies purged, requests (none: erase
#                asks Zendesk nothing), wall seconds, CPU-seconds and peak RSS
#
# Accounts scenario (issue 29):
#   accounts-50  BENCH_ACCOUNTS (50) accounts of BENCH_ACCOUNT_RECORDS (20,000) records over 30 days in
#                one process (--accounts-at-once BENCH_ACCOUNTS_AT_ONCE, 8), 100 ms a request: the
#                backfill, then a run with nothing new; wall, CPU-s, peak RSS, requests per account
#                against ceil(N/100)
#
# Schedule scenarios (issue 18), in tests/bench/schedule.py: sched-hourly (a), sched-5min (b),
# sched-hourly-1h (c), sched-hourly-nosort (d); they report the requests of a whole schedule, of a
# run with nothing new, and the files per closed day partition.
# BENCH_SIM_BIN runs the simulator from another binary (to measure an older export with it).
set -euo pipefail

BIN=${1:-target/release/auditlake}
SIM_BIN=${BENCH_SIM_BIN:-$BIN}
OUT=${BENCH_OUT:-bench-out}
RECORDS=${BENCH_RECORDS:-1000000}
SCENARIOS=${BENCH_SCENARIOS:-one-window hash-cost ten-days ten-days-delta delta-log erase-year window-2m req-sparse req-busy-day req-30d req-busy-day-nosort sched-hourly sched-5min sched-hourly-1h sched-hourly-nosort accounts-50}
rm -rf "$OUT" && mkdir -p "$OUT"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

start_sim() { # from to records [rate-limit [latency [extra simulator flags...]]]
  cleanup
  rm -f "$OUT/sim.url"  # a stale URL would point this run at the previous, stopped simulator
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # By default the simulator's rate limit is lifted: this measures auditlake, not Zendesk's quota.
  local latency=()
  [ -n "${5:-}" ] && latency=(--latency "$5")
  "$SIM_BIN" simulate --bind "127.0.0.1:$port" --records "$3" --from "$1" --to "$2" \
    --rate-limit "${4:-4000000000}" "${latency[@]}" ${SIM_EXTRA:-} > "$OUT/sim.url" 2> "$OUT/sim.log" &
  sim_pid=$!
  for _ in $(seq 1 200); do [ -s "$OUT/sim.url" ] && break; sleep 0.1; done
  [ -s "$OUT/sim.url" ] || { echo "simulator did not start"; cat "$OUT/sim.log"; exit 1; }
}

run() { # name since until window concurrency [records]
  local name=$1
  start_sim "$2" "$3" "${6:-$RECORDS}"
  ZENDESK_OAUTH_TOKEN=sim-token /usr/bin/time -v -o "$OUT/$name.time" \
    "$BIN" export --subdomain bench --dest "$OUT/$name-lake" --since "$2" --until "$3" \
    --window "$4" --concurrency "$5" --base-url "$(cat "$OUT/sim.url")" --rate-limit-share 1 \
    --summary-json "$OUT/$name.json" --quiet ${EXTRA_FLAGS:-}
  python3 - "$OUT/$name.time" "$OUT/$name.json" "$name" <<'PY'
import json, re, sys
time_text = open(sys.argv[1]).read()
summary = json.load(open(sys.argv[2]))
def field(label):
    return re.search(re.escape(label) + r":\s*(.+)", time_text).group(1).strip()
user, system = float(field("User time (seconds)")), float(field("System time (seconds)"))
wall_text = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
parts = [float(p) for p in wall_text.split(":")]
wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
rss_mb = int(field("Maximum resident set size (kbytes)")) / 1024
rows = summary["rows"]
assert summary["windows_failed"] == 0, summary["failures"]
print(f"{sys.argv[3]:<11} rows={rows:>8}  wall={wall:6.2f}s  records/s={rows / wall:>9,.0f}  "
      f"cpu-s/M={(user + system) / rows * 1e6:5.2f}  peak-rss={rss_mb:6.1f} MB  "
      f"requests={summary['requests']}  parquet={summary['bytes_written'] / 1e6:.1f} MB")
PY
}

requests() { # name from to records rate-limit latency since until window concurrency share
  local name=$1
  start_sim "$2" "$3" "$4" "$5" "$6"
  local start end
  start=$(date +%s.%N)
  ZENDESK_OAUTH_TOKEN=sim-token /usr/bin/time -v -o "$OUT/$name.time" \
    "$BIN" export --subdomain bench --dest "$OUT/$name-lake" --since "$7" --until "$8" \
    --window "$9" --concurrency "${10}" --base-url "$(cat "$OUT/sim.url")" \
    --rate-limit-share "${11}" --recheck 0 --summary-json "$OUT/$name.json" --quiet
  end=$(date +%s.%N)
  python3 - "$OUT/$name.json" "$OUT/$name.time" "$name" "$5" "${11}" "$start" "$end" <<'PY'
import json, math, re, sys
summary = json.load(open(sys.argv[1]))
time_text = open(sys.argv[2]).read()
name, limit, share, start, end = sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
assert summary["windows_failed"] == 0, summary["failures"]
budget = math.floor(limit * share)
wall = end - start
minimum = max(1, math.ceil(summary["rows"] / 100))
physical = minimum / budget * 60
rss_mb = int(re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", time_text).group(1)) / 1024
print(f"{name:<12} rows={summary['rows']:>7}  requests={summary['requests']:>6} ({summary['requests'] / minimum:.2f}x the minimum {minimum})  "
      f"budget used={summary['requests'] / (wall / 60) / budget:5.1%} of {budget}/min  429s={summary['throttled']}  "
      f"wall={wall:6.1f}s ({wall / physical:.2f}x the physical limit {physical:.1f}s)  peak-rss={rss_mb:.0f} MB")
PY
}

hash_cost() { # SHA-256 over one-window's files, against one-window's CPU
  [ -f "$OUT/one-window.time" ] || { echo "hash-cost needs one-window before it"; exit 2; }
  find "$OUT/one-window-lake/audit_logs" -name '*.parquet' > "$OUT/hash-files"
  /usr/bin/time -v -o "$OUT/hash-cost.time" xargs sha256sum < "$OUT/hash-files" > /dev/null
  python3 - "$OUT" <<'PY'
import json, os, re, sys
out = sys.argv[1]
def cpu(name):
    text = open(f"{out}/{name}.time").read()
    field = lambda label: float(re.search(re.escape(label) + r":\s*(.+)", text).group(1))
    return field("User time (seconds)") + field("System time (seconds)")
rows = json.load(open(f"{out}/one-window.json"))["rows"]
size = sum(os.path.getsize(p.strip()) for p in open(f"{out}/hash-files"))
hashing, export = cpu("hash-cost"), cpu("one-window")
print(f"hash-cost   bytes={size / 1e6:.1f} MB  cpu-s/M={hashing / rows * 1e6:.3f}  "
      f"({hashing / export:.1%} of one-window's {export / rows * 1e6:.2f} cpu-s/M)")
PY
}

delta_log() { # the Delta log's cost: one export of hourly windows, plain and delta
  EXTRA_FLAGS="--recheck 0" run delta-log-plain 2024-01-01 2024-01-31 1h 4 100000
  EXTRA_FLAGS="--recheck 0 --table-format delta" run delta-log-delta 2024-01-01 2024-01-31 1h 4 100000
  python3 - "$OUT" <<'PY'
import json, os, re, sys
out = sys.argv[1]
def wall(name):
    text = open(f"{out}/{name}.time").read()
    parts = [float(p) for p in re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\):\s*(.+)", text).group(1).split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
log = f"{out}/delta-log-delta-lake/audit_logs/_delta_log"
names = os.listdir(log)
commits = [n for n in names if re.fullmatch(r"\d{20}\.json", n)]
checkpoints = [n for n in names if n.endswith(".checkpoint.parquet")]
log_bytes = sum(os.path.getsize(f"{log}/{n}") for n in names)
windows = json.load(open(f"{out}/delta-log-delta.json"))["windows_done"]
extra = wall("delta-log-delta") - wall("delta-log-plain")
print(f"delta-log   commits={len(commits)}  checkpoints={len(checkpoints)}  log={log_bytes / 1e6:.2f} MB "
      f"({log_bytes / max(1, windows):,.0f} bytes per window)  extra wall={extra:.2f}s "
      f"({extra / max(1, len(commits)) * 1000:.1f} ms per commit)")
PY
}

erase_year() { # one user erased from a year of daily windows, plain and delta
  local format
  for format in parquet delta; do
    EXTRA_FLAGS="--recheck 0 --table-format $format" run "erase-year-$format" 2023-01-01 2024-01-01 1d 4 365000
    # A human actor of the simulator (ids 361000000000 + a * 104729 for a >= 2).
    /usr/bin/time -v -o "$OUT/erase-year-$format-erase.time" \
      "$BIN" erase --subdomain bench --dest "$OUT/erase-year-$format-lake" --user-id 361000209458 \
      --reason bench --json --quiet > "$OUT/erase-year-$format-erase.json"
    python3 - "$OUT" "$format" <<'PY'
import json, re, sys
out, fmt = sys.argv[1], sys.argv[2]
text = open(f"{out}/erase-year-{fmt}-erase.time").read()
field = lambda label: re.search(re.escape(label) + r":\s*(.+)", text).group(1).strip()
parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
rss = int(field("Maximum resident set size (kbytes)")) / 1024
outcome = json.load(open(f"{out}/erase-year-{fmt}-erase.json"))
windows = json.load(open(f"{out}/erase-year-{fmt}.json"))["windows_done"]
print(f"erase-year-{fmt:<7} windows={windows} rewritten={len(outcome['windows'])} rows-erased={outcome['rows']} "
      f"purged={outcome['files_purged']} requests=0  wall={wall:.2f}s  cpu-s={cpu:.2f}  peak-rss={rss:.0f} MB")
PY
  done
}

accounts() { # (issue 29) BENCH_ACCOUNTS accounts of BENCH_ACCOUNT_RECORDS records each, one process
  local n=${BENCH_ACCOUNTS:-50} records=${BENCH_ACCOUNT_RECORDS:-20000} file="$OUT/accounts.toml"
  # One simulator serves every account the same records (its rate limit lifted: each account has
  # its own at Zendesk), 100 ms a request.
  start_sim 2024-01-01 2024-01-31 "$records" 4000000000 100ms
  {
    echo "dest = \"$OUT/accounts-lake\""
    echo "base-url = \"$(cat "$OUT/sim.url")\""
    echo "since = \"2024-01-01\""
    echo "until = \"2024-01-31\""
    echo "rate-limit-share = 1"
    echo "quiet = true"
    for i in $(seq -w 0 $((n - 1))); do
      printf '\n[[account]]\nsubdomain = "acct-%s"\noauth-token-env = "SIM_TOKEN"\n' "$i"
    done
  } > "$file"
  local pass
  for pass in backfill idle; do
    SIM_TOKEN=sim-token /usr/bin/time -v -o "$OUT/accounts-$pass.time" \
      "$BIN" export --config "$file" --accounts-at-once "${BENCH_ACCOUNTS_AT_ONCE:-8}" \
      --summary-json "$OUT/accounts-$pass.jsonl"
    python3 - "$OUT" "$pass" "$records" <<'PY'
import json, math, re, sys
out, name, records = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(f"{out}/accounts-{name}.time").read()
field = lambda label: re.search(re.escape(label) + r":\s*(.+)", text).group(1).strip()
parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
rss = int(field("Maximum resident set size (kbytes)")) / 1024
lines = [json.loads(l) for l in open(f"{out}/accounts-{name}.jsonl")]
assert all(l["exit_code"] == 0 for l in lines), [l for l in lines if l["exit_code"]]
requests = [l["requests"] for l in lines]
rows = sum(l["rows"] for l in lines)
minimum = math.ceil(records / 100)
print(f"accounts-{name:<8} accounts={len(lines)} rows={rows} wall={wall:.1f}s cpu-s={cpu:.1f} "
      f"peak-rss={rss:.0f} MB requests/account: min={min(requests)} max={max(requests)} "
      f"mean={sum(requests) / len(requests):.1f} ({sum(requests) / len(requests) / minimum:.2f}x ceil(N/100)={minimum})")
PY
  done
}

echo "auditlake bench: $RECORDS records, $(nproc) cores, $(date -u +%Y-%m-%d)"
for scenario in $SCENARIOS; do
  case $scenario in
    one-window) run one-window 2024-01-01 2024-01-02 1d 1 ;;
    hash-cost) hash_cost ;;
    ten-days) run ten-days 2024-01-01 2024-01-11 1d 4 ;;
    ten-days-delta) EXTRA_FLAGS="--table-format delta" run ten-days-delta 2024-01-01 2024-01-11 1d 4 ;;
    delta-log) delta_log ;;
    erase-year) erase_year ;;
    window-2m) run window-2m 2024-01-01 2024-01-02 1d 1 2000000 ;;
    req-sparse) requests req-sparse 2020-01-01 2025-01-01 50000 700 150ms 2019-01-01 2025-01-01 1h 4 0.5 ;;
    req-busy-day) requests req-busy-day 2024-01-01 2024-01-02 "${BENCH_BUSY_RECORDS:-300000}" 1400 250ms 2024-01-01 2024-01-02 1d 4 0.5 ;;
    req-30d) requests req-30d 2024-01-01 2024-01-31 30000 700 150ms 2024-01-01 2024-01-31 1d 4 0.5 ;;
    req-busy-day-nosort) SIM_EXTRA=--ignore-offset-sort requests req-busy-day-nosort 2024-01-01 2024-01-02 "${BENCH_BUSY_RECORDS:-300000}" 1400 250ms 2024-01-01 2024-01-02 1d 4 0.5 ;;
    sched-*) python3 tests/bench/schedule.py "$BIN" "$OUT" "$scenario" ;;
    accounts-50) accounts ;;
    *) echo "unknown scenario: $scenario"; exit 2 ;;
  esac
done
