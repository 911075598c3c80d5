/**
 * The dashboard views are readable by the role `scenecache_stats_reader` — and a dashboard login
 * reads nothing else.
 *
 * - When the NOLOGIN role `scenecache_stats_reader` exists (the compose stack's postgres init
 *   script creates it, with Grafana's login `grafana_reader` as a member; elsewhere an operator may
 *   create it), it gets `SELECT` on `cache_daily_stats` and `tenant_daily_stats`. A migration that
 *   later drops and re-creates a view must grant it again.
 * - A `grafana_reader` made by the earlier init script got `SELECT` on every table through default
 *   privileges, `api_keys.key_hash` included: those grants and the default privileges of the
 *   migrating role are revoked, and it keeps the views (through the role, or directly when the
 *   role does not exist).
 *
 * Role names are cluster-wide; nothing here creates or drops a role (the migrating user needs no
 * CREATEROLE).
 */
import { sql, type Kysely } from 'kysely';

/** The NOLOGIN role the dashboard views are granted to. */
export const STATS_READER_ROLE = 'scenecache_stats_reader';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    DO $$
    DECLARE
      has_group boolean := EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scenecache_stats_reader');
    BEGIN
      IF has_group THEN
        GRANT SELECT ON cache_daily_stats, tenant_daily_stats TO scenecache_stats_reader;
      END IF;
      IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM grafana_reader;
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM grafana_reader;
        IF has_group THEN
          GRANT scenecache_stats_reader TO grafana_reader;
        ELSE
          GRANT SELECT ON cache_daily_stats, tenant_daily_stats TO grafana_reader;
        END IF;
      END IF;
    END $$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DO $$
    BEGIN
      IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scenecache_stats_reader') THEN
        REVOKE SELECT ON cache_daily_stats, tenant_daily_stats FROM scenecache_stats_reader;
      END IF;
    END $$`.execute(db);
}
