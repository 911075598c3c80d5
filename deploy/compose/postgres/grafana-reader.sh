#!/bin/sh
# Runs once, when the postgres service starts on an empty data volume (docker-entrypoint-initdb.d),
# as POSTGRES_USER on POSTGRES_DB: a read-only login for Grafana's SQL datasource, which reads the
# dashboard views cache_daily_stats and tenant_daily_stats. Tables and views created later by
# POSTGRES_USER (the migrate service) become readable by it through the default privileges.
# Environment: POSTGRES_USER, POSTGRES_DB, GRAFANA_DB_PASSWORD.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=reader_password="$GRAFANA_DB_PASSWORD" --set=db="$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE :"db" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
SQL
