/**
 * A year of job history, by plain SQL: `seedHistory` fills `download_jobs` with realistic finished
 * jobs (for benchmarks, the index test, and operators who want to try the dashboard on a full
 * table). It inserts `INSERT … SELECT … FROM generate_series` in chunks, so the rollup triggers run
 * as for any backfill.
 *
 * The shape (deterministic for a given `seed`): jobs spread evenly over the last `days` days (none
 * in the last 10 minutes), tenants skewed (tenant k gets ~1/(k+1) of the jobs: a few busy tenants,
 * a long tail); ~96 % completed (of those ~70 % reused, the rest downloaded), ~4 % failed for good;
 * 1–4 bands of ~30–120 MB each; products drawn from 2,000 synthetic L2A names over 60 MGRS tiles;
 * ids are UUIDv7 carrying the enqueue time, like the API's.
 */
import { sql, type Kysely } from 'kysely';
import type { DB } from './schema.js';

/** What to seed. */
export interface HistorySeedOptions {
  /** Finished jobs to insert. */
  jobs: number;
  /** Spread over the last this many UTC days (ending today). */
  days: number;
  /** Distinct tenants (`tenant-000` …). */
  tenants: number;
  /** Rows per INSERT statement. @defaultValue 100000 */
  chunk?: number;
  /** Random seed (Postgres `setseed`, −1…1). @defaultValue 0.42 */
  seed?: number;
  /** Called after each chunk with the rows inserted so far. */
  onProgress?: (inserted: number) => void;
}

/**
 * Insert `jobs` finished jobs (see the module comment). Runs `ANALYZE download_jobs` at the end so
 * the planner sees the new table.
 *
 * @throws RangeError for a non-positive count; the database's error otherwise.
 */
export async function seedHistory(db: Kysely<DB>, options: HistorySeedOptions): Promise<void> {
  const { jobs, days, tenants } = options;
  if (!(jobs > 0 && days > 0 && tenants > 0)) throw new RangeError('jobs, days and tenants must be positive');
  const chunk = options.chunk ?? 100_000;
  await db.connection().execute(async (conn) => {
    await sql`SELECT setseed(${options.seed ?? 0.42})`.execute(conn);
    for (let from = 0; from < jobs; from += chunk) {
      const to = Math.min(jobs, from + chunk) - 1;
      await sql`
        INSERT INTO download_jobs (id, tenant_id, scene_id, bands_requested, priority, status, cache_status,
          bands_downloaded, bands_reused, bytes_downloaded, bytes_copied, objects, message, attempts, waits,
          error_code, error_message, enqueued_at, started_at, finished_at, duration_ms, worker_id, updated_at)
        SELECT
          -- UUIDv7: the enqueue time in the first 48 bits, version 7 (RFC 9562 §5.7).
          overlay(overlay(overlay(gen_random_uuid()::text
            PLACING substr(lpad(to_hex((extract(epoch FROM g.enqueued_at) * 1000)::bigint), 12, '0'), 1, 8) FROM 1 FOR 8)
            PLACING substr(lpad(to_hex((extract(epoch FROM g.enqueued_at) * 1000)::bigint), 12, '0'), 9, 4) FROM 10 FOR 4)
            PLACING '7' FROM 15 FOR 1),
          g.tenant_id, g.scene_id, g.bands, NULL, g.status,
          CASE WHEN g.status = 'completed' THEN g.cache_status END,
          CASE WHEN g.status = 'completed' AND g.cache_status = 'downloaded' THEN g.bands ELSE '{}'::text[] END,
          CASE WHEN g.status = 'completed' AND g.cache_status = 'reused' THEN g.bands ELSE '{}'::text[] END,
          CASE WHEN g.status = 'completed' AND g.cache_status = 'downloaded' THEN g.bytes ELSE 0 END,
          CASE WHEN g.status = 'completed' THEN g.bytes ELSE 0 END,
          NULL,
          CASE WHEN g.status = 'completed' THEN 'seeded' END,
          1, 0,
          CASE WHEN g.status = 'failed' THEN 'upstream_unavailable' END,
          CASE WHEN g.status = 'failed' THEN 'seeded failure' END,
          g.enqueued_at, g.enqueued_at + interval '1 second', g.finished_at,
          (extract(epoch FROM g.finished_at - g.enqueued_at) * 1000)::int,
          'seed', g.finished_at
        FROM (
          SELECT
            'tenant-' || lpad((floor(${tenants} * power(random(), 2.5)))::int::text, 3, '0') AS tenant_id,
            'S2' || (ARRAY['A', 'B'])[1 + (p % 2)] || '_MSIL2A_' || to_char(date '2024-01-01' + (p % 700), 'YYYYMMDD') || 'T101649_N0510_R065_T'
              -- An MGRS tile: zone, latitude band (C–X without I, O), 100 km square letters (no I, O).
              || (30 + (p % 60) / 26)::text || substr('CDEFGHJKLMNPQRSTUVWX', 1 + (p % 20), 1)
              || substr('ABCDEFGHJKLMNPQRSTUVWXYZ', 1 + ((p / 3) % 24), 1) || substr('ABCDEFGHJKLMNPQRSTUV', 1 + ((p / 7) % 20), 1)
              || '_' || to_char(date '2024-01-01' + (p % 700), 'YYYYMMDD') || 'T130035' AS scene_id,
            ((ARRAY['{B04}', '{B02,B03,B04}', '{B02,B03,B04,B08}', '{B8A,SCL}'])[1 + (i % 4)])::text[] AS bands,
            CASE WHEN random() < 0.04 THEN 'failed' ELSE 'completed' END AS status,
            CASE WHEN random() < 0.7 THEN 'reused' ELSE 'downloaded' END AS cache_status,
            (30e6 + random() * 90e6)::bigint * (1 + (i % 4)) AS bytes,
            t.ts AS enqueued_at,
            t.ts + (2 + random() * 300) * interval '1 second' AS finished_at
          FROM generate_series(${from}::bigint, ${to}::bigint) AS i,
            LATERAL (SELECT (random() * 2000 + i * 0)::int AS p) AS pr,
            LATERAL (SELECT now() - ((i % ${days}) + random()) * interval '1 day' - interval '10 minutes' AS ts) AS t
        ) AS g`.execute(conn);
      options.onProgress?.(to + 1);
    }
    await sql`ANALYZE download_jobs`.execute(conn);
    await sql`ANALYZE job_daily_rollups, job_daily_totals, job_tenant_totals`.execute(conn);
  });
}
