/**
 * `job_daily_rollups`: the finished jobs of each (UTC day, tenant) summed, so the dashboard views
 * read one row per day and tenant instead of aggregating every job row on every call (3 million
 * rows: `GET /v1/cache/stats` timed out). `cache_daily_stats` and `tenant_daily_stats` keep their
 * names and columns and read the rollups.
 *
 * Always equal to what the views over `download_jobs` computed (migration 0002), whatever writes
 * the rows — the worker, an admin action or plain SQL (a backfill, a fix by hand): statement-level
 * triggers on INSERT, UPDATE and DELETE of `download_jobs` add the contribution of the new rows and
 * subtract that of the old ones (transition tables), as one upsert per statement in (day, tenant)
 * order — concurrent statements on the same (day, tenant) serialise on that row's lock and lose
 * nothing, and never deadlock on each other's rollup rows (single-statement transactions; a
 * backfill should commit each statement, see the trigger function).
 *
 * A row contributes when it is finished (`status` completed or failed, `finished_at` set), to the
 * UTC day of `finished_at`: completed → `requests`, `reused`/`downloaded` by `cache_status`, and its
 * `bytes_downloaded` / `bytes_copied` (as `bytes_delivered`); failed → `failed`.
 *
 * The one exception, on purpose: retention (`DOWNLOAD_JOBS_RETENTION_DAYS`) deletes old job rows
 * with `SET LOCAL scenecache.retention = 'on'`; the triggers then keep the rollups, so the history
 * outlives the rows.
 *
 * Beside it, kept by the same triggers from the same delta: `job_daily_totals` (per UTC day, all
 * tenants; `cache_daily_stats` reads it) and `job_tenant_totals` (per tenant, all time), so the
 * all-time statistics read days + tenants rows instead of summing days × tenants rows on every call
 * (500 tenants for a year: 182,500 rows, ~50 ms per sum).
 *
 * Rows whose counts all fall to zero stay (harmless); the views and reads skip them.
 */
import { sql, type Kysely } from 'kysely';

/** The figures every rollup table holds (jobs, then bytes). */
const FIGURE_COLUMNS = sql.raw(
  ['requests', 'reused', 'downloaded', 'failed', 'bytes_downloaded', 'bytes_delivered'].map((c) => `${c} bigint NOT NULL DEFAULT 0`).join(',\n      '),
);
/** A rollup row's figures as the views of 0002 show them (with `hit_ratio` and `bytes_saved` derived). */
const VIEW_FIGURES = sql.raw(
  'requests, reused, downloaded, failed, reused::double precision / NULLIF(requests, 0) AS hit_ratio, bytes_downloaded, bytes_delivered, (bytes_delivered - bytes_downloaded) AS bytes_saved',
);

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE job_daily_rollups (
      day date NOT NULL,
      tenant_id text NOT NULL,
      ${FIGURE_COLUMNS},
      PRIMARY KEY (day, tenant_id)
    )`.execute(db);
  await sql`COMMENT ON TABLE job_daily_rollups IS 'scenecache: finished jobs per (UTC day, tenant), kept equal to download_jobs by triggers (retention deletes excepted); read through tenant_daily_stats'`.execute(db);

  // All-tenant totals per day (the per-day statistics and the totals read these: one row a day)
  // and all-time totals per tenant (the all-time per-tenant table: one row a tenant), so an
  // all-time read costs days + tenants rows, not days × tenants.
  await sql`
    CREATE TABLE job_daily_totals (
      day date PRIMARY KEY,
      ${FIGURE_COLUMNS}
    )`.execute(db);
  await sql`
    CREATE TABLE job_tenant_totals (
      tenant_id text PRIMARY KEY,
      ${FIGURE_COLUMNS}
    )`.execute(db);
  await sql`COMMENT ON TABLE job_daily_totals IS 'scenecache: finished jobs per UTC day, all tenants: job_daily_rollups summed by day, kept by the same triggers; read through cache_daily_stats'`.execute(db);
  await sql`COMMENT ON TABLE job_tenant_totals IS 'scenecache: finished jobs per tenant, all time: job_daily_rollups summed by tenant, kept by the same triggers'`.execute(db);

  // One function for the three triggers. The delta of a statement: + its new finished rows,
  // − its old finished rows (the transition tables its operation has, read by dynamic SQL),
  // added to the three tables in a fixed order — (day, tenant), day, tenant — each in key order,
  // so concurrent single-statement transactions (every write of the worker and the API) take
  // the rows' locks in one global order and never deadlock on them. A transaction of several
  // statements finishing jobs of different days may deadlock with another (Postgres aborts one):
  // backfills should commit each statement.
  await sql`
    CREATE FUNCTION job_daily_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
    DECLARE
      source text;
      target record;
      finished boolean;
    BEGIN
      IF TG_OP = 'DELETE' AND current_setting('scenecache.retention', true) = 'on' THEN
        RETURN NULL;
      END IF;
      source := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows'
      END;
      -- Most statements (an enqueue, a job turning active) touch no finished row: one cheap check.
      EXECUTE format($q$SELECT EXISTS (SELECT 1 FROM (%s) AS delta WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL)$q$, source) INTO finished;
      IF NOT finished THEN
        RETURN NULL;
      END IF;
      FOR target IN
        SELECT * FROM (VALUES
          (1, 'job_daily_rollups', 'day, tenant_id', $k$(finished_at AT TIME ZONE 'UTC')::date, tenant_id$k$, '1, 2'),
          (2, 'job_daily_totals', 'day', $k$(finished_at AT TIME ZONE 'UTC')::date$k$, '1'),
          (3, 'job_tenant_totals', 'tenant_id', 'tenant_id', '1')
        ) AS t (ord, tbl, key_columns, key_values, key_positions)
        ORDER BY ord
      LOOP
        EXECUTE format($q$
          INSERT INTO %I AS r (%s, requests, reused, downloaded, failed, bytes_downloaded, bytes_delivered)
          SELECT %s,
            COALESCE(sum(sign) FILTER (WHERE status = 'completed'), 0),
            COALESCE(sum(sign) FILTER (WHERE status = 'completed' AND cache_status = 'reused'), 0),
            COALESCE(sum(sign) FILTER (WHERE status = 'completed' AND cache_status = 'downloaded'), 0),
            COALESCE(sum(sign) FILTER (WHERE status = 'failed'), 0),
            COALESCE(sum(sign * bytes_downloaded) FILTER (WHERE status = 'completed'), 0),
            COALESCE(sum(sign * bytes_copied) FILTER (WHERE status = 'completed'), 0)
          FROM (%s) AS delta
          WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL
          GROUP BY %s
          ORDER BY %s
          ON CONFLICT (%s) DO UPDATE SET
            requests = r.requests + EXCLUDED.requests,
            reused = r.reused + EXCLUDED.reused,
            downloaded = r.downloaded + EXCLUDED.downloaded,
            failed = r.failed + EXCLUDED.failed,
            bytes_downloaded = r.bytes_downloaded + EXCLUDED.bytes_downloaded,
            bytes_delivered = r.bytes_delivered + EXCLUDED.bytes_delivered
        $q$, target.tbl, target.key_columns, target.key_values, source, target.key_positions, target.key_positions, target.key_columns);
      END LOOP;
      RETURN NULL;
    END
    $fn$`.execute(db);
  await sql`CREATE TRIGGER download_jobs_rollup_insert AFTER INSERT ON download_jobs REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_daily_rollups_apply()`.execute(db);
  await sql`CREATE TRIGGER download_jobs_rollup_update AFTER UPDATE ON download_jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_daily_rollups_apply()`.execute(db);
  await sql`CREATE TRIGGER download_jobs_rollup_delete AFTER DELETE ON download_jobs REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_daily_rollups_apply()`.execute(db);

  // The rows already there.
  await sql`
    INSERT INTO job_daily_rollups (day, tenant_id, requests, reused, downloaded, failed, bytes_downloaded, bytes_delivered)
    SELECT (finished_at AT TIME ZONE 'UTC')::date, tenant_id,
      count(*) FILTER (WHERE status = 'completed'),
      count(*) FILTER (WHERE status = 'completed' AND cache_status = 'reused'),
      count(*) FILTER (WHERE status = 'completed' AND cache_status = 'downloaded'),
      count(*) FILTER (WHERE status = 'failed'),
      COALESCE(sum(bytes_downloaded) FILTER (WHERE status = 'completed'), 0),
      COALESCE(sum(bytes_copied) FILTER (WHERE status = 'completed'), 0)
    FROM download_jobs
    WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL
    GROUP BY 1, 2`.execute(db);
  await sql`
    INSERT INTO job_daily_totals (day, requests, reused, downloaded, failed, bytes_downloaded, bytes_delivered)
    SELECT day, sum(requests), sum(reused), sum(downloaded), sum(failed), sum(bytes_downloaded), sum(bytes_delivered)
    FROM job_daily_rollups GROUP BY day`.execute(db);
  await sql`
    INSERT INTO job_tenant_totals (tenant_id, requests, reused, downloaded, failed, bytes_downloaded, bytes_delivered)
    SELECT tenant_id, sum(requests), sum(reused), sum(downloaded), sum(failed), sum(bytes_downloaded), sum(bytes_delivered)
    FROM job_daily_rollups GROUP BY tenant_id`.execute(db);

  // Same names, columns and types as 0002 (CREATE OR REPLACE keeps the grants): now from the rollups.
  await sql`
    CREATE OR REPLACE VIEW cache_daily_stats AS
    SELECT
      day,
      (day::timestamp AT TIME ZONE 'UTC') AS day_start,
      ${VIEW_FIGURES}
    FROM job_daily_totals
    WHERE requests <> 0 OR failed <> 0`.execute(db);
  await sql`
    CREATE OR REPLACE VIEW tenant_daily_stats AS
    SELECT
      day,
      (day::timestamp AT TIME ZONE 'UTC') AS day_start,
      tenant_id,
      ${VIEW_FIGURES}
    FROM job_daily_rollups
    WHERE requests <> 0 OR failed <> 0`.execute(db);
  // Per-tenant reads over a range of days.
  await sql`CREATE INDEX job_daily_rollups_tenant_day_idx ON job_daily_rollups (tenant_id, day)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The views of 0002, written out as there.
  await sql`
    CREATE OR REPLACE VIEW cache_daily_stats AS
    SELECT
      (finished_at AT TIME ZONE 'UTC')::date AS day,
      ((finished_at AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC') AS day_start,
      count(*) FILTER (WHERE status = 'completed') AS requests,
      count(*) FILTER (WHERE status = 'completed' AND cache_status = 'reused') AS reused,
      count(*) FILTER (WHERE status = 'completed' AND cache_status = 'downloaded') AS downloaded,
      count(*) FILTER (WHERE status = 'failed') AS failed,
      (count(*) FILTER (WHERE status = 'completed' AND cache_status = 'reused'))::double precision
        / NULLIF(count(*) FILTER (WHERE status = 'completed'), 0) AS hit_ratio,
      COALESCE(sum(bytes_downloaded) FILTER (WHERE status = 'completed'), 0)::bigint AS bytes_downloaded,
      COALESCE(sum(bytes_copied) FILTER (WHERE status = 'completed'), 0)::bigint AS bytes_delivered,
      (COALESCE(sum(bytes_copied) FILTER (WHERE status = 'completed'), 0)
        - COALESCE(sum(bytes_downloaded) FILTER (WHERE status = 'completed'), 0))::bigint AS bytes_saved
    FROM download_jobs
    WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL
    GROUP BY 1, 2`.execute(db);
  await sql`
    CREATE OR REPLACE VIEW tenant_daily_stats AS
    SELECT
      (finished_at AT TIME ZONE 'UTC')::date AS day,
      ((finished_at AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC') AS day_start,
      tenant_id,
      count(*) FILTER (WHERE status = 'completed') AS requests,
      count(*) FILTER (WHERE status = 'completed' AND cache_status = 'reused') AS reused,
      count(*) FILTER (WHERE status = 'completed' AND cache_status = 'downloaded') AS downloaded,
      count(*) FILTER (WHERE status = 'failed') AS failed,
      (count(*) FILTER (WHERE status = 'completed' AND cache_status = 'reused'))::double precision
        / NULLIF(count(*) FILTER (WHERE status = 'completed'), 0) AS hit_ratio,
      COALESCE(sum(bytes_downloaded) FILTER (WHERE status = 'completed'), 0)::bigint AS bytes_downloaded,
      COALESCE(sum(bytes_copied) FILTER (WHERE status = 'completed'), 0)::bigint AS bytes_delivered,
      (COALESCE(sum(bytes_copied) FILTER (WHERE status = 'completed'), 0)
        - COALESCE(sum(bytes_downloaded) FILTER (WHERE status = 'completed'), 0))::bigint AS bytes_saved
    FROM download_jobs
    WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL
    GROUP BY 1, 2, 3`.execute(db);
  await sql`DROP TRIGGER IF EXISTS download_jobs_rollup_delete ON download_jobs`.execute(db);
  await sql`DROP TRIGGER IF EXISTS download_jobs_rollup_update ON download_jobs`.execute(db);
  await sql`DROP TRIGGER IF EXISTS download_jobs_rollup_insert ON download_jobs`.execute(db);
  await sql`DROP FUNCTION IF EXISTS job_daily_rollups_apply()`.execute(db);
  await sql`DROP TABLE IF EXISTS job_tenant_totals`.execute(db);
  await sql`DROP TABLE IF EXISTS job_daily_totals`.execute(db);
  await sql`DROP TABLE IF EXISTS job_daily_rollups`.execute(db);
}
