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
#   bash bench/run.sh --scenario scaleout   # scale out: two Hallmark replicas on one
#                                           # PostgreSQL (scripts/start-postgres) and one
#                                           # S3 server (versitygw), distribution on the same
#                                           # S3 server; blob, manifest and tlog scenarios,
#                                           # pulls from the replica that did not take the
#                                           # push, load spread over both replicas;
#                                           # each replica with a 4 GiB blob cache
#                                           # (HALLMARK_BENCH_BLOB_CACHE=SIZE, 0: none)
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

# scaleout is a topology, not a scenario of hallmark-bench: the scenarios it
# runs against the replicas are these.
scaleout=0
if [ "$scenario" = scaleout ]; then scaleout=1 scenario=blob,manifest,tlog; fi

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

PEERS=$(bash scripts/install-peers "$([ $scaleout = 1 ] && echo all || echo bench)" | tail -n 1)
REGISTRY=$PEERS/registry
[ -x "$REGISTRY" ] || { log "no distribution registry at $REGISTRY"; exit 1; }

read -r HPORT DPORT HPORT2 SPORT <<<"$("$BIN/hallmark-bench" -free-ports 4 | tr '\n' ' ')"
# Everything of this run (data dirs, config, logs) is in its own directory,
# so runs started at the same time do not disturb each other.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$OUT/run-$stamp-$$
HDATA=$RUN/hallmark-data DDATA=$RUN/distribution-data
mkdir -p "$HDATA" "$DDATA"

storage="filesystem:
    rootdirectory: $PWD/$DDATA"
if [ $scaleout = 1 ]; then
  # Blobs in the S3 server the replicas use; blob GETs proxied (no
  # redirect to S3), as Hallmark serves them by default.
  storage="s3: {accesskey: bench, secretkey: bench-secret, region: us-east-1, regionendpoint: http://127.0.0.1:$SPORT, bucket: bench, rootdirectory: /distribution, forcepathstyle: true, secure: false, v4auth: true}
  redirect:
    disable: true"
fi
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
  $storage
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

pids=() pgstop=
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$pgstop" ]; then eval "$pgstop" >/dev/null 2>&1 || true; fi
  if [ $keep = 0 ]; then rm -rf "$HDATA" "$DDATA" "$RUN/hallmark-data2" "$RUN/s3"; fi
  log "logs and config in $RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both registries run open (no authentication): distribution has no token
# service here, and the registry paths are what is compared.
hargs=(server --addr "127.0.0.1:$HPORT" --data-dir "$HDATA" --log-level warn)
if "$HALLMARK" server --help 2>/dev/null | grep -q -- '--auth '; then hargs+=(--auth off); fi
hurls=http://127.0.0.1:$HPORT
if [ $scaleout = 1 ]; then
  # One S3 server (versitygw, POSIX backend in the run dir) for both
  # registries, one PostgreSQL, two replicas sharing them and one key
  # encryption key.
  mkdir -p "$RUN/s3"
  HOME=$RUN/s3 "$PEERS/versitygw" --access bench --secret bench-secret --region us-east-1 \
    --port "127.0.0.1:$SPORT" --keep-alive --quiet posix "$RUN/s3" > "$RUN/versitygw.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$SPORT" && break; sleep 0.1; done
  empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  curl -sf -X PUT --aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench-secret \
    -H "x-amz-content-sha256: $empty_sha256" "http://127.0.0.1:$SPORT/bench" \
    || { log "could not create the bucket on versitygw"; exit 1; }
  pg=$(bash scripts/start-postgres)
  pgstop=$(sed -n 's/^stop with: //p' <<<"$pg")
  export HALLMARK_DATABASE_URL=$(head -n 1 <<<"$pg")
  export HALLMARK_KEY_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64)
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
  hargs+=(--blob-url "s3://bench/hallmark?endpoint=http://127.0.0.1:$SPORT&region=us-east-1&path-style=true")
  # Each replica keeps the blobs it served on its disk (--blob-cache-size, as
  # examples/scale-out/ configures it); HALLMARK_BENCH_BLOB_CACHE=0 measures
  # every pull through S3.
  cache_size=${HALLMARK_BENCH_BLOB_CACHE:-4GiB}
  if [ "$cache_size" != 0 ] && "$HALLMARK" server --help 2>/dev/null | grep -q -- '--blob-cache-size'; then
    hargs+=(--blob-cache-size "$cache_size")
  else
    cache_size=0
  fi
  h2args=("${hargs[@]}")
  h2args[2]=127.0.0.1:$HPORT2 h2args[4]=$RUN/hallmark-data2
  mkdir -p "$RUN/hallmark-data2"
  "$HALLMARK" "${h2args[@]}" > "$RUN/hallmark2.log" 2>&1 &
  HPID2=$!
  pids+=("$HPID2")
  hurls+=,http://127.0.0.1:$HPORT2
  export HALLMARK_BENCH_TLOG_SIZE=${HALLMARK_BENCH_TLOG_SIZE:-0} # appends/s; proof latency at the size reached
  log "scale out: replicas $hurls on PostgreSQL and versitygw 127.0.0.1:$SPORT (distribution on the same bucket), blob cache per replica: $cache_size"
fi
"$HALLMARK" "${hargs[@]}" > "$RUN/hallmark.log" 2>&1 &
HPID=$!
pids+=("$HPID")
# The pid hallmark-bench pins during pulls (and measures for RSS): the
# replica that serves the pulls.
bench_pid=${HPID2:-$HPID}
# OTEL_*: distribution otherwise exports traces to localhost:4318 every few seconds.
OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true "$REGISTRY" serve "$RUN/distribution.yml" > "$RUN/distribution.log" 2>&1 &
DPID=$!
pids+=("$DPID")
log "hallmark pid $HPID on 127.0.0.1:$HPORT, distribution $("$REGISTRY" --version 2>/dev/null | awk '{print $NF}') pid $DPID on 127.0.0.1:$DPORT"
log "uptime: $(uptime)"

results=$OUT/results-$stamp-$$.md
set +e
"$BIN/hallmark-bench" -hallmark "$hurls" -hallmark-pid "$bench_pid" \
  -peer "http://127.0.0.1:$DPORT" -peer-pid "$DPID" -peer-name distribution \
  -hallmark-bin "$HALLMARK" -cosign "$PEERS/cosign" \
  -data "$OUT/data" -scenario "$scenario" "${quick[@]}" "${strict[@]}" "${extra[@]}" | tee "$results"
status=${PIPESTATUS[0]}
set -e
{
  echo
  echo "- command: bash bench/run.sh $orig_args"
  if [ -n "${cache_size:-}" ]; then echo "- blob cache per replica (--blob-cache-size): $cache_size"; fi
  echo "- uptime after: $(uptime)"
  echo "- nproc: $(nproc); distribution: $("$REGISTRY" --version 2>/dev/null); hallmark: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+dirty')"
} | tee -a "$results"
log "results in $results"
exit "$status"
