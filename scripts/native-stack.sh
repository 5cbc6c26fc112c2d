#!/usr/bin/env bash
# The reference server without Docker: the locally installed Postgres and Redis, an
# S3-compatible server from PyPI (moto), and `heimdex-server all` (single node, embedded
# index) in the background. Everything it starts keeps its pid, log and data under
# $HEIMDEX_NATIVE_DIR (default .heimdex-native/).
#
#   scripts/native-stack.sh up          start (or keep) Postgres, Redis, S3 and the server
#   scripts/native-stack.sh down        stop the server and S3 (Postgres and Redis keep running)
#   scripts/native-stack.sh restart     down + up (keeps the data)
#   scripts/native-stack.sh reset       down, then drop the database, the Redis namespace, S3
#                                       data and the home
#   scripts/native-stack.sh health      GET /healthz
#   scripts/native-stack.sh logs        the last lines of every log (LOGS_FOLLOW=1: follow)
#   scripts/native-stack.sh token [T]   a bearer token for tenant T (default $HEIMDEX_TENANT)
#   scripts/native-stack.sh test-job    register the samples folder as a source and sync it
#   scripts/native-stack.sh check-job   poll the jobs until none is pending or processing
#   scripts/native-stack.sh test-job-fail   restart with HEIMDEX_DEV_FAIL_STAGE=analysis, watch
#                                       one job fail, back off, retry and end failed, restart
#
# Settings: deploy/.env if present, else deploy/.env.example (the same names as compose);
# variables already set in the environment win. PG_SUPERUSER_URL (default
# postgres://postgres@127.0.0.1:5432/postgres) creates the roles and the database.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DIR="${HEIMDEX_NATIVE_DIR:-$ROOT/.heimdex-native}"
ENV_FILE="${HEIMDEX_ENV_FILE:-$ROOT/deploy/.env}"
[ -f "$ENV_FILE" ] || ENV_FILE="$ROOT/deploy/.env.example"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/heimdex-target}"
BIN="$CARGO_TARGET_DIR/debug/heimdex-server"
PG_SUPERUSER_URL="${PG_SUPERUSER_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
TENANT="${HEIMDEX_TENANT:-demo}"
SAMPLES="${HEIMDEX_SAMPLES:-$ROOT/samples}"

# Load the env file: only variables not already set (the environment wins, as in the server).
while IFS= read -r line; do
  line="${line#export }"
  [[ "$line" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || continue
  key="${line%%=*}"
  [ -n "${!key+x}" ] || export "$key=${line#*=}"
done < "$ENV_FILE"
# The home is relative to the repository root when the file says so; the server runs there.
API="http://${HEIMDEX_LISTEN/0.0.0.0/127.0.0.1}"

log() { echo "native: $*" >&2; }
die() { echo "native: error: $*" >&2; exit 1; }
url_part() { python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print({"user": p.username or "", "password": u.unquote(p.password or ""), "host": p.hostname or "", "port": p.port or "", "db": p.path.lstrip("/")}[sys.argv[2]])' "$1" "$2"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
psql_su() { psql "$PG_SUPERUSER_URL" -v ON_ERROR_STOP=1 -qtAX "$@"; }

start_postgres() {
  local host port
  host="$(url_part "$HEIMDEX_DATABASE_URL" host)"; port="$(url_part "$HEIMDEX_DATABASE_URL" port)"
  if pg_isready -q -h "$host" -p "${port:-5432}"; then return; fi
  log "starting the local Postgres"
  local cluster
  cluster="$(pg_lsclusters -h 2>/dev/null | awk -v p="${port:-5432}" '$3 == p {print $1, $2; exit}')"
  [ -n "$cluster" ] || die "no local Postgres cluster on port ${port:-5432} (pg_lsclusters)"
  # shellcheck disable=SC2086
  pg_ctlcluster --skip-systemctl-redirect $cluster start
  for _ in $(seq 30); do pg_isready -q -h "$host" -p "${port:-5432}" && return; sleep 1; done
  die "Postgres did not start"
}

start_redis() {
  local host port
  host="$(url_part "$HEIMDEX_REDIS_URL" host)"; port="$(url_part "$HEIMDEX_REDIS_URL" port)"
  if redis-cli -h "$host" -p "${port:-6379}" ping >/dev/null 2>&1; then return; fi
  log "starting the local Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "${port:-6379}" --save "" --appendonly no \
    --logfile "$DIR/logs/redis.log" >/dev/null
  for _ in $(seq 30); do redis-cli -h "$host" -p "${port:-6379}" ping >/dev/null 2>&1 && return; sleep 0.5; done
  die "Redis did not start"
}

# The roles and database the server expects (docs/operations.md, "Postgres"): an owner that
# runs the migrations, the heimdex_app group, and a login role in it for the API and workers.
setup_database() {
  local db owner owner_pw app app_pw
  db="$(url_part "$HEIMDEX_DATABASE_URL" db)"
  app="$(url_part "$HEIMDEX_DATABASE_URL" user)"; app_pw="$(url_part "$HEIMDEX_DATABASE_URL" password)"
  owner="$(url_part "$HEIMDEX_DATABASE_ADMIN_URL" user)"; owner_pw="$(url_part "$HEIMDEX_DATABASE_ADMIN_URL" password)"
  psql_su <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'heimdex_app') THEN
    CREATE ROLE heimdex_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$owner') THEN
    CREATE ROLE "$owner" LOGIN CREATEROLE PASSWORD '$owner_pw';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$app') THEN
    CREATE ROLE "$app" LOGIN PASSWORD '$app_pw' IN ROLE heimdex_app;
  END IF;
END \$\$;
SQL
  if [ -z "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    log "creating database $db"
    psql_su -c "CREATE DATABASE \"$db\" OWNER \"$owner\""
  fi
}

moto_cmd() {
  if command -v moto_server >/dev/null 2>&1; then echo moto_server
  elif python3 -c 'import moto.server' 2>/dev/null; then echo "python3 -m moto.server"
  else die "no S3 server: pip install 'moto[server]'"; fi
}

start_s3() {
  [[ "${HEIMDEX_MEDIA_URL:-}" == s3://* ]] || return 0
  local host port bucket
  host="$(url_part "$AWS_ENDPOINT" host)"; port="$(url_part "$AWS_ENDPOINT" port)"
  if ! alive "$DIR/s3.pid"; then
    log "starting the S3 server (moto) on $host:$port"
    # shellcheck disable=SC2046
    nohup $(moto_cmd) -H "$host" -p "$port" >"$DIR/logs/s3.log" 2>&1 &
    echo $! >"$DIR/s3.pid"
  fi
  for _ in $(seq 60); do curl -fsS -o /dev/null "$AWS_ENDPOINT" 2>/dev/null && break; sleep 0.5; done
  bucket="${HEIMDEX_MEDIA_URL#s3://}"; bucket="${bucket%%/*}"
  curl -fsS -o /dev/null -X PUT "$AWS_ENDPOINT/$bucket" || die "cannot create bucket $bucket"
}

build() {
  log "building heimdex-server"
  # The tests' feature set (workspace, all features, dev-dependencies too), so after
  # `make test` nothing is compiled again.
  cargo build -q --workspace --all-features --bins --tests
}

start_server() {
  if alive "$DIR/server.pid"; then log "server already running (pid $(cat "$DIR/server.pid"))"; return; fi
  log "starting heimdex-server all (logs: $DIR/logs/server.log)"
  nohup "$BIN" --config "$ENV_FILE" all >>"$DIR/logs/server.log" 2>&1 &
  echo $! >"$DIR/server.pid"
  for _ in $(seq "${READY_TIMEOUT:-120}"); do
    if curl -fsS -o /dev/null "$API/readyz" 2>/dev/null; then log "ready at $API (docs: $API/docs)"; return; fi
    alive "$DIR/server.pid" || { tail -n 20 "$DIR/logs/server.log" >&2; die "the server exited"; }
    sleep 1
  done
  tail -n 20 "$DIR/logs/server.log" >&2
  die "the server was not ready within ${READY_TIMEOUT:-120} s"
}

stop_pid() {
  local file="$1" name="$2"
  if alive "$file"; then
    local pid; pid="$(cat "$file")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { log "$name did not stop in 20 s: killing it"; kill -KILL "$pid" 2>/dev/null || true; }
    log "stopped $name"
  fi
  rm -f "$file"
}

up() {
  mkdir -p "$DIR/logs"
  start_postgres
  start_redis
  setup_database
  start_s3
  build
  start_server
}

down() {
  stop_pid "$DIR/server.pid" "heimdex-server"
  stop_pid "$DIR/s3.pid" "the S3 server"
}

reset() {
  down
  if pg_isready -q -h "$(url_part "$HEIMDEX_DATABASE_URL" host)" -p "$(url_part "$HEIMDEX_DATABASE_URL" port)"; then
    psql_su -c "DROP DATABASE IF EXISTS \"$(url_part "$HEIMDEX_DATABASE_URL" db)\" WITH (FORCE)"
  fi
  local host port keys
  host="$(url_part "$HEIMDEX_REDIS_URL" host)"; port="$(url_part "$HEIMDEX_REDIS_URL" port)"
  if redis-cli -h "$host" -p "${port:-6379}" ping >/dev/null 2>&1; then
    keys="$(redis-cli -h "$host" -p "${port:-6379}" --scan --pattern "{${HEIMDEX_REDIS_NAMESPACE}}:*")"
    # shellcheck disable=SC2086
    [ -z "$keys" ] || redis-cli -h "$host" -p "${port:-6379}" del $keys >/dev/null
  fi
  rm -rf "$DIR"
  log "reset: database, queue namespace, S3 data (in the S3 server's memory) and $DIR removed"
}

token() {
  if [ -x "$BIN" ]; then "$BIN" --config "$ENV_FILE" token --tenant "${1:-$TENANT}"
  else docker compose -f deploy/docker-compose.yml --env-file "$ENV_FILE" exec -T api heimdex-server token --tenant "${1:-$TENANT}"; fi
}

# curl the API as $TENANT: api METHOD PATH [JSON]
api() {
  local args=(-sS --fail-with-body -X "$1" -H "Authorization: Bearer $(token)" "$API$2")
  [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' -d "$3")
  curl "${args[@]}"
}

json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

test_job() {
  local src
  src="$(cd "$SAMPLES" && pwd)"
  log "registering $src as a source of tenant $TENANT"
  local id
  id="$(api POST /v1/sources "{\"uri\": \"$src\"}" | json 'd["id"]')"
  log "syncing source $id"
  api POST "/v1/sources/$id/sync" | json '"sync: %d new, %d modified, %d deleted, %d jobs queued" % (d["new"], d["modified"], d["deleted"], len(d["jobs"]))'
}

check_job() {
  local deadline=$(( $(date +%s) + ${CHECK_TIMEOUT:-900} )) line=""
  while :; do
    local now
    now="$(api GET '/v1/jobs?limit=1000' | json '" ".join("%s=%d" % (s, n) for s, n in sorted(__import__("collections").Counter(j["state"] for j in d).items())) or "no jobs"')"
    [ "$now" = "$line" ] || { log "jobs: $now"; line="$now"; }
    case "$now" in *pending*|*processing*) ;; *) break ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || die "jobs still running after ${CHECK_TIMEOUT:-900} s"
    sleep 2
  done
  api GET '/v1/jobs?limit=1000' | json '"\n".join("  %s %s attempts=%d %s" % (j["id"], j["state"], j["attempts"], j["error"] or "") for j in d)'
  api POST /v1/search '{"query": "bikes", "limit": 3}' \
    | json '"\n".join(["search \"bikes\":"] + ["  %s %.1f-%.1f s" % (m["path"], m["start_s"], m["end_s"]) for m in d["moments"]])'
  case "$now" in *failed*) die "some jobs failed" ;; esac
}

test_job_fail() {
  log "restarting the server with HEIMDEX_DEV_FAIL_STAGE=analysis"
  stop_pid "$DIR/server.pid" "heimdex-server"
  HEIMDEX_DEV_FAIL_STAGE=analysis HEIMDEX_RETRY_BACKOFF_MS="${HEIMDEX_RETRY_BACKOFF_MS:-1000}" start_server
  # A folder of its own, so the job is new whatever test-job indexed before.
  local folder="$DIR/fail-source" id job
  rm -rf "$folder"; mkdir -p "$folder"; cp "$SAMPLES/bikes.mp4" "$folder/"
  id="$(TENANT=dev-fail api POST /v1/sources "{\"uri\": \"$folder\"}" | json 'd["id"]')"
  TENANT=dev-fail
  job="$(api POST "/v1/sources/$id/sync" | json 'd["jobs"][0]')"
  log "job $job: watching it fail, back off and retry"
  local last="" deadline=$(( $(date +%s) + 180 ))
  while :; do
    local now
    now="$(api GET "/v1/jobs/$job" | json '"%s attempts=%d %s" % (d["state"] + (" (backing off, then retried)" if d["state"] == "pending" and d["error"] else ""), d["attempts"], d["error"] or "")')"
    [ "$now" = "$last" ] || { log "  $now"; last="$now"; }
    case "$now" in failed*) break ;; completed*) die "the job completed: the dev switch did not act" ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || die "job not failed after 180 s"
    sleep 0.5
  done
  log "restarting the server without the dev switch"
  stop_pid "$DIR/server.pid" "heimdex-server"
  HEIMDEX_DEV_FAIL_STAGE= start_server
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  restart) down; up ;;
  reset) reset ;;
  health) curl -sS "$API/healthz" | python3 -m json.tool ;;
  logs)
    if [ "${LOGS_FOLLOW:-0}" = 1 ]; then tail -n 50 -F "$DIR"/logs/*.log; else tail -n "${LOGS_LINES:-100}" "$DIR"/logs/*.log; fi ;;
  token) token "${2:-}" ;;
  test-job) test_job ;;
  check-job) check_job ;;
  test-job-fail) test_job_fail ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
