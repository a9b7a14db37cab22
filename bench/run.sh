#!/usr/bin/env bash
# ferry's Redis backend next to BullMQ and redis-benchmark, on the same Redis.
# See bench/README.md.
#
#   bash bench/run.sh
#
# env: RUNS (rounds, default 3), N (jobs per queue benchmark, default 100000),
#      REDIS_URL (default redis://127.0.0.1:6379),
#      FERRY_BIN (a prebuilt ferry binary; default: `cargo build --release -p ferry-cli`,
#      a no-op when target/release/ferry is current, then target/release/ferry),
#      OUT (raw results file, default bench/results/run-<UTC time>.txt).
#
# Each round runs, one after another: redis-benchmark (pipelined XADD and LPUSH),
# BullMQ defaults, BullMQ tuned, ferry bench. Every tool uses unique keys or queue
# names and deletes them at the end. The raw lines go to stdout and $OUT; a summary
# (median and min–max per system and metric, ratios of medians) follows.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
runs=${RUNS:-3}
n=${N:-100000}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
out=${OUT:-bench/results/run-$(date -u +%Y%m%dT%H%M%SZ).txt}
mkdir -p "$(dirname "$out")"
: >"$out"

log() { echo "$*" | tee -a "$out"; }

# Dependencies: BullMQ from the lockfile, the ferry binary from this checkout.
if [[ ! -d bench/bullmq/node_modules/bullmq ]]; then
  # `npm install`, not `npm ci`: npm 11 leaves optional platform packages out of the
  # lockfile here, which `npm ci` then rejects; install still pins the versions.
  (cd bench/bullmq && npm install --no-audit --no-fund) >&2
fi
if [[ -n ${FERRY_BIN:-} ]]; then
  ferry=$FERRY_BIN
else
  cargo build --release -p ferry-cli >&2
  ferry=$root/target/release/ferry
fi

hostport=${REDIS_URL#redis://}
hostport=${hostport%%/*}
rhost=${hostport%%:*}
rport=${hostport##*:}
[[ $rport == "$hostport" ]] && rport=6379
rcli() { redis-cli -h "$rhost" -p "$rport" "$@"; }

started=$(date +%s)
log "# ferry Redis benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "# ferry $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo '+dirty'), binary $ferry"
log "# redis $(rcli INFO server | tr -d '\r' | awk -F: '/^redis_version:/ { print $2 }') at $REDIS_URL," \
  "$(rcli INFO clients | tr -d '\r' | awk -F: '/^connected_clients:/ { print $2 }') clients connected, dbsize $(rcli DBSIZE)"
log "# node $(node --version), bullmq $(node -p "require('./bench/bullmq/node_modules/bullmq/package.json').version")," \
  "ioredis $(node -p "require('./bench/bullmq/node_modules/ioredis/package.json').version")," \
  "$(redis-benchmark --version)"
log "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); RUNS=$runs N=$n"

for ((i = 1; i <= runs; i++)); do
  tag="[run $i/$runs]"
  bash bench/redis-bench.sh | while read -r line; do log "$tag $line"; done
  for mode in defaults tuned; do
    node bench/bullmq/bench.mjs "$mode" "$n" | while read -r line; do log "$tag $line"; done
  done
  "$ferry" bench --backend "$REDIS_URL" --messages "$n" |
    while read -r line; do log "$tag ferry $line"; done
  # Without message history: what BullMQ tuned keeps (removeOnComplete) is comparable.
  "$ferry" bench --backend "$REDIS_URL" --messages "$n" --no-history |
    while read -r line; do log "$tag ferry mode=no-history $line"; done
done

log "# load average $(cut -d' ' -f1-3 /proc/loadavg); took $(($(date +%s) - started)) s"
echo
node bench/summarize.mjs "$out" | tee -a "$out"
echo "raw results and summary: $out"
