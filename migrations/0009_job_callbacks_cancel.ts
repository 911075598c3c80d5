/**
 * Issue 16 (cancel, completion callbacks):
 *
 * - `download_jobs.status` may be `cancelled` (`DELETE /v1/downloads/{id}`): `cancel_requested_at`
 *   (the cancel was asked; an active job stops at its next step) and `cancelled_at` (it stopped).
 *   A cancelled job is finished: `finished_at` is set, retention and offboarding delete it like a
 *   completed or failed one (`download_jobs_finished_day_idx` covers it).
 * - Completion callbacks: `callback_url` (validated by the API), `callback_key_id` (the `api_keys`
 *   row whose `callback_secret` signs the POST; null = the bootstrap secret `CALLBACK_SIGNING_SECRET`),
 *   and the delivery's state — `callback_state` (null until the job ends, then `pending`,
 *   `delivered` or `failed`), `callback_attempts`, `callback_last_status` (HTTP status of the last
 *   attempt; null when it got no answer), `callback_last_error`, `callback_delivered_at`.
 *   `download_jobs_callback_pending_idx` finds deliveries still pending (the workers' sweep).
 * - `api_keys.callback_secret`: each key's callback signing secret (`whsec_…`), shown once when the
 *   key is made (`npm run keys`). Stored in clear: the server signs with it (as webhook senders
 *   do); keys made before this migration have none until `npm run keys -- rotate-callback-secret`.
 * - The statistics count cancelled jobs: `cancelled` in the three rollup tables (kept by the
 *   trigger function of 0006, replaced here to add it) and as the last column of
 *   `cache_daily_stats` and `tenant_daily_stats` (appended: the views keep their other columns
 *   and grants).
 *
 * `down()` turns cancelled jobs into failed ones (`error_code = 'cancelled'`), restores 0006's
 * function and views (re-granting what the views had) and drops the rest.
 */
import { sql, type Kysely } from 'kysely';

/** Body of `job_daily_rollups_apply()` with the `cancelled` count (0006's, extended). */
const ROLLUP_FUNCTION_BODY = `
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
      EXECUTE format($q$SELECT EXISTS (SELECT 1 FROM (%s) AS delta WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL)$q$, source) INTO finished;
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
          INSERT INTO %I AS r (%s, requests, reused, downloaded, failed, bytes_downloaded, bytes_delivered, cancelled)
          SELECT %s,
            COALESCE(sum(sign) FILTER (WHERE status = 'completed'), 0),
            COALESCE(sum(sign) FILTER (WHERE status = 'completed' AND cache_status = 'reused'), 0),
            COALESCE(sum(sign) FILTER (WHERE status = 'completed' AND cache_status = 'downloaded'), 0),
            COALESCE(sum(sign) FILTER (WHERE status = 'failed'), 0),
            COALESCE(sum(sign * bytes_downloaded) FILTER (WHERE status = 'completed'), 0),
            COALESCE(sum(sign * bytes_copied) FILTER (WHERE status = 'completed'), 0),
            COALESCE(sum(sign) FILTER (WHERE status = 'cancelled'), 0)
          FROM (%s) AS delta
          WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL
          GROUP BY %s
          ORDER BY %s
          ON CONFLICT (%s) DO UPDATE SET
            requests = r.requests + EXCLUDED.requests,
            reused = r.reused + EXCLUDED.reused,
            downloaded = r.downloaded + EXCLUDED.downloaded,
            failed = r.failed + EXCLUDED.failed,
            bytes_downloaded = r.bytes_downloaded + EXCLUDED.bytes_downloaded,
            bytes_delivered = r.bytes_delivered + EXCLUDED.bytes_delivered,
            cancelled = r.cancelled + EXCLUDED.cancelled
        $q$, target.tbl, target.key_columns, target.key_values, source, target.key_positions, target.key_positions, target.key_columns);
      END LOOP;
      RETURN NULL;
    END
    `;

/** Body of `job_daily_rollups_apply()` as migration 0006 wrote it (restored by `down`). */
const ROLLUP_FUNCTION_BODY_0006 = `
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
    `;

/** The view figures of 0006 (`hit_ratio` and `bytes_saved` derived). */
const VIEW_FIGURES_0006 =
  'requests, reused, downloaded, failed, reused::double precision / NULLIF(requests, 0) AS hit_ratio, bytes_downloaded, bytes_delivered, (bytes_delivered - bytes_downloaded) AS bytes_saved';

/** The dashboard views: their definitions (0006's figures, then `extra`) and the comments of 0002. */
function viewDefinitions(extra: string, where: string) {
  const figures = sql.raw(VIEW_FIGURES_0006 + extra);
  const filter = sql.raw(where);
  return [
    {
      name: 'cache_daily_stats',
      select: sql`SELECT day, (day::timestamp AT TIME ZONE 'UTC') AS day_start, ${figures} FROM job_daily_totals WHERE ${filter}`,
      comment: 'scenecache: finished jobs per UTC day (requests = completed jobs, hit_ratio = reused / requests, bytes_saved = bytes_delivered - bytes_downloaded)',
    },
    {
      name: 'tenant_daily_stats',
      select: sql`SELECT day, (day::timestamp AT TIME ZONE 'UTC') AS day_start, tenant_id, ${figures} FROM job_daily_rollups WHERE ${filter}`,
      comment: 'scenecache: finished jobs per UTC day and tenant (same columns as cache_daily_stats, plus tenant_id)',
    },
  ];
}

const ROLLUP_TABLES = ['job_daily_rollups', 'job_daily_totals', 'job_tenant_totals'] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE download_jobs DROP CONSTRAINT download_jobs_status_check`.execute(db);
  await sql`ALTER TABLE download_jobs ADD CONSTRAINT download_jobs_status_check CHECK (status IN ('queued', 'active', 'completed', 'failed', 'cancelled'))`.execute(db);
  await db.schema
    .alterTable('download_jobs')
    .addColumn('cancel_requested_at', 'timestamptz')
    .addColumn('cancelled_at', 'timestamptz')
    .addColumn('callback_url', 'text')
    .addColumn('callback_key_id', 'uuid')
    .addColumn('callback_state', 'text', (c) => c.check(sql`callback_state IN ('pending', 'delivered', 'failed')`))
    .addColumn('callback_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('callback_last_status', 'integer')
    .addColumn('callback_last_error', 'text')
    .addColumn('callback_delivered_at', 'timestamptz')
    .execute();
  await sql`CREATE INDEX download_jobs_callback_pending_idx ON download_jobs (finished_at) WHERE callback_state = 'pending'`.execute(db);
  await sql`DROP INDEX download_jobs_finished_day_idx`.execute(db);
  await sql`CREATE INDEX download_jobs_finished_day_idx ON download_jobs (((finished_at AT TIME ZONE 'UTC')::date), tenant_id)
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL`.execute(db);

  await db.schema.alterTable('api_keys').addColumn('callback_secret', 'text').execute();

  // No row is cancelled yet: the new counts start at 0, nothing to backfill.
  for (const table of ROLLUP_TABLES) await sql`ALTER TABLE ${sql.table(table)} ADD COLUMN cancelled bigint NOT NULL DEFAULT 0`.execute(db);
  await sql`CREATE OR REPLACE FUNCTION job_daily_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$${sql.raw(ROLLUP_FUNCTION_BODY)}$fn$`.execute(db);
  // Appended last, so CREATE OR REPLACE keeps the views (and their grants) as they are.
  for (const view of viewDefinitions(', cancelled', 'requests <> 0 OR failed <> 0 OR cancelled <> 0')) {
    await sql`CREATE OR REPLACE VIEW ${sql.table(view.name)} AS ${view.select}`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE OR REPLACE FUNCTION job_daily_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$${sql.raw(ROLLUP_FUNCTION_BODY_0006)}$fn$`.execute(db);
  // A view cannot lose a column in place: drop and re-create it as 0006 had it, with its comment
  // and the grants it had (the dashboard reader role, 0005).
  const grants = await sql<{ table_name: string; grantee: string; privilege_type: string }>`
    SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants
    WHERE table_schema = current_schema() AND table_name IN ('cache_daily_stats', 'tenant_daily_stats') AND grantee <> current_user`.execute(db);
  for (const view of viewDefinitions('', 'requests <> 0 OR failed <> 0')) {
    await sql`DROP VIEW ${sql.table(view.name)}`.execute(db);
    await sql`CREATE VIEW ${sql.table(view.name)} AS ${view.select}`.execute(db);
    await sql`COMMENT ON VIEW ${sql.table(view.name)} IS ${sql.lit(view.comment)}`.execute(db);
    for (const g of grants.rows.filter((r) => r.table_name === view.name)) {
      await sql`GRANT ${sql.raw(g.privilege_type)} ON ${sql.table(view.name)} TO ${sql.id(g.grantee)}`.execute(db);
    }
  }
  // 0006's function no longer counts cancelled rows: turning them into failed ones adds them to `failed`.
  await sql`UPDATE download_jobs SET status = 'failed', error_code = COALESCE(error_code, 'cancelled'), error_message = COALESCE(error_message, 'cancelled') WHERE status = 'cancelled'`.execute(db);
  for (const table of ROLLUP_TABLES) await sql`ALTER TABLE ${sql.table(table)} DROP COLUMN cancelled`.execute(db);

  await db.schema.alterTable('api_keys').dropColumn('callback_secret').execute();

  await sql`DROP INDEX download_jobs_finished_day_idx`.execute(db);
  await sql`CREATE INDEX download_jobs_finished_day_idx ON download_jobs (((finished_at AT TIME ZONE 'UTC')::date), tenant_id)
    WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL`.execute(db);
  await sql`DROP INDEX download_jobs_callback_pending_idx`.execute(db);
  await db.schema
    .alterTable('download_jobs')
    .dropColumn('callback_delivered_at')
    .dropColumn('callback_last_error')
    .dropColumn('callback_last_status')
    .dropColumn('callback_attempts')
    .dropColumn('callback_state')
    .dropColumn('callback_key_id')
    .dropColumn('callback_url')
    .dropColumn('cancelled_at')
    .dropColumn('cancel_requested_at')
    .execute();
  await sql`ALTER TABLE download_jobs DROP CONSTRAINT download_jobs_status_check`.execute(db);
  await sql`ALTER TABLE download_jobs ADD CONSTRAINT download_jobs_status_check CHECK (status IN ('queued', 'active', 'completed', 'failed'))`.execute(db);
}
