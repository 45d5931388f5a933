#!/usr/bin/env bash
# `docker compose up` for real: the README's compose path on a private Docker engine, checked end
# to end, then everything it started taken down again.
#
#   sudo PATH="$PATH" scripts/compose_smoke.sh     # from a checkout, with `sweepq` on PATH (a venv)
#
# What it does, in order (docs/deploy.md follows the same steps for a real deployment):
#  1. installs what is missing: Debian's docker.io, compose v2 (the plugin from Debian trixie's
#     archive, fetched with a private apt list: the system's sources stay untouched), mmdebstrap;
#  2. starts its own dockerd (own data root, exec root and socket; no iptables, no forwarding, no
#     default bridge), stopped by PID when the script exits, whatever happens;
#  3. builds a base image from Debian's archive with mmdebstrap (no image registry is needed:
#     Python 3.11 with a venv at /opt/venv, and redis-server, which stands in for the Redis image),
#     then sweepq's images from the repository's Dockerfiles with BASE_IMAGE set to it;
#  4. writes the .env with scripts/compose_env.sh (fresh secrets) plus the documented variables
#     that point the stack at that base and at free ports, and nothing else reaches compose;
#  5. `docker compose up -d --wait`, then `--profile worker up -d --wait --scale worker=2`;
#  6. checks: every service healthy; Redis refuses a client without the password; Flower and the
#     dashboard answer 401 without their credentials and 200 with them; /healthz says only ok
#     without the token; the GPU service asks the engine for every GPU (a device request);
#  7. sends the quickstart sweep from this host with `sweepq sweep`, exactly as the README says,
#     and waits for it: every trial finished, run by the two compose workers, each of which ran
#     some; the sklearn example's trainer runs in a worker container too;
#  8. `docker compose down -v`: no container, volume or network left; then stops dockerd and
#     checks that no dockerd, mount or network interface of its own is left behind.
#
# Caches (kept between runs, so the second run skips the downloads and most of the build): the
# base rootfs, the engine's data root (images, build cache with pip's downloads) and the compose
# plugin, under $SWEEPQ_SMOKE_CACHE (default /var/cache/sweepq-compose-smoke; delete it to start
# cold). Needs root, and Debian's archive and PyPI reachable from this host. Prints its own time.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SWEEPQ_SMOKE_CACHE:-/var/cache/sweepq-compose-smoke}
PYTHON=${PYTHON:-python3}
MIRROR=${SWEEPQ_SMOKE_MIRROR:-http://deb.debian.org/debian}
BASE=sweepq-smoke-base:bookworm
PROJECT=sweepq   # the compose file's `name:`
STARTED=$(date +%s)
T=""
DOCKERD_PID=""
COMPOSE_UP=""
LINKS_BEFORE=""

say() { printf '[compose-smoke %4ss] %s\n' "$(( $(date +%s) - STARTED ))" "$*"; }
die() { printf '[compose-smoke] FAIL: %s\n' "$*" >&2; exit 1; }
check() { say "ok: $*"; }

# -- 0. what this script cannot do for itself --------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (it installs packages and runs its own dockerd): sudo PATH=\"\$PATH\" $0"
command -v sweepq >/dev/null || die "no sweepq on PATH: activate the venv you installed sweepq into (pip install -e .)"
"$PYTHON" -c 'import redis, sweepq' 2>/dev/null || die "$PYTHON cannot import sweepq and redis: set PYTHON to the venv's python"
command -v apt-get >/dev/null || die "needs apt-get (a Debian or Ubuntu host) to install docker.io, compose v2 and mmdebstrap"
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
if ! flock -n 9; then
  say "another compose smoke run holds $CACHE/lock; waiting for it"
  flock 9
fi

# -- 1. install what is missing ---------------------------------------------------------------
apt_install() {
  # no service may start from a package's postinst (a system dockerd would outlive this script)
  local own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >"$CACHE/apt.log" 2>&1 \
    || { apt-get update >>"$CACHE/apt.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$CACHE/apt.log" 2>&1; } \
    || rc=$?
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install $* failed (log: $CACHE/apt.log): $(tail -1 "$CACHE/apt.log")"
}
missing=()
command -v dockerd >/dev/null && command -v docker >/dev/null || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v curl >/dev/null || missing+=(curl)
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# compose v2: the system's plugin if there is one, else the one cached here, else Debian trixie's
# (bookworm ships only compose v1, which cannot read this compose file)
export DOCKER_CONFIG="$CACHE/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
# (no `| grep -q` in this script: with pipefail, grep's early exit fails the writer with SIGPIPE)
if ! grep -q 'version v\?2\.' <<< "$(docker compose version 2>/dev/null)"; then
  say "fetching compose v2 from Debian trixie's archive"
  A="$CACHE/apt-trixie"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/deb"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$A/sources.list"
  aptx=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root)
  apt-get "${aptx[@]}" update >"$A/log" 2>&1 || die "apt-get update for trixie failed: $(tail -1 "$A/log")"
  (cd "$A/deb" && rm -f ./*.deb && apt-get "${aptx[@]}" download docker-compose >>"$A/log" 2>&1) \
    || die "downloading trixie's docker-compose failed: $(tail -1 "$A/log")"
  rm -rf "$A/x" && dpkg-deb -x "$A"/deb/docker-compose_*.deb "$A/x"
  install -m 0755 "$A/x/usr/libexec/docker/cli-plugins/docker-compose" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  grep -q 'version v\?2\.' <<< "$(docker compose version 2>&1)" || die "compose v2 does not run: $(docker compose version 2>&1 | tail -1)"
fi
say "$(docker compose version | head -1); engine $(dockerd --version | sed 's/^Docker version //')"

# -- 2. a private dockerd, always stopped ------------------------------------------------------
T=$(mktemp -d /tmp/sweepq-compose-smoke.XXXXXX)
export DOCKER_HOST="unix://$T/docker.sock"
LINKS_BEFORE=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)

dc() {
  # compose sees the .env and nothing of this shell's environment but what it needs to run; no
  # step may hang the script (a bound on a hang, not a timing check)
  timeout 1200 env -i PATH="$PATH" HOME="${HOME:-/root}" DOCKER_HOST="$DOCKER_HOST" DOCKER_CONFIG="$DOCKER_CONFIG" \
    docker compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" --env-file "$T/.env" "$@"
}

our_mounts() {
  awk -v a="$T/" -v b="$CACHE/docker/" '$2 ~ "^"a || $2 ~ "^"b {print $2}' /proc/mounts | sort -r
}

cleanup() {
  local rc=$? left=""
  set +e
  trap - EXIT INT TERM
  if [ "$rc" != 0 ] && [ -n "$T" ]; then
    for f in "$T"/build.log "$T"/compose.log; do
      [ -s "$f" ] && { echo "--- last lines of $f"; tail -40 "$f"; }
    done
    if [ -n "$COMPOSE_UP" ]; then
      echo "--- docker compose ps / logs"
      dc --profile worker --profile gpu ps -a 2>&1 | tail -20
      dc --profile worker --profile gpu logs --no-color --tail 30 2>&1 | tail -120
    fi
  fi
  if [ -n "$COMPOSE_UP" ]; then
    dc --profile worker --profile gpu down -v --remove-orphans >>"$T/compose.log" 2>&1
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      say "dockerd did not stop within 30 s: SIGKILL"
      kill -KILL "$DOCKERD_PID"; sleep 1
    fi
  fi
  # dockerd leaves its default network namespace mounted, and a crash leaves overlays
  for m in $(our_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  if [ -n "$LINKS_BEFORE" ]; then
    for l in $(comm -13 <(echo "$LINKS_BEFORE") <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)); do
      ip link delete "$l" 2>/dev/null && left+=" link $l (deleted)"
    done
  fi
  # nothing of ours may be left: a dockerd, a containerd or a shim under our exec root, a mount
  [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null && left+=" dockerd($DOCKERD_PID)"
  if [ -n "$T" ]; then
    local p
    for p in $(pgrep -f -- "$T" 2>/dev/null); do
      [ "$p" != $$ ] && left+=" process $p ($(tr '\0' ' ' < /proc/"$p"/cmdline 2>/dev/null | cut -c1-80))"
    done
  fi
  [ -z "$(our_mounts)" ] || left+=" mounts: $(our_mounts | tr '\n' ' ')"
  if [ -n "$left" ]; then
    echo "[compose-smoke] FAIL: left behind:$left" >&2
    rc=1
  elif [ -n "$DOCKERD_PID" ]; then
    say "ok: dockerd stopped; no process, mount or network interface of it is left"
  fi
  [ -n "$T" ] && rm -rf "$T"
  if [ "$rc" = 0 ]; then
    say "PASS in $(( $(date +%s) - STARTED )) s"
  else
    say "FAILED (exit $rc) after $(( $(date +%s) - STARTED )) s"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$CACHE/docker"
dockerd --data-root "$CACHE/docker" --exec-root "$T/exec" --pidfile "$T/docker.pid" -H "$DOCKER_HOST" \
  --storage-driver overlay2 --iptables=false --ip-forward=false --bridge=none >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 300); do
  docker version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited: $(tail -3 "$T/dockerd.log")"
  sleep 0.2
done
docker version >/dev/null 2>&1 || die "dockerd did not answer within 60 s: $(tail -3 "$T/dockerd.log")"
say "dockerd $DOCKERD_PID on $DOCKER_HOST"

# -- 3. images --------------------------------------------------------------------------------
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if [ ! -s "$CACHE/base/rootfs.tar" ]; then
    say "building the base rootfs with mmdebstrap (Debian bookworm, python3, redis-server)"
    mkdir -p "$CACHE/base"
    # the host's extra CA certificates go in too: where outgoing TLS is re-signed by a proxy, pip
    # inside a build trusts only what the image holds
    mmdebstrap --variant=minbase --format=tar --include=python3,python3-venv,python3-pip,ca-certificates,redis-server \
      --customize-hook='chroot "$1" python3 -m venv /opt/venv' \
      --customize-hook='for f in /usr/local/share/ca-certificates/*.crt; do [ -e "$f" ] && cp "$f" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates >/dev/null' \
      bookworm "$CACHE/base/rootfs.tar.part" "$MIRROR" >"$CACHE/base/mmdebstrap.log" 2>&1 \
      || die "mmdebstrap failed: $(tail -3 "$CACHE/base/mmdebstrap.log")"
    mv "$CACHE/base/rootfs.tar.part" "$CACHE/base/rootfs.tar"
  fi
  say "importing the base image $BASE"
  docker import --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV VIRTUAL_ENV=/opt/venv' "$CACHE/base/rootfs.tar" "$BASE" >/dev/null
fi

# -- 4. the .env: fresh secrets from scripts/compose_env.sh, plus documented settings -----------
"$ROOT/scripts/compose_env.sh" "$T/.env" 2>/dev/null
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port); WEB_PORT=$(free_port); FLOWER_PORT=$(free_port)
settings=(
  "SWEEPQ_REDIS_PORT=$REDIS_PORT"       # 127.0.0.1:6379 may be another Redis
  "SWEEPQ_WEB_PORT=$WEB_PORT"
  "SWEEPQ_FLOWER_PORT=$FLOWER_PORT"
  "SWEEPQ_BASE_IMAGE=$BASE"             # no registry: the base built above
  "SWEEPQ_GPU_BASE_IMAGE=$BASE"
  "SWEEPQ_REDIS_IMAGE=$BASE"            # redis-server from Debian stands in for redis:7.4-alpine
  "SWEEPQ_BUILD_NETWORK=host"           # this engine's containers have no route out; the host has
  "SWEEPQ_VERSION=smoke"
)
for kv in "${settings[@]}"; do
  grep -q "^#\?${kv%%=*}=" "$ROOT/.env.example" || die "${kv%%=*} is not documented in .env.example"
  echo "$kv" >> "$T/.env"
done
check ".env from scripts/compose_env.sh; ports redis $REDIS_PORT, web $WEB_PORT, flower $FLOWER_PORT"

say "building sweepq's images (Dockerfile, workers/Dockerfile.gpu) on $BASE"
COMPOSE_UP=1
dc --profile worker --profile gpu build >"$T/build.log" 2>&1 || die "docker compose build failed"
say "built: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ':smoke' | tr '\n' ' ')"

# -- 5. up, as the README says -----------------------------------------------------------------
say "docker compose up -d --wait"
dc up -d --wait >>"$T/compose.log" 2>&1 || die "docker compose up --wait failed"
say "docker compose --profile worker up -d --wait --scale worker=2"
dc --profile worker up -d --wait --scale worker=2 >>"$T/compose.log" 2>&1 \
  || die "docker compose --profile worker up --wait failed"

# -- 6. the checks ---------------------------------------------------------------------------
status=$(docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
  --format '{{.Label "com.docker.compose.service"}} {{.Status}}' | sort)
echo "$status" | sed 's/^/    /'
[ "$(grep -c '(healthy)' <<< "$status")" = 6 ] || die "not every service is healthy (6 expected: redis, controller, web, flower, 2 workers)"
for svc in redis controller web flower worker; do
  grep -q "^$svc Up .*(healthy)" <<< "$status" || die "service $svc is not up and healthy"
done
check "6 containers up and healthy: redis, controller, web, flower, worker x2"

# the secrets, as the README has the user read them
set -a; . "$T/.env"; set +a

"$PYTHON" - "$REDIS_PORT" "$REDIS_PASSWORD" <<'PY' || die "Redis did not refuse a client without the password"
import sys, redis
port, password = int(sys.argv[1]), sys.argv[2]
try:
    redis.Redis(port=port, protocol=2).ping()
except redis.exceptions.AuthenticationError as exc:
    print(f"    without the password: {type(exc).__name__}: {exc}")
else:
    sys.exit(1)
assert redis.Redis(port=port, password=password).ping()
PY
check "Redis refuses a client without REDIS_PASSWORD (NOAUTH) and answers one with it"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
FLOWER=http://127.0.0.1:$FLOWER_PORT
for path in / /api/workers; do
  [ "$(code "$FLOWER$path")" = 401 ] || die "Flower answered $path without auth: $(code "$FLOWER$path")"
  [ "$(code -u "$FLOWER_BASIC_AUTH" "$FLOWER$path")" = 200 ] || die "Flower refused $path with FLOWER_BASIC_AUTH"
done
check "Flower: 401 without basic auth, 200 with FLOWER_BASIC_AUTH"

WEB=http://127.0.0.1:$WEB_PORT
AUTH="Authorization: Bearer $SWEEPQ_API_TOKEN"
[ "$(code "$WEB/api/sweeps")" = 401 ] || die "the dashboard's API answered without the token"
[ "$(code -H "Authorization: Bearer wrong" "$WEB/api/sweeps")" = 401 ] || die "the API took a wrong token"
[ "$(code -H "$AUTH" "$WEB/api/sweeps")" = 200 ] || die "the API refused SWEEPQ_API_TOKEN"
[ "$(code -H "$AUTH" "$WEB/metrics")" = 200 ] && [ "$(code "$WEB/metrics")" = 401 ] || die "/metrics is not behind the token"
health=$(curl -s "$WEB/healthz")
[ "$health" = '{"ok":true}' ] || die "/healthz without the token says more than ok: $health"
grep -q '"namespace"' <<< "$(curl -s -H "$AUTH" "$WEB/healthz")" || die "/healthz with the token lacks the details"
[ "$(code "$WEB/")" = 200 ] || die "the dashboard page does not load"
check "dashboard: 401 without the token, 200 with it; /healthz without it: $health"

# the GPU service: compose must hand the engine a device request for every GPU (a `gpus:` key
# is dropped by some compose versions); creating the container needs no GPU, starting it would
dc --profile gpu create --no-recreate worker-gpu >>"$T/compose.log" 2>&1 || die "docker compose create worker-gpu failed"
gpu_cid=$(dc --profile gpu ps -a -q worker-gpu)
req=$(docker inspect -f '{{json .HostConfig.DeviceRequests}}' "$gpu_cid")
grep -q '"Driver":"nvidia","Count":-1' <<< "$req" && grep -q '"gpu"' <<< "$req" \
  || die "the GPU worker's container asks for no GPUs: DeviceRequests=$req"
dc --profile gpu rm -f worker-gpu >>"$T/compose.log" 2>&1
check "worker-gpu (built from workers/Dockerfile.gpu on the substituted base) requests the GPUs: $req"

# -- 7. sweeps from this host, as the README says ---------------------------------------------------
cd "$ROOT"
export SWEEPQ_REDIS_URL=redis://:$REDIS_PASSWORD@127.0.0.1:${SWEEPQ_REDIS_PORT:-6379}/0
SID=$(sweepq sweep configs/quickstart/sweep.yaml -q)
say "sent sweep $SID (configs/quickstart/sweep.yaml); waiting for it"
workers=$(for c in $(dc --profile worker ps -q worker); do echo "celery@${c:0:12}"; done | sort | tr '\n' ' ' | sed 's/ $//')
# a bound on a hang, not a timing check: it takes seconds
for _ in $(seq 300); do
  [ "$(sweepq status "$SID" --json | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["state"])')" = finished ] && break
  sleep 1
done
sweepq status "$SID" --json > "$T/status.json"
sweepq runs "$SID" --json > "$T/runs.json"
"$PYTHON" - "$T/status.json" "$T/runs.json" "$workers" <<'PY' || die "sweep $SID did not end as expected"
import collections, json, sys
status, runs, workers = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), set(sys.argv[3].split())
states = collections.Counter(r["state"] for r in runs)
by = collections.Counter(r["worker"] for r in runs)
print(f"    {status['id']}: {status['state']}, {len(runs)} trials {dict(states)}; by worker {dict(by)}")
assert status["state"] == "finished", status
bad = [(r["id"], r["state"], r["exit_code"]) for r in runs if r["state"] != "finished"]
assert len(runs) == 12 and not bad, f"trials that did not finish: {bad}"
assert set(by) <= workers, f"trials ran on {set(by) - workers}, not on the compose workers {workers}"
assert len(by) == 2, f"the trials were not spread over both workers: {dict(by)}"
print(f"    best: {status['best']['value']:.4f} {status['best']['params']}")
PY
check "the sweep finished: 12 trials, all run by the two compose workers ($workers), each running some"
# the other example trainer runs in the worker image too, from the same mount and as the same user
dc --profile worker exec -T worker python configs/sklearn/train.py --epochs 3 >>"$T/compose.log" 2>&1 \
  || die "configs/sklearn/train.py does not run in the worker container"
check "configs/sklearn/train.py runs in a worker container (/work, uid ${SWEEPQ_UID:-10001})"

# -- 8. down, and nothing left -------------------------------------------------------------------
say "docker compose down -v"
dc --profile worker --profile gpu down -v --remove-orphans >>"$T/compose.log" 2>&1 || die "docker compose down -v failed"
COMPOSE_UP=""
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"; \
       docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || die "docker compose down -v left: $left"
check "down -v: no container, volume or network of the project left"
# old images of earlier runs only take disk; the build cache (pip's downloads) stays
docker image prune -f >/dev/null 2>&1 || true
