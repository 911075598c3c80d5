/**
 * Views for dashboards (Grafana's Postgres datasource, plain SQL, `GET /v1/cache/stats`), computed
 * from `download_jobs`, the source of truth for results:
 *
 * - `cache_daily_stats`: one row per UTC day a job finished (completed or failed).
 * - `tenant_daily_stats`: the same per (day, tenant_id).
 *
 * Columns (counts are bigint, bytes are bigint bytes):
 * - `day` (date, UTC day of `finished_at`), `day_start` (timestamptz, midnight UTC of `day`: the
 *   time column Grafana's time-series panels want);
 * - `requests`: completed jobs; `reused` / `downloaded`: completed jobs by `cache_status`;
 *   `failed`: jobs that failed for good;
 * - `hit_ratio`: reused / requests (double precision), NULL when no job completed that day;
 * - `bytes_downloaded`: bytes fetched from upstream (CDSE) by completed jobs;
 * - `bytes_delivered`: bytes copied into tenant buckets (`bytes_copied` of completed jobs);
 * - `bytes_saved`: bytes_delivered − bytes_downloaded (what serving from the cache spared upstream;
 *   negative only if jobs downloaded bands they did not deliver).
 *
 * Jobs still queued or active are not counted. Views, not tables: always current, nothing to refresh.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Each view is written out whole (not built from shared fragments) so this migration's text is
  // exactly what it creates.
  await sql`
    CREATE VIEW cache_daily_stats AS
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
  await sql`COMMENT ON VIEW cache_daily_stats IS 'scenecache: finished jobs per UTC day (requests = completed jobs, hit_ratio = reused / requests, bytes_saved = bytes_delivered - bytes_downloaded)'`.execute(db);

  await sql`
    CREATE VIEW tenant_daily_stats AS
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
  await sql`COMMENT ON VIEW tenant_daily_stats IS 'scenecache: finished jobs per UTC day and tenant (same columns as cache_daily_stats, plus tenant_id)'`.execute(db);

  // Day-range reads of the views (`WHERE day >= …`) are pushed down to this expression.
  await sql`CREATE INDEX download_jobs_finished_day_idx ON download_jobs (((finished_at AT TIME ZONE 'UTC')::date), tenant_id)
    WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS download_jobs_finished_day_idx`.execute(db);
  await sql`DROP VIEW IF EXISTS tenant_daily_stats`.execute(db);
  await sql`DROP VIEW IF EXISTS cache_daily_stats`.execute(db);
}
