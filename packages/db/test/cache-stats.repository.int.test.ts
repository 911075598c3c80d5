import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { ValidationError } from '@scenecache/core';
import {
  createDb,
  dropDatabase,
  getCacheStats,
  insertQueuedJob,
  listCachedScenes,
  markJobActive,
  markJobFailed,
  migrateDown,
  migrateToLatest,
  recordCacheHit,
  registerBands,
} from '@scenecache/db';
import { createTestDatabase, insertFinishedJob, testDatabaseUrl, uniqueTestDatabaseName, type FinishedJobOutcome, type TestDatabase } from '@scenecache/testing';
import { registration, SCENE } from './fixtures.js';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
  await seedJobs();
});
afterAll(async () => {
  await t.drop();
});

/** A job taken through the repositories to its end, finishing at `finishedAt` (ISO instant). */
async function finishedJob(tenantId: string, finishedAt: string, outcome: FinishedJobOutcome): Promise<void> {
  await insertFinishedJob(t.db, { tenantId, sceneId: SCENE, finishedAt, outcome });
}

const D1 = '2026-11-20';
const D2 = '2026-11-21';
const D3 = '2026-11-22';

/**
 * D1: acme downloaded (300 up, 300 copied) + reused ×2 (300 copied each) + 1 failed, the last at
 *     23:59:59.999 UTC; globex reused (300).
 * D2: acme reused (200) at 00:00:00 UTC; globex downloaded (500 up, 500 copied) + 1 failed.
 * D3: acme 1 failed only.
 * Not counted: a queued job, an active job, an attempt that failed and will be retried.
 */
async function seedJobs(): Promise<void> {
  await finishedJob('acme', `${D1}T08:00:00Z`, { cache_status: 'downloaded', bytes_downloaded: 300, bytes_copied: 300 });
  await finishedJob('acme', `${D1}T09:00:00Z`, { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 300 });
  await finishedJob('acme', `${D1}T23:59:59.999Z`, { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 300 });
  await finishedJob('acme', `${D1}T10:00:00Z`, 'failed');
  await finishedJob('globex', `${D1}T12:00:00+02:00`, { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 300 });
  await finishedJob('acme', `${D2}T00:00:00Z`, { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 200 });
  await finishedJob('globex', `${D2}T07:00:00Z`, { cache_status: 'downloaded', bytes_downloaded: 500, bytes_copied: 500 });
  await finishedJob('globex', `${D2}T08:00:00Z`, 'failed');
  await finishedJob('acme', `${D3}T01:00:00Z`, 'failed');

  await insertQueuedJob(t.db, { id: randomUUID(), tenantId: 'acme', sceneId: SCENE, bands: ['B04'] });
  const active = randomUUID();
  await markJobActive(t.db, { id: active, tenantId: 'acme', sceneId: SCENE, bands: ['B04'], workerId: 'w1', attempt: 1 });
  const retried = randomUUID();
  await markJobActive(t.db, { id: retried, tenantId: 'globex', sceneId: SCENE, bands: ['B04'], workerId: 'w1', attempt: 1 });
  await markJobFailed(t.db, retried, { code: 'upstream_error', message: 'retry', attempt: 1, final: false });
}

const day1 = { requests: 4, reused: 3, downloaded: 1, failed: 1, cancelled: 0, hit_ratio: 0.75, bytes_downloaded: 300, bytes_delivered: 1200, bytes_saved: 900 };
const day2 = { requests: 2, reused: 1, downloaded: 1, failed: 1, cancelled: 0, hit_ratio: 0.5, bytes_downloaded: 500, bytes_delivered: 700, bytes_saved: 200 };
const day3 = { requests: 0, reused: 0, downloaded: 0, failed: 1, cancelled: 0, hit_ratio: null, bytes_downloaded: 0, bytes_delivered: 0, bytes_saved: 0 };
const acme1 = { requests: 3, reused: 2, downloaded: 1, failed: 1, cancelled: 0, hit_ratio: 2 / 3, bytes_downloaded: 300, bytes_delivered: 900, bytes_saved: 600 };
const globex1 = { requests: 1, reused: 1, downloaded: 0, failed: 0, cancelled: 0, hit_ratio: 1, bytes_downloaded: 0, bytes_delivered: 300, bytes_saved: 300 };
const acme2 = { requests: 1, reused: 1, downloaded: 0, failed: 0, cancelled: 0, hit_ratio: 1, bytes_downloaded: 0, bytes_delivered: 200, bytes_saved: 200 };
const globex2 = { requests: 1, reused: 0, downloaded: 1, failed: 1, cancelled: 0, hit_ratio: 0, bytes_downloaded: 500, bytes_delivered: 500, bytes_saved: 0 };

describe('cache_daily_stats view', () => {
  it('counts finished jobs per UTC day: requests, reused, downloaded, failed, hit ratio, bytes', async () => {
    const rows = await t.db.selectFrom('cache_daily_stats').selectAll().orderBy('day').execute();

    expect(rows).toEqual([
      { day: D1, day_start: new Date(`${D1}T00:00:00Z`), ...day1 },
      { day: D2, day_start: new Date(`${D2}T00:00:00Z`), ...day2 },
      { day: D3, day_start: new Date(`${D3}T00:00:00Z`), ...day3 },
    ]);
  });

  it('uses UTC days whatever the session time zone', async () => {
    const rows = await t.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL TIME ZONE 'Pacific/Auckland'`.execute(trx);
      return trx.selectFrom('cache_daily_stats').select(['day', 'day_start', 'requests']).orderBy('day').execute();
    });

    expect(rows).toEqual([
      { day: D1, day_start: new Date(`${D1}T00:00:00Z`), requests: 4 },
      { day: D2, day_start: new Date(`${D2}T00:00:00Z`), requests: 2 },
      { day: D3, day_start: new Date(`${D3}T00:00:00Z`), requests: 0 },
    ]);
  });
});

describe('tenant_daily_stats view', () => {
  it('has the same figures per (day, tenant)', async () => {
    const rows = await t.db.selectFrom('tenant_daily_stats').selectAll().orderBy('day').orderBy('tenant_id').execute();

    expect(rows.map(({ day_start: _start, ...row }) => row)).toEqual([
      { day: D1, tenant_id: 'acme', ...acme1 },
      { day: D1, tenant_id: 'globex', ...globex1 },
      { day: D2, tenant_id: 'acme', ...acme2 },
      { day: D2, tenant_id: 'globex', ...globex2 },
      { day: D3, tenant_id: 'acme', ...day3 },
    ]);
  });
});

describe('getCacheStats', () => {
  it('sums the views: totals, per day, per tenant', async () => {
    const stats = await getCacheStats(t.db);

    expect(stats.totals).toEqual({ requests: 6, reused: 4, downloaded: 2, failed: 3, cancelled: 0, hit_ratio: 4 / 6, bytes_downloaded: 800, bytes_delivered: 1900, bytes_saved: 1100 });
    expect(stats.per_day).toEqual([{ day: D1, ...day1 }, { day: D2, ...day2 }, { day: D3, ...day3 }]);
    expect(stats.per_tenant).toEqual([
      { tenant_id: 'acme', requests: 4, reused: 3, downloaded: 1, failed: 2, cancelled: 0, hit_ratio: 0.75, bytes_downloaded: 300, bytes_delivered: 1100, bytes_saved: 800 },
      { tenant_id: 'globex', requests: 2, reused: 1, downloaded: 1, failed: 1, cancelled: 0, hit_ratio: 0.5, bytes_downloaded: 500, bytes_delivered: 800, bytes_saved: 300 },
    ]);
  });

  it('filters by tenant and by days (both bounds inclusive)', async () => {
    const stats = await getCacheStats(t.db, { tenantId: 'globex', since: D2, until: D3 });
    expect(stats).toEqual({ totals: globex2, per_day: [{ day: D2, ...globex2 }], per_tenant: [{ tenant_id: 'globex', ...globex2 }] });

    const one = await getCacheStats(t.db, { since: D1, until: D1 });
    expect(one.totals).toEqual(day1);
    expect(one.per_tenant).toEqual([{ tenant_id: 'acme', ...acme1 }, { tenant_id: 'globex', ...globex1 }]);

    // All time reads the per-tenant totals, a period sums the days: the same figures over the same days.
    expect(await getCacheStats(t.db, { since: D1 })).toEqual(await getCacheStats(t.db));
    expect((await getCacheStats(t.db, { tenantId: 'acme' })).per_tenant).toEqual([
      { tenant_id: 'acme', requests: 4, reused: 3, downloaded: 1, failed: 2, cancelled: 0, hit_ratio: 0.75, bytes_downloaded: 300, bytes_delivered: 1100, bytes_saved: 800 },
    ]);
    expect(await getCacheStats(t.db, { tenantId: 'acme', until: D3 })).toEqual(await getCacheStats(t.db, { tenantId: 'acme' }));

    const none = await getCacheStats(t.db, { tenantId: 'nobody' });
    expect(none).toEqual({
      totals: { requests: 0, reused: 0, downloaded: 0, failed: 0, cancelled: 0, hit_ratio: null, bytes_downloaded: 0, bytes_delivered: 0, bytes_saved: 0 },
      per_day: [],
      per_tenant: [],
    });
  });

  it('rejects malformed or inverted days', async () => {
    await expect(getCacheStats(t.db, { since: '2026-11-2' })).rejects.toMatchObject({ code: 'invalid_payload', field: 'since' });
    await expect(getCacheStats(t.db, { since: D2, until: D1 })).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('listCachedScenes', () => {
  const A = SCENE;
  const B = 'S2A_MSIL1C_20240324T101651_N0510_R065_T32TNS_20240324T122424';
  const C = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';

  beforeAll(async () => {
    await registerBands(t.db, registration({ B04: 100, B08: 100 }, A));
    await registerBands(t.db, { ...registration({ B02: 500 }, B), level: 'L1C', tile: '32TNS', sensingDate: '2024-03-24' });
    await registerBands(t.db, { ...registration({ B03: 50, SCL: 10 }, C), tile: '32TNS', sensingDate: '2024-03-24' });
    for (let i = 0; i < 3; i++) await recordCacheHit(t.db, C);
    await recordCacheHit(t.db, A);
    await t.db.updateTable('global_scene_cache').set({ last_accessed_at: '2026-11-01T00:00:00Z' }).where('scene_id', '=', A).execute();
    await t.db.updateTable('global_scene_cache').set({ last_accessed_at: '2026-11-02T00:00:00Z' }).where('scene_id', '=', C).execute();
    await t.db.updateTable('global_scene_cache').set({ created_at: new Date('2026-10-01T00:00:00Z') }).where('scene_id', 'in', [A, C]).execute();
    await t.db.updateTable('global_scene_cache').set({ created_at: new Date('2026-11-03T00:00:00Z') }).where('scene_id', '=', B).execute();
  });

  it('orders by reuse, recency or size and filters by level and tile', async () => {
    expect((await listCachedScenes(t.db)).map((s) => s.scene_id)).toEqual([C, A, B]);
    expect((await listCachedScenes(t.db, { order: 'recent' })).map((s) => s.scene_id)).toEqual([B, C, A]);
    expect((await listCachedScenes(t.db, { order: 'size' })).map((s) => s.scene_id)).toEqual([B, A, C]);
    expect((await listCachedScenes(t.db, { tile: '32TNS', level: 'L2A' })).map((s) => s.scene_id)).toEqual([C]);
    expect(await listCachedScenes(t.db, { limit: 1 })).toEqual([
      {
        scene_id: C,
        level: 'L2A',
        tile: '32TNS',
        sensing_date: '2024-03-24',
        bands: ['B03', 'SCL'],
        total_bytes: 60,
        download_count: 3,
        last_accessed_at: new Date('2026-11-02T00:00:00Z'),
        is_valid: true,
        created_at: new Date('2026-10-01T00:00:00Z'),
      },
    ]);
  });

  it('rejects a limit out of range', async () => {
    await expect(listCachedScenes(t.db, { limit: 101 })).rejects.toMatchObject({ code: 'invalid_payload', field: 'limit' });
    await expect(listCachedScenes(t.db, { limit: 0 })).rejects.toMatchObject({ field: 'limit' });
  });
});

describe('migration 0002_dashboard_views', () => {
  it('down drops both views; up restores them', async () => {
    const url = testDatabaseUrl(uniqueTestDatabaseName());
    const views = async (): Promise<string[]> => {
      const db = createDb(url, { max: 1 });
      try {
        const { rows } = await sql<{ viewname: string }>`SELECT viewname FROM pg_views WHERE schemaname = 'public' ORDER BY viewname`.execute(db);
        return rows.map((r) => r.viewname);
      } finally {
        await db.destroy();
      }
    };
    try {
      await migrateToLatest(url);
      expect(await views()).toEqual(['cache_daily_stats', 'tenant_daily_stats']);
      // Revert down to and including 0002 (later migrations come off first), then re-apply.
      const reverted: string[] = [];
      for (let step = 0; step < 10 && !reverted.includes('0002_dashboard_views'); step++) reverted.push(...(await migrateDown(url)).reverted);
      expect(reverted.at(-1)).toBe('0002_dashboard_views');
      expect(await views()).toEqual([]);
      expect(await migrateToLatest(url)).toEqual({ applied: [...reverted].reverse() });
      expect(await views()).toEqual(['cache_daily_stats', 'tenant_daily_stats']);
    } finally {
      await dropDatabase(url);
    }
  });
});
