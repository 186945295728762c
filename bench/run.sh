#!/usr/bin/env bash
# Runs Hallmark and the distribution registry v3.1.2 side by side on loopback,
# with their data on the same disk (bench/out/), and prints for both and as
# ratios: blob push/pull throughput (64 and 512 MiB, monolithic and streamed),
# manifest GET by tag and by digest at 32 connections, and peak RSS while
# each receives a 1 GiB blob. Figures go to stdout and bench/out/results-*.md.
#
#   bash bench/run.sh                       # everything (a few minutes)
#   bash bench/run.sh --quick               # smoke run: fewer repetitions
#   bash bench/run.sh --scenario manifest   # only some scenarios (comma list)
#   bash bench/run.sh --keep                # keep the servers' data dirs too
#                                           # (config and logs: bench/out/run-*)
#   bash bench/run.sh -- -v -rounds 5       # extra flags for hallmark-bench
#   bash bench/run.sh --list                # list scenarios
# Other options: --strict (exit 3 if a target is missed), --no-build (reuse
# bench/out/bin), --hallmark BINARY (benchmark another hallmark build).
# Needs Go (GOTOOLCHAIN=local); `scripts/install-peers bench` builds the peers
# (distribution, and cosign for the signing scenarios) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=${GOFLAGS:--buildvcs=false}

orig_args="$*"
hallmark_bin=
quick=() scenario=all keep=0 strict=() build=1 list=0 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=(-quick) ;;
    --scenario) scenario=$2; shift ;;
    --scenario=*) scenario=${1#*=} ;;
    --keep|--keep-data) keep=1 ;;
    --strict) strict=(-strict) ;;
    --no-build) build=0 ;;
    --hallmark) hallmark_bin=$2; shift ;;
    --list) list=1 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^# (distribution, and cosign/p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

OUT=bench/out
BIN=$OUT/bin
mkdir -p "$BIN"
log() { printf 'run.sh: %s\n' "$*" >&2; }

# Builds go to a temporary name and are renamed into place, so a run going
# on at the same time keeps its binaries.
build_to() { # OUTPUT PACKAGE
  go build -trimpath -o "$1.tmp.$$" "$2" && mv -f "$1.tmp.$$" "$1"
}
if [ $build = 1 ] || [ ! -x "$BIN/hallmark-bench" ]; then
  build_to "$BIN/hallmark-bench" ./bench/cmd/hallmark-bench
fi
if [ -z "$hallmark_bin" ] && { [ $build = 1 ] || [ ! -x "$BIN/hallmark" ]; }; then
  log "building hallmark"
  build_to "$BIN/hallmark" ./cmd/hallmark
fi
if [ $list = 1 ]; then exec "$BIN/hallmark-bench" -list; fi
HALLMARK=${hallmark_bin:-$BIN/hallmark}

PEERS=$(bash scripts/install-peers bench | tail -n 1)
REGISTRY=$PEERS/registry
[ -x "$REGISTRY" ] || { log "no distribution registry at $REGISTRY"; exit 1; }

ports=$("$BIN/hallmark-bench" -free-ports 2)
HPORT=${ports%%$'\n'*} DPORT=${ports##*$'\n'}
# Everything of this run (data dirs, config, logs) is in its own directory,
# so runs started at the same time do not disturb each other.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$OUT/run-$stamp-$$
HDATA=$RUN/hallmark-data DDATA=$RUN/distribution-data
mkdir -p "$HDATA" "$DDATA"

cat > "$RUN/distribution.yml" <<EOF
# distribution v3.1.2 as configured for the benchmark: filesystem storage on
# the same disk as Hallmark's data, delete enabled, in-memory blob descriptor
# cache (its example config's default), quiet logs, no access log.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $PWD/$DDATA
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$DPORT
health:
  storagedriver:
    enabled: false
EOF

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $keep = 0 ]; then rm -rf "$HDATA" "$DDATA"; fi
  log "logs and config in $RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both registries run open (no authentication): distribution has no token
# service here, and the registry paths are what is compared.
hargs=(server --addr "127.0.0.1:$HPORT" --data-dir "$HDATA" --log-level warn)
if "$HALLMARK" server --help 2>/dev/null | grep -q -- '--auth '; then hargs+=(--auth off); fi
"$HALLMARK" "${hargs[@]}" > "$RUN/hallmark.log" 2>&1 &
HPID=$!
pids+=("$HPID")
# OTEL_*: distribution otherwise exports traces to localhost:4318 every few seconds.
OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true "$REGISTRY" serve "$RUN/distribution.yml" > "$RUN/distribution.log" 2>&1 &
DPID=$!
pids+=("$DPID")
log "hallmark pid $HPID on 127.0.0.1:$HPORT, distribution $("$REGISTRY" --version 2>/dev/null | awk '{print $NF}') pid $DPID on 127.0.0.1:$DPORT"
log "uptime: $(uptime)"

results=$OUT/results-$stamp-$$.md
set +e
"$BIN/hallmark-bench" -hallmark "http://127.0.0.1:$HPORT" -hallmark-pid "$HPID" \
  -peer "http://127.0.0.1:$DPORT" -peer-pid "$DPID" -peer-name distribution \
  -hallmark-bin "$HALLMARK" -cosign "$PEERS/cosign" \
  -data "$OUT/data" -scenario "$scenario" "${quick[@]}" "${strict[@]}" "${extra[@]}" | tee "$results"
status=${PIPESTATUS[0]}
set -e
{
  echo
  echo "- command: bash bench/run.sh $orig_args"
  echo "- uptime after: $(uptime)"
  echo "- nproc: $(nproc); distribution: $("$REGISTRY" --version 2>/dev/null); hallmark: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+dirty')"
} | tee -a "$results"
log "results in $results"
exit "$status"
