#!/usr/bin/env bash
# Raw Redis reference for ferry's Redis benchmark (see README.md): redis-benchmark
# sending pipelined XADD (16 commands per round trip, 50 clients) with a 100-byte
# field value to one stream, then pipelined LPUSH of a 100-byte value to one list.
# Each uses a unique key that is deleted afterwards (also on failure).
#
#   bash bench/redis-bench.sh
#
# env: REDIS_URL (redis://HOST:PORT, default redis://127.0.0.1:6379),
#      REQUESTS (default 1000000), PIPELINE (default 16), SIZE (default 100).
# Prints:
#   redis-benchmark xadd_pipelined_per_s=<x>
#   redis-benchmark lpush_pipelined_per_s=<x>
set -euo pipefail

url=${REDIS_URL:-redis://127.0.0.1:6379}
hostport=${url#redis://}
hostport=${hostport%%/*}
host=${hostport%%:*}
port=${hostport##*:}
[[ $port == "$hostport" ]] && port=6379
requests=${REQUESTS:-1000000}
pipeline=${PIPELINE:-16}
size=${SIZE:-100}

value=$(head -c "$size" /dev/zero | tr '\0' 'v')
tag="ferrybench:$$:$(date +%s%N)"
stream="$tag:xadd"
list="$tag:lpush"

cleanup() { redis-cli -h "$host" -p "$port" UNLINK "$stream" "$list" >/dev/null; }
trap cleanup EXIT

# --csv prints a header and one row: "test","rps",...; the rate is the 2nd field.
rate() {
  redis-benchmark -h "$host" -p "$port" -P "$pipeline" -n "$requests" --csv "$@" |
    awk -F'","' 'NR == 2 { printf "%.0f\n", $2 }'
}

xadd=$(rate XADD "$stream" '*' f "$value")
[[ -n $xadd ]] || { echo "redis-bench: no XADD result" >&2; exit 1; }
echo "redis-benchmark xadd_pipelined_per_s=$xadd"
cleanup

lpush=$(rate LPUSH "$list" "$value")
[[ -n $lpush ]] || { echo "redis-bench: no LPUSH result" >&2; exit 1; }
echo "redis-benchmark lpush_pipelined_per_s=$lpush"
