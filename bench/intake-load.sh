#!/usr/bin/env bash
# Local intake throughput of herald-local, as a ratio to a bare axum server in the same run.
#
#   bench/intake-load.sh            # build (profile local, as herald-local ships), measure, print a markdown table
#
# Settings (environment): DURATION (s, default 10), CONCURRENCY (default 32), WARMUP (s,
# default 2), RATE (open-loop events/s for the target check, default 1000), USERS (product
# members, default 20), LOADGEN_THREADS (default 1), NO_BUILD=1 (use the binaries as built),
# KEEP=1 (keep the temp directory with logs and the database), RUST_LOG (herald-local's log
# filter, default info as shipped).
#
# What it does: starts `herald-loadgen hello` (the baseline) and `herald-local` on free
# loopback ports with a fresh temp --data-dir, mints tokens with `herald-local token`, seeds
# the directory through the API (Slack switched on with a channel, scan_added -> alert + slack
# at system scope, USERS members of product 7 with the template's defaults, one
# administrator), then loads:
#   1. bare:    POST / on the baseline with the scan_added body (closed loop)
#   2. herald:  POST /v1/events, scan_added for product 7: USERS+1 alerts + 1 Slack delivery
#   3. herald:  POST /v1/events, no_users: true: the system destinations only (1 admin alert +
#               1 Slack delivery), which separates routing/alert writing from HTTP + commit
#   4. herald:  scan_added offered at RATE/s (open loop): the target check
# herald-local's senders run too (they are part of it); Slack's Web API is stood in for by the
# baseline server (SLACK_API_URL=http://BARE/api), so nothing is sent off the machine. At the end
# the probe event's deliveries show whether the Slack sender delivered.
# Everything it started is stopped on exit, whatever the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-32}"
WARMUP="${WARMUP:-2}"
RATE="${RATE:-1000}"
USERS="${USERS:-20}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
TARGET_RPS=1000
TARGET_P99_MS=20

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    exit 1
}
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed (for the report)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/herald-intake-bench.XXXXXX")"
PIDS=()

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM HUP
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP:-0}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    log "cargo build --profile local -p herald-local -p herald-loadgen"
    cargo build --profile local -q -p herald-local -p herald-loadgen
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
HERALD="$TARGET_DIR/local/herald-local"
LOADGEN="$TARGET_DIR/local/herald-loadgen"
[[ -x "$HERALD" && -x "$LOADGEN" ]] || die "binaries of the local profile missing under $TARGET_DIR/local"

# start NAME CMD...: runs CMD in the background, logging to $WORK/NAME.log; waits for its
# "listening on http://ADDR" line and sets ADDRESS.
start() {
    local name="$1" log="$WORK/$1.log" i pid
    shift
    : >"$log"
    "$@" </dev/null >>"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    STARTED_PID="$pid"
    for ((i = 0; i < 300; i++)); do
        ADDRESS="$(sed -n 's|.*listening on \(http://[^ ]*\).*|\1|p' "$log" | head -n1)"
        [[ -n "$ADDRESS" ]] && return 0
        kill -0 "$pid" 2>/dev/null || {
            tail -n 20 "$log" >&2
            die "$name exited before listening"
        }
        sleep 0.1
    done
    die "$name did not listen within 30 s"
}

# How busy the machine is before anything starts (other work skews the numbers).
busy() {
    local a b
    read -r -a a </proc/stat || return 0
    sleep 1
    read -r -a b </proc/stat || return 0
    # cpu user nice system idle iowait irq softirq steal
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    local idle=$((b[4] - a[4] + b[5] - a[5]))
    ((total > 0)) && echo "$((100 * (total - idle) / total))% of $(nproc) cores"
}
BUSY_BEFORE="$(busy || echo unknown)"
log "machine busy before the run: $BUSY_BEFORE"

DATA="$WORK/data"
start bare "$LOADGEN" hello --listen 127.0.0.1:0
BARE="$ADDRESS"
BARE_PID="$STARTED_PID"
# herald-local's Slack sender posts to the baseline server's Slack stand-in: nothing leaves
# the machine, and the sender's queue work is part of what is measured.
SLACK_API_URL="$BARE/api" RUST_LOG="${RUST_LOG:-info}" \
    start herald "$HERALD" serve --listen 127.0.0.1:0 --data-dir "$DATA"
H="$ADDRESS"
HERALD_PID="$STARTED_PID"
log "bare axum on $BARE, herald-local on $H (data in $DATA, $(df -T "$DATA" | awk 'NR==2 {print $2}'))"

ADMIN="$("$HERALD" token --data-dir "$DATA" --sub admin --role admin --ttl 7200)"
SERVICE="$("$HERALD" token --data-dir "$DATA" --sub defectdojo --role service --ttl 7200)"

# api METHOD PATH TOKEN [BODY]: one seeding request; fails on a non-2xx answer.
api() {
    local method="$1" path="$2" token="$3" body="${4:-}" args
    args=(-sS --fail-with-body -o /dev/null -X "$method" "$H$path" -H "Authorization: Bearer $token")
    if [[ -n "$body" ]]; then args+=(-H 'Content-Type: application/json' -d "$body"); fi
    curl "${args[@]}" >&2 || die "$method $path failed"
}

log "seeding: Slack on with a channel, scan_added -> alert + slack at system scope, $USERS members of product 7, 1 admin"
api PUT /v1/system/settings "$ADMIN" \
    '{"enable_slack_notifications": true, "slack_token": "xoxb-bench", "slack_channel": "#appsec", "team_name": "AppSec"}'
api PUT /v1/notifications/system "$ADMIN" '{"events": {"scan_added": ["alert", "slack"]}}'
api PUT /v1/users/admin "$SERVICE" \
    '{"email": "admin@example.com", "first_name": "Ada", "last_name": "Admin", "is_admin": true}'
api PUT /v1/product-types/1 "$SERVICE" '{"name": "Web"}'
api PUT /v1/products/7 "$SERVICE" '{"name": "Web shop", "product_type_id": 1}'
for ((u = 1; u <= USERS; u++)); do
    name="$(printf 'user%02d' "$u")"
    api PUT "/v1/users/$name" "$SERVICE" \
        "{\"email\": \"$name@example.com\", \"first_name\": \"User $u\", \"slack_email\": \"$name@example.com\"}"
    api PUT "/v1/products/7/members/$name" "$SERVICE"
done

SCAN='{"id": "bench-scan-{n}", "type": "scan_added", "title": "Created/Updated 3 findings for Web shop: Q3: ZAP", "description": "3 new findings", "url": "/product/7/engagement/12/test/99", "product_id": 7, "engagement": {"id": 12, "name": "Q3"}, "test": {"id": 99, "title": "ZAP"}, "findings": {"new": [{"id": 1, "title": "XSS", "severity": "High"}, {"id": 2, "title": "SQLi", "severity": "Critical"}, {"id": 3, "title": "Open redirect", "severity": "Low"}]}}'
SYSTEM_ONLY='{"id": "bench-sys-{n}", "type": "scan_added", "title": "Created/Updated 3 findings for Web shop: Q3: ZAP", "product_id": 7, "no_users": true}'
OPEN="${SCAN//bench-scan-/bench-open-}"

# What one event of each kind fans out to (a probe event per kind, not measured).
probe() {
    curl -sS --fail-with-body -X POST "$H/v1/events" -H "Authorization: Bearer $SERVICE" \
        -H 'Content-Type: application/json' -d "${1//\{n\}/probe}"
}
SCAN_FANOUT="$(probe "$SCAN")"
SYSTEM_FANOUT="$(probe "$SYSTEM_ONLY")"
log "scan_added fans out to $SCAN_FANOUT"
log "no_users fans out to $SYSTEM_FANOUT"

# usage PID: the server's CPU time (user, system; clock ticks), the bytes it passed to write
# calls (WAL, database, log, sockets), the whole machine's busy ticks and the time in ns, from
# /proc (nothing where /proc is missing).
usage() {
    local pid="$1" stat written machine
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 0
    written="$(sed -n 's/^wchar: //p' "/proc/$pid/io" 2>/dev/null)" || written=0
    # cpu  user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    machine="$(awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat)"
    stat="${stat##*) }"
    # shellcheck disable=SC2086 # split the fields: utime and stime are the 12th and 13th
    set -- $stat
    printf '%s %s %s %s %s\n' "${12}" "${13}" "${written:-0}" "${machine:-0}" "$(date +%s%N)"
}

# load NAME PID URL PATH EXPECT BODY [EXTRA...]: one measured run against the server PID, JSON
# report in $WORK/NAME.json; the server's CPU time and bytes written and the machine's busy
# time over the run (warm-up included) in NAME.usage.
load() {
    local name="$1" pid="$2" url="$3" path="$4" expect="$5" body="$6"
    shift 6
    log "load $name: $url$path"
    usage "$pid" >"$WORK/$name.usage"
    "$LOADGEN" load --label "$name" --url "$url" --path "$path" --body "$body" \
        --concurrency "${IN_FLIGHT:-$CONCURRENCY}" --duration "$DURATION" --warmup "$WARMUP" \
        --threads "$LOADGEN_THREADS" --expect "$expect" --json "$@" >"$WORK/$name.json" ||
        log "WARNING: $name had answers other than $expect (see the status counts)"
    usage "$pid" >>"$WORK/$name.usage"
}

load bare "$BARE_PID" "$BARE" / 200 "$SCAN"
HERALD_LOADGEN_TOKEN="$SERVICE" load herald-scan "$HERALD_PID" "$H" /v1/events 202 "$SCAN"
HERALD_LOADGEN_TOKEN="$SERVICE" load herald-no-users "$HERALD_PID" "$H" /v1/events 202 "$SYSTEM_ONLY"
# Open loop: at most 256 in flight (a server meeting the target needs ~20 at 1,000/s).
HERALD_LOADGEN_TOKEN="$SERVICE" IN_FLIGHT=256 load herald-scan-open "$HERALD_PID" "$H" /v1/events 202 "$OPEN" \
    --rate "$RATE"

cat <<EOF

## Intake throughput, herald-local vs bare axum

$(nproc) cores, $(uname -r); data dir on $(df -T "$DATA" | awk 'NR==2 {print $2}'); closed loop: $CONCURRENCY connections for ${DURATION} s after ${WARMUP} s warm-up; load generator on $LOADGEN_THREADS thread(s) of the same machine; machine busy before the run: $BUSY_BEFORE (other work skews the numbers).
scan_added for product 7 → $SCAN_FANOUT; no_users → $SYSTEM_FANOUT.

EOF
PROBE_DELIVERIES="$(curl -sS "$H/v1/events/bench-scan-probe" -H "Authorization: Bearer $SERVICE" |
    python3 -c 'import json, sys; print(", ".join("{}: {} after {} attempt(s)".format(d["destination"], d["status"], d["attempts"]) for d in json.load(sys.stdin)["deliveries"]))' 2>/dev/null ||
    echo unknown)"
echo "Probe event's deliveries at the end (Slack stood in for on loopback): $PROBE_DELIVERIES."
echo
python3 - "$WORK" "$TARGET_RPS" "$TARGET_P99_MS" "$RATE" "$(getconf CLK_TCK)" "$SCAN_FANOUT" "$SYSTEM_FANOUT" <<'EOF'
import json, sys
work, target_rps, target_p99, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ticks = float(sys.argv[5])

def fanout(answer):
    try:
        a = json.loads(answer)
        n, d = a["alerts"], a["deliveries"]
        return f"{n} alert{'' if n == 1 else 's'} + {d} deliver{'y' if d == 1 else 'ies'}"
    except (ValueError, KeyError):
        return "fan-out unknown"
scan_fanout, system_fanout = fanout(sys.argv[6]), fanout(sys.argv[7])

def usage(name, run):
    """Per request: the server's CPU ms and KiB passed to write calls; over the run: cores busy
    in the server, the load generator and everything else (from /proc, warm-up included)."""
    events = max(run["requests"] + run["warmup_requests"], 1)
    try:
        lines = [l.split() for l in open(f"{work}/{name}.usage").read().splitlines()]
        (u0, s0, w0, m0, t0), (u1, s1, w1, m1, t1) = [[int(x) for x in l] for l in lines[:2]]
    except (OSError, ValueError):
        return "-", "-", "-"
    server = (u1 - u0) + (s1 - s0)
    cpu = f"{server / ticks * 1000 / events:.2f} ({(u1 - u0) / ticks * 1000 / events:.2f} user)"
    written = f"{(w1 - w0) / 1024 / events:.1f}"
    wall = (t1 - t0) / 1e9
    loadgen = run.get("loadgen_cpu_ticks") or 0
    cores = [server / ticks / wall, loadgen / ticks / wall, (m1 - m0 - server - loadgen) / ticks / wall]
    return cpu, written, " / ".join(f"{c:.2f}" for c in cores)

runs = {name: json.load(open(f"{work}/{name}.json"))
        for name in ["bare", "herald-scan", "herald-no-users", "herald-scan-open"]}
bare = runs["bare"]["ok_rps"] or float("nan")
rows = [
    ("bare axum `POST /` (baseline)", "bare", "closed"),
    (f"herald-local `POST /v1/events` scan_added ({scan_fanout})", "herald-scan", "closed"),
    (f"herald-local `POST /v1/events` no_users ({system_fanout})", "herald-no-users", "closed"),
    (f"herald-local scan_added ({scan_fanout}) offered at {rate}/s", "herald-scan-open", "open"),
]
print("| server | load | requests/s (2xx) | p50 ms | p99 ms | max ms | ratio herald/bare | server CPU ms/request | server KiB written/request | cores busy: server / loadgen / other | statuses |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for label, key, mode in rows:
    r = runs[key]
    lat = r["latency_ms"]
    load = f"{r['concurrency']} conns" if mode == "closed" else f"open loop {rate}/s"
    ratio = "1" if key == "bare" else f"{r['ok_rps'] / bare:.4f}"
    statuses = ", ".join(f"{k}: {v}" for k, v in r["status"].items())
    if r.get("not_sent"):
        statuses += f", due but not sent: {r['not_sent']}"
    cpu, written, cores = usage(key, r)
    print(f"| {label} | {load} | {r['ok_rps']:,.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.1f} | {ratio} | {cpu} | {written} | {cores} | {statuses} |")
closed, opened = runs["herald-scan"], runs["herald-scan-open"]
print()
print("CPU and bytes written are per request over the whole run, warm-up included; \"other\" is the rest of")
print("the machine (kernel work no process is charged for, the Slack stand-in, anything else running).")
print()
print(f"Target: ≥ {target_rps:,.0f} accepted events/s with p99 ≤ {target_p99:.0f} ms "
      f"(equivalently ratio ≥ {target_rps / bare:.4f} of this run's bare server).")
offered = opened["requests"] + (opened.get("not_sent") or 0)
met_open = opened["ok"] >= 0.99 * offered and opened["latency_ms"]["p99"] <= target_p99
capacity = closed["ok_rps"]
print(f"- the target itself, open loop at {rate}/s: {opened['ok']:,} of {offered:,} offered accepted ({opened['ok_rps']:,.0f}/s), "
      f"p99 {opened['latency_ms']['p99']:.1f} ms (from when each request was due) → {'MET' if met_open else 'MISSED'}")
print(f"- capacity, closed loop ({closed['concurrency']} conns): {capacity:,.0f}/s → {'MET' if capacity >= target_rps else 'MISSED'} "
      f"(with {closed['concurrency']} requests always in flight, latency is mostly queueing: p99 {closed['latency_ms']['p99']:.1f} ms)")
EOF
