/**
 * Issue 14: `job_daily_rollups` and its all-tenant (`job_daily_totals`) and all-time
 * (`job_tenant_totals`) sums (migration 0006) — the dashboard views read daily rollups that are
 * always equal to the aggregates of the raw `download_jobs` rows (the views of migration 0002),
 * whatever wrote the rows: the repositories (the worker's path), plain SQL inserts, updates and
 * deletes (one row, many rows per statement, rows moving between days, tenants and statuses), and
 * concurrent completions on the same (day, tenant) on separate connections. Retention's deletes
 * (`scenecache.retention = on`) keep the rollups.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { createDb, type DB } from '@scenecache/db';
import { createTestDatabase, insertFinishedJob, type TestDatabase } from '@scenecache/testing';

const SCENE = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';

/** The per (day, tenant) aggregate of the raw rows, as migration 0002's view computed it. */
const RAW_TENANT_DAILY = sql<Record<string, unknown>>`
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
      - COALESCE(sum(bytes_downloaded) FILTER (WHERE status = 'completed'), 0))::bigint AS bytes_saved,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled
  FROM download_jobs
  WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL
  GROUP BY 1, 2, 3
  ORDER BY 1, 3`;

/** The same per day (all tenants). */
const RAW_DAILY = sql<Record<string, unknown>>`
  SELECT day, day_start, sum(requests)::bigint AS requests, sum(reused)::bigint AS reused, sum(downloaded)::bigint AS downloaded,
    sum(failed)::bigint AS failed, sum(reused)::double precision / NULLIF(sum(requests), 0) AS hit_ratio,
    sum(bytes_downloaded)::bigint AS bytes_downloaded, sum(bytes_delivered)::bigint AS bytes_delivered, sum(bytes_saved)::bigint AS bytes_saved,
    sum(cancelled)::bigint AS cancelled
  FROM (${RAW_TENANT_DAILY}) AS t GROUP BY 1, 2 ORDER BY 1`;

/** The same per tenant, all time. */
const RAW_TENANT = sql<Record<string, unknown>>`
  SELECT tenant_id, sum(requests)::bigint AS requests, sum(reused)::bigint AS reused, sum(downloaded)::bigint AS downloaded,
    sum(failed)::bigint AS failed, sum(bytes_downloaded)::bigint AS bytes_downloaded, sum(bytes_delivered)::bigint AS bytes_delivered,
    sum(cancelled)::bigint AS cancelled
  FROM (${RAW_TENANT_DAILY}) AS t GROUP BY 1 ORDER BY 1`;

/** Both views and the all-time tenant totals equal the raw aggregates. */
async function expectViewsEqualRaw(db: Kysely<DB>): Promise<void> {
  const raw = (await RAW_TENANT_DAILY.execute(db)).rows;
  const view = (await sql<Record<string, unknown>>`SELECT * FROM tenant_daily_stats ORDER BY day, tenant_id`.execute(db)).rows;
  expect(view).toEqual(raw);
  expect((await sql`SELECT * FROM cache_daily_stats ORDER BY day`.execute(db)).rows).toEqual((await RAW_DAILY.execute(db)).rows);
  const tenantTotals = sql`SELECT tenant_id, requests, reused, downloaded, failed, bytes_downloaded, bytes_delivered, cancelled FROM job_tenant_totals WHERE requests <> 0 OR failed <> 0 OR cancelled <> 0 ORDER BY 1`;
  expect((await tenantTotals.execute(db)).rows).toEqual((await RAW_TENANT.execute(db)).rows);
}

/** A finished job row by plain SQL (as a backfill would write it). */
function rawInsert(db: Kysely<DB>, rows: Array<{ tenant: string; day: string; status: 'completed' | 'failed' | 'queued' | 'cancelled'; cache?: 'reused' | 'downloaded'; down?: number; copied?: number }>) {
  return sql`
    INSERT INTO download_jobs (id, tenant_id, scene_id, bands_requested, status, cache_status, bytes_downloaded, bytes_copied, finished_at)
    VALUES ${sql.join(
      rows.map(
        (r) =>
          sql`(${randomUUID()}, ${r.tenant}, ${SCENE}, ARRAY['B04'], ${r.status}, ${r.status === 'completed' ? (r.cache ?? 'downloaded') : null}, ${r.down ?? 0}, ${r.copied ?? 0}, ${r.status === 'queued' ? null : `${r.day}T12:00:00Z`})`,
      ),
    )}`.execute(db);
}

describe('job_daily_rollups', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.drop();
  });
  beforeEach(async () => {
    await sql`DELETE FROM download_jobs`.execute(t.db);
    await sql`TRUNCATE job_daily_rollups, job_daily_totals, job_tenant_totals`.execute(t.db);
  });

  it('equal the raw aggregates after jobs finished through the repositories', async () => {
    const day = new Date('2026-11-02T10:00:00Z');
    await insertFinishedJob(t.db, { tenantId: 'acme', sceneId: SCENE, finishedAt: day, outcome: { cache_status: 'downloaded', bytes_downloaded: 700, bytes_copied: 700 } });
    await insertFinishedJob(t.db, { tenantId: 'acme', sceneId: SCENE, finishedAt: day, outcome: { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 700 } });
    await insertFinishedJob(t.db, { tenantId: 'globex', sceneId: SCENE, finishedAt: '2026-11-03T23:59:59.999Z', outcome: 'failed' });
    await expectViewsEqualRaw(t.db);
    expect((await sql`SELECT tenant_id, requests, reused, failed FROM tenant_daily_stats ORDER BY 1`.execute(t.db)).rows).toEqual([
      { tenant_id: 'acme', requests: 2, reused: 1, failed: 0 },
      { tenant_id: 'globex', requests: 0, reused: 0, failed: 1 },
    ]);
  });

  it('equal the raw aggregates after plain SQL inserts, updates and deletes of one row and of many', async () => {
    await rawInsert(t.db, [
      { tenant: 'a', day: '2026-10-01', status: 'completed', cache: 'downloaded', down: 100, copied: 100 },
      { tenant: 'a', day: '2026-10-01', status: 'completed', cache: 'reused', copied: 100 },
      { tenant: 'b', day: '2026-10-01', status: 'failed' },
      { tenant: 'b', day: '2026-10-02', status: 'completed', cache: 'reused', copied: 50 },
      { tenant: 'c', day: '2026-10-02', status: 'queued' },
      { tenant: 'c', day: '2026-10-02', status: 'cancelled' },
    ]);
    await expectViewsEqualRaw(t.db);
    // Many rows per statement: a backfill of 2,000 jobs over 20 days and 7 tenants.
    await sql`
      INSERT INTO download_jobs (id, tenant_id, scene_id, bands_requested, status, cache_status, bytes_downloaded, bytes_copied, finished_at)
      SELECT gen_random_uuid(), 't' || (i % 7), ${SCENE}, ARRAY['B04'],
        CASE WHEN i % 11 = 0 THEN 'failed' ELSE 'completed' END,
        CASE WHEN i % 11 = 0 THEN NULL WHEN i % 3 = 0 THEN 'downloaded' ELSE 'reused' END,
        CASE WHEN i % 3 = 0 THEN i * 10 ELSE 0 END, i * 10,
        timestamptz '2026-09-01T00:00:00Z' + (i % 20) * interval '1 day' + (i % 86400) * interval '1 second'
      FROM generate_series(1, 2000) AS i`.execute(t.db);
    await expectViewsEqualRaw(t.db);
    // Updates: a status change, rows moved to another day and another tenant, bytes fixed.
    await sql`UPDATE download_jobs SET status = 'failed', cache_status = NULL WHERE tenant_id = 'b' AND status = 'completed'`.execute(t.db);
    await sql`UPDATE download_jobs SET finished_at = finished_at + interval '3 days' WHERE tenant_id = 't3'`.execute(t.db);
    await sql`UPDATE download_jobs SET tenant_id = 't9' WHERE tenant_id = 't4' AND cache_status = 'reused'`.execute(t.db);
    await sql`UPDATE download_jobs SET bytes_copied = bytes_copied + 1 WHERE tenant_id = 't5'`.execute(t.db);
    // Cancelled jobs (migration 0009): counted on their own, moved, and back to queued.
    await sql`UPDATE download_jobs SET status = 'cancelled', cache_status = NULL WHERE tenant_id = 't2' AND status = 'failed'`.execute(t.db);
    await sql`UPDATE download_jobs SET status = 'cancelled', cache_status = NULL WHERE id IN (SELECT id FROM download_jobs WHERE tenant_id = 't5' ORDER BY id LIMIT 7)`.execute(t.db);
    await expectViewsEqualRaw(t.db);
    await sql`UPDATE download_jobs SET finished_at = finished_at + interval '1 day' WHERE tenant_id = 't2' AND status = 'cancelled'`.execute(t.db);
    await sql`UPDATE download_jobs SET status = 'queued', finished_at = NULL WHERE id IN (SELECT id FROM download_jobs WHERE tenant_id = 't5' AND status = 'cancelled' ORDER BY id LIMIT 3)`.execute(t.db);
    // A queued job finishing, a finished one going back to queued (a reset by hand).
    await sql`UPDATE download_jobs SET status = 'completed', cache_status = 'downloaded', bytes_downloaded = 9, bytes_copied = 9, finished_at = '2026-10-02T01:00:00Z' WHERE tenant_id = 'c'`.execute(t.db);
    await sql`UPDATE download_jobs SET status = 'queued', cache_status = NULL, finished_at = NULL WHERE tenant_id = 't6' AND status = 'failed'`.execute(t.db);
    await expectViewsEqualRaw(t.db);
    // Deletes: one row, then a whole tenant, then a day of every tenant.
    await sql`DELETE FROM download_jobs WHERE id = (SELECT id FROM download_jobs WHERE tenant_id = 'a' ORDER BY id LIMIT 1)`.execute(t.db);
    await sql`DELETE FROM download_jobs WHERE tenant_id = 't1'`.execute(t.db);
    await sql`DELETE FROM download_jobs WHERE (finished_at AT TIME ZONE 'UTC')::date = '2026-09-05'`.execute(t.db);
    await expectViewsEqualRaw(t.db);
    // Everything gone: the views are empty too (zeroed rollup rows are skipped).
    await sql`DELETE FROM download_jobs`.execute(t.db);
    expect((await sql`SELECT count(*)::int AS n FROM tenant_daily_stats`.execute(t.db)).rows).toEqual([{ n: 0 }]);
    expect((await sql`SELECT count(*)::int AS n FROM cache_daily_stats`.execute(t.db)).rows).toEqual([{ n: 0 }]);
  });

  it('lose no count when many connections complete jobs of the same (day, tenant) at once', async () => {
    const connections = Array.from({ length: 8 }, () => createDb(t.url, { max: 1 }));
    try {
      await Promise.all(
        connections.map(async (db, c) => {
          for (let i = 0; i < 25; i++) {
            await db.transaction().execute(async (trx) => {
              await rawInsert(trx, [
                { tenant: 'hot', day: '2026-11-20', status: 'completed', cache: c % 2 === 0 ? 'reused' : 'downloaded', down: 1, copied: 2 },
                { tenant: `other-${c}`, day: '2026-11-20', status: 'failed' },
              ]);
            });
          }
        }),
      );
    } finally {
      await Promise.all(connections.map((db) => db.destroy()));
    }
    await expectViewsEqualRaw(t.db);
    expect((await sql`SELECT requests, reused, downloaded, bytes_delivered FROM tenant_daily_stats WHERE tenant_id = 'hot'`.execute(t.db)).rows).toEqual([
      { requests: 200, reused: 100, downloaded: 100, bytes_delivered: 400 },
    ]);
  });

  it('are kept by retention deletes (scenecache.retention = on): the history outlives the rows', async () => {
    await rawInsert(t.db, [
      { tenant: 'a', day: '2025-01-01', status: 'completed', cache: 'reused', copied: 10 },
      { tenant: 'a', day: '2025-01-01', status: 'failed' },
      { tenant: 'a', day: '2026-11-01', status: 'completed', cache: 'downloaded', down: 5, copied: 5 },
    ]);
    const before = (await sql`SELECT * FROM tenant_daily_stats ORDER BY day`.execute(t.db)).rows;
    const beforeTotals = (await sql`SELECT * FROM cache_daily_stats ORDER BY day`.execute(t.db)).rows;
    const beforeTenant = (await sql`SELECT * FROM job_tenant_totals`.execute(t.db)).rows;
    expect(beforeTenant).toEqual([{ tenant_id: 'a', requests: 2, reused: 1, downloaded: 1, failed: 1, bytes_downloaded: 5, bytes_delivered: 15, cancelled: 0 }]);
    await t.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL scenecache.retention = 'on'`.execute(trx);
      await sql`DELETE FROM download_jobs WHERE finished_at < '2026-01-01'`.execute(trx);
    });
    expect((await sql`SELECT count(*)::int AS n FROM download_jobs`.execute(t.db)).rows).toEqual([{ n: 1 }]);
    expect((await sql`SELECT * FROM tenant_daily_stats ORDER BY day`.execute(t.db)).rows).toEqual(before);
    expect((await sql`SELECT * FROM cache_daily_stats ORDER BY day`.execute(t.db)).rows).toEqual(beforeTotals);
    expect((await sql`SELECT * FROM job_tenant_totals`.execute(t.db)).rows).toEqual(beforeTenant);
    // Outside retention, a delete counts again.
    await sql`DELETE FROM download_jobs`.execute(t.db);
    expect((await sql`SELECT day::text FROM tenant_daily_stats`.execute(t.db)).rows).toEqual([{ day: '2025-01-01' }]);
  });
});
