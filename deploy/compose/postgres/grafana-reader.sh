#!/bin/sh
# Runs once, when the postgres service starts on an empty data volume (docker-entrypoint-initdb.d),
# as POSTGRES_USER on POSTGRES_DB: a read-only login for Grafana's SQL datasource that may read the
# dashboard views (cache_daily_stats, tenant_daily_stats) and nothing else — never a table, so
# never api_keys.key_hash or a job's tenant data beyond the views' aggregates.
#
# The login is a member of the NOLOGIN role scenecache_stats_reader; migration
# 0005_dashboard_reader_grants grants SELECT on the views to that role when it exists (the views
# are made by the migrate service, after this script). No default privileges: a table added
# later stays unreadable to Grafana.
# Environment: POSTGRES_USER, POSTGRES_DB, GRAFANA_DB_PASSWORD; GRAFANA_DB_USER (default
# grafana_reader, the datasource's user).
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=reader="${GRAFANA_DB_USER:-grafana_reader}" --set=reader_password="$GRAFANA_DB_PASSWORD" --set=db="$POSTGRES_DB" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scenecache_stats_reader') AS create_group \gset
\if :create_group
CREATE ROLE scenecache_stats_reader NOLOGIN;
\endif
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password' IN ROLE scenecache_stats_reader;
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
ALTER ROLE :"reader" SET default_transaction_read_only = on;
SQL
