#!/usr/bin/env bash
# Runs a command with a fresh moto S3 server on a free loopback port, exported to the command as
# TRIBUTARY_TEST_S3_ENDPOINT, and stops moto afterwards whatever the command's outcome.
set -euo pipefail
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp)
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then echo "moto failed to start:"; cat "$log"; exit 1; fi
  sleep 0.1
done
export TRIBUTARY_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
"$@"
