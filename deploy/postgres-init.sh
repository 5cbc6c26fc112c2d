#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory: the roles and database of
# docs/operations.md ("Postgres"), with the names and passwords of HEIMDEX_DATABASE_URL
# (the application role) and HEIMDEX_DATABASE_ADMIN_URL (the owner, runs the migrations).
set -euo pipefail
part() { python3 -c 'import sys,urllib.parse as u;p=u.urlsplit(sys.argv[1]);print({"u":p.username,"p":u.unquote(p.password or ""),"d":p.path.lstrip("/")}[sys.argv[2]])' "$1" "$2" 2>/dev/null \
  || { url="${1#*://}"; creds="${url%%@*}"; case "$2" in u) echo "${creds%%:*}";; p) echo "${creds#*:}";; d) echo "${url##*/}";; esac; }; }
app="$(part "$HEIMDEX_DATABASE_URL" u)"; app_pw="$(part "$HEIMDEX_DATABASE_URL" p)"
owner="$(part "$HEIMDEX_DATABASE_ADMIN_URL" u)"; owner_pw="$(part "$HEIMDEX_DATABASE_ADMIN_URL" p)"
db="$(part "$HEIMDEX_DATABASE_URL" d)"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE heimdex_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE "$owner" LOGIN CREATEROLE PASSWORD '$owner_pw';
CREATE ROLE "$app" LOGIN PASSWORD '$app_pw' IN ROLE heimdex_app;
CREATE DATABASE "$db" OWNER "$owner";
SQL
