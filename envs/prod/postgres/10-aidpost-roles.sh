#!/bin/sh
# One login role and one database per component, from the database server's env file
# (servers/db-organizer.env or servers/db-participant.env, made by `aidpost secrets generate`).
# The postgres image runs it once, on an empty data directory (/docker-entrypoint-initdb.d);
# run again by hand it creates what is missing and sets the passwords from the file.
set -eu
: "${AIDPOST_DB_PREFIX:?}" "${AIDPOST_DB_USERS:?}" "${POSTGRES_USER:?}"
for user in $AIDPOST_DB_USERS; do
  variable="AIDPOST_DB_PASSWORD_$(printf '%s' "$user" | tr '[:lower:]' '[:upper:]')"
  password=$(printenv "$variable") || { echo "$variable is not set" >&2; exit 1; }
  role="${AIDPOST_DB_PREFIX}_${user}"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" \
    --dbname "${POSTGRES_DB:-postgres}" -v role="$role" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'role') \gexec
SQL
done
