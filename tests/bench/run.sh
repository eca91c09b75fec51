#!/usr/bin/env bash
# Benchmark: export a 1,000,000-record simulated account and report records/s, CPU-seconds per
# million records and peak RSS of the auditlake process (GNU time). Run through `make bench`.
#
# Scenarios (BENCH_SCENARIOS picks some, space-separated; default: all three):
#   one-window   1M records in one 1d window: the memory bound (a window is never buffered whole)
#   ten-days     1M records over 10 days, 1d windows, 4 at a time: end-to-end throughput
#   window-2m    2M records in one 1d window: peak RSS stays near one-window's (memory depends on
#                the largest second and the part-file batch, not on the window's size)
set -euo pipefail

BIN=${1:-target/release/auditlake}
OUT=${BENCH_OUT:-bench-out}
RECORDS=${BENCH_RECORDS:-1000000}
SCENARIOS=${BENCH_SCENARIOS:-one-window ten-days window-2m}
rm -rf "$OUT" && mkdir -p "$OUT"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

start_sim() { # from to records
  cleanup
  rm -f "$OUT/sim.url"  # a stale URL would point this run at the previous, stopped simulator
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # The simulator's rate limit is lifted: this measures auditlake, not Zendesk's quota.
  "$BIN" simulate --bind "127.0.0.1:$port" --records "$3" --from "$1" --to "$2" \
    --rate-limit 4000000000 > "$OUT/sim.url" 2> "$OUT/sim.log" &
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
    --summary-json "$OUT/$name.json" --quiet
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

echo "auditlake bench: $RECORDS records, $(nproc) cores, $(date -u +%Y-%m-%d)"
for scenario in $SCENARIOS; do
  case $scenario in
    one-window) run one-window 2024-01-01 2024-01-02 1d 1 ;;
    ten-days) run ten-days 2024-01-01 2024-01-11 1d 4 ;;
    window-2m) run window-2m 2024-01-01 2024-01-02 1d 1 2000000 ;;
    *) echo "unknown scenario: $scenario"; exit 2 ;;
  esac
done
