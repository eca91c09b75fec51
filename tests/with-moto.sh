#!/usr/bin/env bash
# Runs a command with a real S3-compatible server (moto, from the project's .venv) on a free
# loopback port, and stops the server afterwards, even when the command fails or is interrupted.
# The command sees AUDITLAKE_TEST_S3_ENDPOINT, AUDITLAKE_TEST_MOTO and test AWS credentials.
set -euo pipefail
moto=${MOTO_SERVER:-.venv/bin/moto_server}
[ -x "$moto" ] || { echo "with-moto: $moto not found (make installs it into .venv)" >&2; exit 2; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t auditlake-moto.XXXXXX)
# The request recorder (tests/readback/test_s3_lake.py reads the headers of the PUTs) writes here,
# not into the working tree.
export MOTO_RECORDER_FILEPATH="$log.recording"
"$moto" -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; rm -f "$log" "$log.recording"' EXIT INT TERM
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "with-moto: moto_server exited:" >&2; cat "$log" >&2; exit 2; }
  sleep 0.2
done
export AUDITLAKE_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AUDITLAKE_TEST_MOTO="$(cd "$(dirname "$moto")" && pwd)/$(basename "$moto")"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
"$@"
