/**
 * The workers' scheduled maintenance (maintenance.ts) on real Redis, Postgres and s3rver. Two
 * "workers" (two maintenance instances, as two processes would start them) share the schedulers.
 *
 * - Issue 14, retention: runs delete finished job rows older than DOWNLOAD_JOBS_RETENTION_DAYS in
 *   batches — never a queued or active one, never a recent one — while the daily statistics keep
 *   every day.
 * - Issue 15, the global cache: every MAINTENANCE_INTERVAL_MS a run evicts down to 90 % of
 *   GLOBAL_CACHE_MAX_BYTES, least recently used first, one run at a time fleet-wide, counted in
 *   the worker's metrics.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { createLogger, loadSettings } from '@scenecache/core';
import { createDb, deleteExpiredJobs, RETENTION_LOCK_KEY } from '@scenecache/db';
import { createTestDatabase, seedCachedProduct, startTestS3, testProductName, until, type TestDatabase, type TestS3 } from '@scenecache/testing';
import { CACHE_MAINTENANCE_TASK, startMaintenance, RETENTION_TASK, type Maintenance } from '../src/maintenance.js';
import { WorkerMetrics } from '../src/worker-metrics.js';

const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379';
const SCENE = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const DAY_MS = 86_400_000;

/** `n` jobs of `tenant` by plain SQL, finished `daysAgo` days ago (or unfinished for queued/active). */
async function seed(t: TestDatabase, n: number, daysAgo: number, status: 'completed' | 'failed' | 'queued' | 'active', tenant = 'acme'): Promise<void> {
  await sql`
    INSERT INTO download_jobs (id, tenant_id, scene_id, bands_requested, status, cache_status, bytes_downloaded, bytes_copied, enqueued_at, finished_at)
    SELECT gen_random_uuid(), ${tenant}, ${SCENE}, ARRAY['B04'], ${status}, ${status === 'completed' ? 'reused' : null}, 0, 10,
      now() - ${daysAgo} * interval '1 day', ${status === 'completed' || status === 'failed' ? sql`now() - ${daysAgo} * interval '1 day'` : null}
    FROM generate_series(1, ${n})`.execute(t.db);
}

const countJobs = async (t: TestDatabase) => (await sql<{ n: number }>`SELECT count(*)::int AS n FROM download_jobs`.execute(t.db)).rows[0]!.n;
const statsDays = async (t: TestDatabase) => (await sql<{ day: string; requests: number; failed: number }>`SELECT day::text, requests, failed FROM cache_daily_stats ORDER BY day`.execute(t.db)).rows;

/** A database and an S3 for one describe block, and the Redis connections and maintenance instances its tests start: all closed after it. */
function maintenanceFixture(): { t: TestDatabase; s3: TestS3; redis: Redis[]; running: Maintenance[] } {
  const f = { redis: [] as Redis[], running: [] as Maintenance[] } as { t: TestDatabase; s3: TestS3; redis: Redis[]; running: Maintenance[] };
  beforeAll(async () => {
    f.t = await createTestDatabase();
    f.s3 = await startTestS3();
  });
  afterAll(async () => {
    for (const m of f.running) await m.close();
    for (const r of f.redis) r.disconnect();
    await f.s3?.close();
    await f.t?.drop();
  });
  return f;
}

describe('scheduled maintenance: job retention', () => {
  const f = maintenanceFixture();

  it('two workers share one scheduler; a run deletes old finished rows in batches, keeps the rest and every day of the statistics', async () => {
    const { t, s3, redis, running } = f;
    await seed(t, 120, 200, 'completed');
    await seed(t, 30, 120, 'failed', 'globex');
    await seed(t, 5, 100, 'queued');
    await seed(t, 5, 100, 'active');
    await seed(t, 40, 89, 'completed');
    await seed(t, 10, 1, 'completed');
    const before = await statsDays(t);
    expect(before.map((d) => d.requests + d.failed)).toEqual([120, 30, 40, 10]);

    const settings = loadSettings({ QUEUE_PREFIX: `maint-${randomUUID()}`, DOWNLOAD_JOBS_RETENTION_DAYS: '90', DATABASE_URL: t.url, REDIS_URL });
    const logger = createLogger('maintenance-test', 'silent');
    for (let i = 0; i < 2; i++) {
      const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
      redis.push(connection);
      running.push(await startMaintenance({ settings, db: t.db, store: s3.store, connection, logger, retentionIntervalMs: 500 }));
    }
    expect((await running[0]!.queue.getJobSchedulers()).map((s) => s.key ?? s.id).sort()).toEqual([CACHE_MAINTENANCE_TASK, RETENTION_TASK].sort());

    // 150 rows finished over 90 days ago go; queued, active and recent rows stay.
    await until('retention to delete the old finished rows', async () => (await countJobs(t)) === 60, 20_000, 100);
    const left = (await sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM download_jobs GROUP BY 1 ORDER BY 1`.execute(t.db)).rows;
    expect(left).toEqual([
      { status: 'active', n: 5 },
      { status: 'completed', n: 50 },
      { status: 'queued', n: 5 },
    ]);
    // The statistics keep the deleted rows' days.
    expect(await statsDays(t)).toEqual(before);
    const completed = await running[0]!.queue.getJobs(['completed']);
    expect(completed.length).toBeGreaterThan(0);
    expect(completed.some((j) => j.name === RETENTION_TASK)).toBe(true);
  });

  it('deletes in batches of the given size, and one run at a time (the retention lock)', async () => {
    const { t } = f;
    await sql`DELETE FROM download_jobs`.execute(t.db);
    await seed(t, 25, 400, 'completed');
    // Another run holds the lock: this one does nothing.
    const holder = createDb(t.url, { max: 1 });
    try {
      await holder.connection().execute(async (conn) => {
        await sql`SELECT pg_advisory_lock(${RETENTION_LOCK_KEY})`.execute(conn);
        const skipped = await deleteExpiredJobs(t.db, 30, { batchSize: 10 });
        expect({ ran: skipped.ran, deleted: skipped.deleted }).toEqual({ ran: false, deleted: 0 });
        expect(await countJobs(t)).toBe(25);
        await sql`SELECT pg_advisory_unlock(${RETENTION_LOCK_KEY})`.execute(conn);
      });
    } finally {
      await holder.destroy();
    }
    const done = await deleteExpiredJobs(t.db, 30, { batchSize: 10 });
    expect({ ran: done.ran, deleted: done.deleted, batches: done.batches }).toEqual({ ran: true, deleted: 25, batches: 3 });
    expect(await countJobs(t)).toBe(0);
    const today = new Date();
    expect(done.cutoff.getTime()).toBe(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()) - 30 * DAY_MS);
  });
});

describe('scheduled maintenance: the global cache', () => {
  const f = maintenanceFixture();

  it('two workers share one scheduler: runs evict to 90 % of the budget, least recently used first, one at a time, counted in the metrics', async () => {
    const { t, s3, redis, running } = f;
    const bucket = s3.uniqueBucket('global');
    await s3.store.ensureBucket(bucket);
    // 10 products × 2 objects × 100 bytes = 2000 bytes; budget 1500 → at most 1350: the 4 least recently used go.
    const scenes: string[] = [];
    const keys: string[][] = [];
    for (let i = 0; i < 10; i++) {
      scenes.push(testProductName(i));
      const bands = await seedCachedProduct({ db: t.db, client: s3.client, bucket, sceneId: scenes[i]!, lastUsedDaysAgo: 100 - i });
      keys.push(Object.values(bands).map((b) => b.key));
    }
    const settings = loadSettings({
      QUEUE_PREFIX: `maint-${randomUUID()}`,
      DATABASE_URL: t.url,
      REDIS_URL,
      GLOBAL_BUCKET: bucket,
      GLOBAL_CACHE_MAX_BYTES: '1500',
      MAINTENANCE_INTERVAL_MS: '1000',
      DOWNLOAD_JOBS_RETENTION_DAYS: '0',
    });
    const logger = createLogger('maintenance-test', 'silent');
    const metrics = [new WorkerMetrics(), new WorkerMetrics()];
    for (let i = 0; i < 2; i++) {
      const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
      redis.push(connection);
      running.push(await startMaintenance({ settings, db: t.db, store: s3.store, connection, logger, metrics: metrics[i] }));
    }
    expect((await running[0]!.queue.getJobSchedulers()).map((s) => s.key ?? s.id)).toEqual([CACHE_MAINTENANCE_TASK]);
    const left = async () => (await sql<{ scene_id: string }>`SELECT scene_id FROM global_scene_cache ORDER BY scene_id`.execute(t.db)).rows.map((r) => r.scene_id);
    await until('a scheduled run to evict', async () => (await left()).length === 6, 20_000, 100);
    expect(await left()).toEqual(scenes.slice(4).sort());
    expect((await s3.store.listKeys(bucket)).sort()).toEqual(keys.slice(4).flat().sort());
    // Let a few more runs happen: under the budget they evict nothing.
    await until('three scheduled runs', async () => ((await running[0]!.queue.getJobs(['completed'])).length >= 3 ? true : undefined), 20_000, 100);
    expect(await left()).toEqual(scenes.slice(4).sort());
    const text = (await metrics[0]!.scrape()) + (await metrics[1]!.scrape());
    const total = (name: string) => [...text.matchAll(new RegExp(`^${name} (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(total('scenecache_cache_evictions_total')).toBe(4);
    expect(total('scenecache_cache_removed_bytes_total')).toBe(800);
    expect(total('scenecache_cache_expiries_total')).toBe(0);
    // Whichever worker ran last saw the bucket as it is: 6 products × 2 objects × 100 bytes.
    expect(text).toMatch(/^scenecache_global_bucket_listed\{unit="bytes"\} 1200$/m);
    expect(text).toMatch(/^scenecache_global_bucket_listed\{unit="objects"\} 12$/m);
    // Every run finished, none failed; each reported what it did (or that another held the lock).
    const done = await running[0]!.queue.getJobs(['completed']);
    expect(await running[0]!.queue.getJobs(['failed'])).toEqual([]);
    const evicted = done.map((j) => (j.returnvalue as { evicted: { products: number } }).evicted.products);
    expect(evicted.reduce((a, b) => a + b, 0)).toBe(4);
  });
});
