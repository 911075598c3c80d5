import { randomUUID } from 'node:crypto';
import { createDb, insertQueuedJob, recordCacheHit, registerBands, type CachedBand } from '@scenecache/db';
import { insertFinishedJob, type FinishedJobOutcome } from '@scenecache/testing';
import { L1C, L2A, startTestApi, type TestApi } from './helpers.js';

/** A third scene (L2A, another tile). */
const L2A_OTHER = 'S2B_MSIL2A_20241123T224759_N0511_R101_T03VUL_20241123T230829';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
  await seed();
}, 120_000);
afterAll(async () => {
  await api.close();
}, 120_000);

/** A job taken through the repositories to its end, finishing at `finishedAt` (ISO instant). */
async function finishedJob(tenantId: string, finishedAt: string, outcome: FinishedJobOutcome): Promise<void> {
  await insertFinishedJob(api.db, { tenantId, sceneId: L2A, finishedAt, outcome });
}

function band(sceneId: string, id: string, size: number): CachedBand {
  return { key: `${sceneId}/${id}.jp2`, size, sha3_256: '0'.repeat(64), etag: '"e"', safe_path: `IMG_DATA/${id}.jp2`, registered_at: '2026-11-01T00:00:00.000Z' };
}

async function cacheScene(sceneId: string, level: 'L1C' | 'L2A', tile: string, sizes: Record<string, number>, hits: number, createdAt: string): Promise<void> {
  await registerBands(api.db, {
    sceneId,
    storageBucket: 'scenecache-global',
    storagePath: `${sceneId}/`,
    sensingDate: sceneId === L2A_OTHER ? '2024-11-23' : '2024-03-24',
    level,
    tile,
    mission: sceneId.slice(0, 3),
    cdseProductId: null,
    bands: Object.fromEntries(Object.entries(sizes).map(([id, size]) => [id, band(sceneId, id, size)])),
  });
  for (let i = 0; i < hits; i++) await recordCacheHit(api.db, sceneId);
  await api.db.updateTable('global_scene_cache').set({ created_at: new Date(createdAt) }).where('scene_id', '=', sceneId).execute();
}

const D1 = '2026-11-20';
const D2 = '2026-11-21';

/**
 * Jobs — D1: acme downloaded (1000 up / 1000 copied), acme reused (1000), globex reused (1000),
 * acme failed; D2: globex reused (400), globex downloaded (600 up / 600 copied); plus a queued job.
 * Scenes — L2A (32TNS, 60 B, 3 reuses, last used D2), L1C (32TNS, 500 B, 1 reuse, last used D1),
 * L2A_OTHER (03VUL, 100 B, never reused, cached D2 noon).
 */
async function seed(): Promise<void> {
  await finishedJob('acme', `${D1}T06:00:00Z`, { cache_status: 'downloaded', bytes_downloaded: 1000, bytes_copied: 1000 });
  await finishedJob('acme', `${D1}T07:00:00Z`, { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 1000 });
  await finishedJob('globex', `${D1}T23:59:59Z`, { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 1000 });
  await finishedJob('acme', `${D1}T08:00:00Z`, 'failed');
  await finishedJob('globex', `${D2}T00:00:01Z`, { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 400 });
  await finishedJob('globex', `${D2}T09:00:00Z`, { cache_status: 'downloaded', bytes_downloaded: 600, bytes_copied: 600 });
  await insertQueuedJob(api.db, { id: randomUUID(), tenantId: 'acme', sceneId: L2A, bands: ['B04'] });

  await cacheScene(L2A, 'L2A', '32TNS', { B03: 50, SCL: 10 }, 3, '2026-10-01T00:00:00Z');
  await cacheScene(L1C, 'L1C', '32TNS', { B02: 500 }, 1, '2026-10-01T00:00:00Z');
  await cacheScene(L2A_OTHER, 'L2A', '03VUL', { B04: 100 }, 0, `${D2}T12:00:00Z`);
  await api.db.updateTable('global_scene_cache').set({ last_accessed_at: `${D2}T10:00:00Z` }).where('scene_id', '=', L2A).execute();
  await api.db.updateTable('global_scene_cache').set({ last_accessed_at: `${D1}T10:00:00Z` }).where('scene_id', '=', L1C).execute();
  await api.db.updateTable('global_scene_cache').set({ is_valid: false }).where('scene_id', '=', L1C).execute();
}

const day1 = { requests: 3, reused: 2, downloaded: 1, failed: 1, cancelled: 0, hit_ratio: 2 / 3, bytes_downloaded: 1000, bytes_delivered: 3000, bytes_saved: 2000 };
const day2 = { requests: 2, reused: 1, downloaded: 1, failed: 0, cancelled: 0, hit_ratio: 0.5, bytes_downloaded: 600, bytes_delivered: 1000, bytes_saved: 400 };
const acme = { requests: 2, reused: 1, downloaded: 1, failed: 1, cancelled: 0, hit_ratio: 0.5, bytes_downloaded: 1000, bytes_delivered: 2000, bytes_saved: 1000 };
const globexD1 = { requests: 1, reused: 1, downloaded: 0, failed: 0, cancelled: 0, hit_ratio: 1, bytes_downloaded: 0, bytes_delivered: 1000, bytes_saved: 1000 };
const globex = { requests: 3, reused: 2, downloaded: 1, failed: 0, cancelled: 0, hit_ratio: 2 / 3, bytes_downloaded: 600, bytes_delivered: 2000, bytes_saved: 1400 };

describe('GET /v1/cache/stats', () => {
  it('returns totals, per-day and per-tenant figures of every finished job', async () => {
    const res = await api.request('GET', '/v1/cache/stats');

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      totals: { requests: 5, reused: 3, downloaded: 2, failed: 1, cancelled: 0, hit_ratio: 0.6, bytes_downloaded: 1600, bytes_delivered: 4000, bytes_saved: 2400 },
      per_day: [
        { day: D1, ...day1 },
        { day: D2, ...day2 },
      ],
      per_tenant: [
        { tenant_id: 'globex', ...globex },
        { tenant_id: 'acme', ...acme },
      ],
    });
  });

  it('filters by tenant and by UTC days, both bounds inclusive', async () => {
    const globexD1Only = await api.request('GET', `/v1/cache/stats?tenant_id=globex&since=${D1}&until=${D1}`);
    expect(globexD1Only).toMatchObject({
      status: 200,
      body: { totals: globexD1, per_day: [{ day: D1, ...globexD1 }], per_tenant: [{ tenant_id: 'globex', ...globexD1 }] },
    });

    const fromD2 = await api.request('GET', `/v1/cache/stats?since=${D2}`);
    expect(fromD2.body).toEqual({
      totals: day2,
      per_day: [{ day: D2, ...day2 }],
      per_tenant: [{ tenant_id: 'globex', requests: 2, reused: 1, downloaded: 1, failed: 0, cancelled: 0, hit_ratio: 0.5, bytes_downloaded: 600, bytes_delivered: 1000, bytes_saved: 400 }],
    });

    const empty = await api.request('GET', '/v1/cache/stats?until=2026-01-01');
    expect(empty.body).toEqual({
      totals: { requests: 0, reused: 0, downloaded: 0, failed: 0, cancelled: 0, hit_ratio: null, bytes_downloaded: 0, bytes_delivered: 0, bytes_saved: 0 },
      per_day: [],
      per_tenant: [],
    });
  });

  it('matches the SQL views Grafana reads', async () => {
    const res = await api.request('GET', '/v1/cache/stats');
    const rows = await api.db.selectFrom('cache_daily_stats').select(['day', 'requests', 'hit_ratio', 'bytes_saved']).orderBy('day').execute();

    expect(rows).toEqual((res.body.per_day as { day: string; requests: number; hit_ratio: number; bytes_saved: number }[]).map(({ day, requests, hit_ratio, bytes_saved }) => ({ day, requests, hit_ratio, bytes_saved })));
  });

  it.each([
    ['since=2026-11-2', 'since'],
    ['since=2026-02-30', 'since'],
    ['until=yesterday', 'until'],
    [`since=${D2}&until=${D1}`, 'since'],
    ['tenant_id=Not_A_Tenant', 'tenant_id'],
    ['tenant=acme', 'tenant'],
  ])('answers 400 invalid_payload for %s', async (query, field) => {
    const res = await api.request('GET', `/v1/cache/stats?${query}`);

    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_payload', message: expect.any(String) as string, field } });
  });
});

describe('GET /v1/cache/scenes', () => {
  const ids = (body: Record<string, unknown>) => (body.items as { scene_id: string }[]).map((s) => s.scene_id);

  it('lists the most reused scenes by default, with their details', async () => {
    const res = await api.request('GET', '/v1/cache/scenes');

    expect(res.status).toBe(200);
    expect(ids(res.body)).toEqual([L2A, L1C, L2A_OTHER]);
    expect((res.body.items as unknown[])[0]).toEqual({
      scene_id: L2A,
      level: 'L2A',
      tile: '32TNS',
      sensing_date: '2024-03-24',
      bands: ['B03', 'SCL'],
      total_bytes: 60,
      download_count: 3,
      last_accessed_at: `${D2}T10:00:00.000Z`,
      is_valid: true,
      created_at: '2026-10-01T00:00:00.000Z',
    });
    expect((res.body.items as unknown[])[1]).toMatchObject({ scene_id: L1C, level: 'L1C', download_count: 1, is_valid: false, total_bytes: 500 });
    expect((res.body.items as unknown[])[2]).toMatchObject({ scene_id: L2A_OTHER, download_count: 0, last_accessed_at: null });
  });

  it('orders by recent use or by size, limits, and filters by level and tile', async () => {
    expect(ids((await api.request('GET', '/v1/cache/scenes?order=recent')).body)).toEqual([L2A_OTHER, L2A, L1C]);
    expect(ids((await api.request('GET', '/v1/cache/scenes?order=size')).body)).toEqual([L1C, L2A_OTHER, L2A]);
    expect(ids((await api.request('GET', '/v1/cache/scenes?order=size&limit=1')).body)).toEqual([L1C]);
    expect(ids((await api.request('GET', '/v1/cache/scenes?level=L2A')).body)).toEqual([L2A, L2A_OTHER]);
    expect(ids((await api.request('GET', '/v1/cache/scenes?tile=32TNS&level=L2A')).body)).toEqual([L2A]);
    expect(ids((await api.request('GET', '/v1/cache/scenes?tile=T03VUL')).body)).toEqual([L2A_OTHER]);
    expect(ids((await api.request('GET', '/v1/cache/scenes?tile=31UFU')).body)).toEqual([]);
    expect((await api.request('GET', '/v1/cache/scenes?limit=100')).status).toBe(200);
  });

  it.each([
    ['order=popular', 'order'],
    ['limit=101', 'limit'],
    ['limit=0', 'limit'],
    ['limit=ten', 'limit'],
    ['level=L3', 'level'],
    ['tile=32tns', 'tile'],
    ['sort=size', 'sort'],
  ])('answers 400 invalid_payload for %s', async (query, field) => {
    const res = await api.request('GET', `/v1/cache/scenes?${query}`);

    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_payload', message: expect.any(String) as string, field } });
  });
});

describe('with Postgres unreachable', () => {
  let down: TestApi;

  beforeAll(async () => {
    // Nothing listens on port 1: every connection is refused.
    down = await startTestApi({ db: createDb('postgres://root@127.0.0.1:1/scenecache', { max: 2, connectionTimeoutMillis: 1_000 }) });
  }, 120_000);
  afterAll(async () => {
    await down.close();
  }, 120_000);

  it('GET /v1/cache/stats and /v1/cache/scenes: 503 service_unavailable', async () => {
    for (const path of ['/v1/cache/stats', '/v1/cache/scenes?order=size']) {
      const res = await down.request('GET', path);
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { code: 'service_unavailable', message: expect.stringContaining('Postgres') as string } });
    }
  });
});
