/**
 * `/v1/admin/cache/*` on real Postgres and S3 (s3rver): auth, validation, invalidation by id and by
 * pattern (whole rows and single bands, dry runs), cleanup by age (rows backdated with SQL, objects
 * really deleted from the bucket, a scene whose lock is held skipped), and the entries listing.
 */
import { Readable } from 'node:stream';
import { sql, type Kysely } from 'kysely';
import { parseProductName, sceneStoragePath } from '@scenecache/core';
import { createApiKey, findScene, parseScenePattern, registerBands, removeBandEntries, type CachedBand, type DB, type SceneCacheRow } from '@scenecache/db';
import { startTestS3, type TestS3 } from '@scenecache/testing';
import { L1C, L2A, startTestApi, type TestApi, type TestReply } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-admin-routes-0123';

/** Two more L2A scenes: one on tile 32TNS (as L2A and L1C), one elsewhere. */
const L2A_TNS_2 = 'S2A_MSIL2A_20240329T101701_N0510_R065_T32TNS_20240329T142009';
const L2A_VUL = 'S2B_MSIL2A_20241123T224759_N0511_R101_T03VUL_20241123T230829';
/**
 * Not a product name: `S2B_MSIL2A_…` with the first `_` replaced by `9`. A pattern's `_` is literal,
 * so `S2B_MSIL2A_*` must not match it (it would if `_` reached LIKE unescaped).
 */
const DECOY = 'S2B9MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';

const ALL_SCENES = [DECOY, L1C, L2A, L2A_TNS_2, L2A_VUL].sort();

let api: TestApi;
let s3: TestS3;
let bucket: string;
let tenantKey: string;

const admin = { authorization: `Bearer ${ADMIN_API_KEY}` };

function post(path: string, json: unknown, headers: Record<string, string> = admin): Promise<TestReply> {
  return api.request('POST', path, { json, headers });
}

function get(path: string, headers: Record<string, string> = admin): Promise<TestReply> {
  return api.request('GET', path, { headers });
}

function storagePath(sceneId: string): string {
  return sceneId === DECOY ? `decoy/${sceneId}` : sceneStoragePath(parseProductName(sceneId));
}

/**
 * Cache `bands` (band → size in bytes) of a scene: objects uploaded to the bucket, row registered
 * (in `options.db`, default the API's; entries carry `options.jobId`, default `seed`).
 */
async function cache(sceneId: string, bands: Record<string, number>, options: { db?: Kysely<DB>; jobId?: string } = {}): Promise<SceneCacheRow> {
  const path = storagePath(sceneId);
  const entries: Record<string, CachedBand> = {};
  for (const [band, size] of Object.entries(bands)) {
    const key = `${path}/${band}.jp2`;
    const { etag } = await s3.store.uploadStream({ bucket, key, body: Readable.from([Buffer.alloc(size, band)]), contentLength: size });
    entries[band] = { key, size, sha3_256: 'ab'.repeat(32), etag, safe_path: `GRANULE/G/IMG_DATA/${band}.jp2`, registered_at: new Date().toISOString(), job_id: options.jobId ?? 'seed' };
  }
  const product = sceneId === DECOY ? { level: 'L2A' as const, tile: '32TNS', mission: 'S2B', sensingDate: '2024-03-24' } : parseProductName(sceneId);
  return registerBands(options.db ?? api.db, {
    sceneId,
    storageBucket: bucket,
    storagePath: path,
    sensingDate: product.sensingDate,
    level: product.level,
    tile: product.tile,
    mission: product.mission,
    cdseProductId: null,
    bands: entries,
  });
}

/** Every row, by scene id. */
async function rows(): Promise<Record<string, SceneCacheRow>> {
  const all = await api.db.selectFrom('global_scene_cache').selectAll().orderBy('scene_id').execute();
  return Object.fromEntries(all.map((r) => [r.scene_id, r]));
}

async function keysOf(sceneId: string): Promise<string[]> {
  return (await s3.store.listKeys(bucket, `${storagePath(sceneId)}/`)).sort();
}

/** The seed's mark-invalid, then `updated_at` moved `days` back (the trigger stamps now() on the flip). */
async function invalidatedDaysAgo(sceneId: string, days: number): Promise<void> {
  await sql`UPDATE global_scene_cache SET is_valid = false WHERE scene_id = ${sceneId}`.execute(api.db);
  await sql`UPDATE global_scene_cache SET updated_at = now() - make_interval(days => ${days}) WHERE scene_id = ${sceneId}`.execute(api.db);
}

/**
 * The standard cache: L2A {B03 50, B04 100, SCL 10}, L1C {B04 70, B10 5}, L2A_TNS_2 {B04 30},
 * L2A_VUL {B02 20, B04 40}, DECOY {B04 60}. All valid.
 */
async function seed(): Promise<void> {
  await api.db.deleteFrom('global_scene_cache').execute();
  for (const key of await s3.store.listKeys(bucket)) await s3.store.deleteObject(bucket, key);
  await cache(L2A, { B03: 50, B04: 100, SCL: 10 });
  await cache(L1C, { B04: 70, B10: 5 });
  await cache(L2A_TNS_2, { B04: 30 });
  await cache(L2A_VUL, { B02: 20, B04: 40 });
  await cache(DECOY, { B04: 60 });
}

beforeAll(async () => {
  s3 = await startTestS3();
  bucket = s3.uniqueBucket('admin-global');
  await s3.store.ensureBucket(bucket);
  api = await startTestApi({ env: { ADMIN_API_KEY }, store: s3.store });
  tenantKey = (await createApiKey(api.db, { tenantId: 'acme' })).secret;
});
afterAll(async () => {
  await api?.close();
  await s3?.close();
});
beforeEach(async () => {
  await seed();
});

describe('auth', () => {
  const routes: Array<[string, string, unknown]> = [
    ['POST', '/v1/admin/cache/invalidate', { scene_id: L2A }],
    ['POST', '/v1/admin/cache/cleanup', { older_than_days: 0 }],
    ['GET', '/v1/admin/cache/entries', undefined],
  ];

  it.each(routes)('%s %s: 401 without a key, 403 for a tenant key (even with a bad body), 200 for the admin key', async (method, path, json) => {
    const none = await api.request(method, path, { json });
    expect(none).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    const tenant = await api.request(method, path, { json, headers: { authorization: `Bearer ${tenantKey}` } });
    expect(tenant).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    if (method === 'POST') {
      const badBody = await api.request(method, path, { json: { nonsense: true }, headers: { authorization: `Bearer ${tenantKey}` } });
      expect(badBody.status).toBe(403);
    }
    // Nothing was invalidated or deleted by the refused requests.
    expect(Object.values(await rows()).every((r) => r.is_valid)).toBe(true);
    expect((await api.request(method, path, { json, headers: admin })).status).toBe(200);
  });
});

describe('validation', () => {
  it.each([
    ['neither scene_id nor pattern', {}, 'invalid_payload', 'scene_id'],
    ['both scene_id and pattern', { scene_id: L2A, pattern: 'S2B*' }, 'invalid_payload', 'scene_id'],
    ['an unknown field', { scene_id: L2A, band: ['B04'] }, 'invalid_payload', 'band'],
    ['not a product name', { scene_id: 'S2B_MSIL2A_garbage' }, 'invalid_product_name', 'scene_id'],
    ['an empty pattern', { pattern: '' }, 'invalid_payload', 'pattern'],
    ['a SQL wildcard in a pattern', { pattern: 'S2B%' }, 'invalid_payload', 'pattern'],
    ['a bare * without all', { pattern: '*' }, 'invalid_payload', 'pattern'],
    ['wildcards only without all', { pattern: '*?*', dry_run: true }, 'invalid_payload', 'pattern'],
    ['all with a scene id', { scene_id: L2A, all: true }, 'invalid_payload', 'all'],
    ['an unknown band', { scene_id: L2A, bands: ['B04', 'B99'] }, 'unknown_band', 'bands[1]'],
    ['a band the level lacks', { scene_id: L1C, bands: ['SCL'] }, 'band_not_in_level', 'bands[0]'],
    ['an unknown band with a pattern', { pattern: 'S2*', bands: ['X1'] }, 'unknown_band', 'bands[0]'],
    ['empty bands', { scene_id: L2A, bands: [] }, 'invalid_payload', 'bands'],
    ['dry_run not a boolean', { scene_id: L2A, dry_run: 'yes' }, 'invalid_payload', 'dry_run'],
  ])('invalidate: 400 for %s', async (_what, body, code, field) => {
    const res = await post('/v1/admin/cache/invalidate', body);
    expect(res).toMatchObject({ status: 400, body: { error: { code, field } } });
    expect(Object.values(await rows()).every((r) => r.is_valid)).toBe(true);
  });

  it('says how to confirm a pattern that matches everything', async () => {
    const res = await post('/v1/admin/cache/invalidate', { pattern: '*' });
    expect((res.body.error as { message: string }).message).toMatch(/"all": true/);
  });

  it.each([
    ['missing older_than_days', {}, 'older_than_days'],
    ['negative days', { older_than_days: -1 }, 'older_than_days'],
    ['fractional days', { older_than_days: 1.5 }, 'older_than_days'],
    ['days as a string', { older_than_days: '30' }, 'older_than_days'],
    ['limit 0', { older_than_days: 1, limit: 0 }, 'limit'],
    ['limit over the maximum', { older_than_days: 1, limit: 1001 }, 'limit'],
  ])('cleanup: 400 for %s', async (_what, body, field) => {
    expect(await post('/v1/admin/cache/cleanup', body)).toMatchObject({ status: 400, body: { error: { code: 'invalid_payload', field } } });
  });

  it.each([
    ['valid=maybe', 'valid'],
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['cursor=not-a-cursor', 'cursor'],
    [`cursor=${Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000000Z', 'x'])).toString('base64url')}`, 'cursor'],
    ['scene_id_prefix=S2B%25', 'scene_id_prefix'],
    ['pattern=S2B%25', 'pattern'],
    ['order=size', 'order'],
  ])('entries: 400 for %s', async (query, field) => {
    expect(await get(`/v1/admin/cache/entries?${query}`)).toMatchObject({ status: 400, body: { error: { code: 'invalid_payload', field } } });
  });
});

describe('POST /v1/admin/cache/invalidate', () => {
  it('marks one scene invalid (with or without .SAFE); other scenes and all objects untouched; idempotent', async () => {
    const before = await rows();
    const res = await post('/v1/admin/cache/invalidate', { scene_id: `${L2A}.SAFE` });

    expect(res).toMatchObject({ status: 200, body: { dry_run: false, invalidated: 1, bytes: 160, scenes: [L2A], scenes_truncated: false } });
    expect(res.body).not.toHaveProperty('bands');
    const after = await rows();
    expect(after[L2A]).toMatchObject({ is_valid: false, bands: before[L2A]!.bands, total_bytes: 160 });
    expect(after[L2A]!.updated_at.getTime()).toBeGreaterThan(before[L2A]!.updated_at.getTime());
    for (const other of ALL_SCENES.filter((s) => s !== L2A)) expect(after[other]).toEqual(before[other]);
    // Objects stay: the next job for the scene deletes them when it resets the product (the worker does not trust them).
    expect(await keysOf(L2A)).toEqual([`${storagePath(L2A)}/B03.jp2`, `${storagePath(L2A)}/B04.jp2`, `${storagePath(L2A)}/SCL.jp2`]);

    const again = await post('/v1/admin/cache/invalidate', { scene_id: L2A });
    expect(again).toMatchObject({ status: 200, body: { invalidated: 0, bytes: 0, scenes: [] } });
    expect((await rows())[L2A]!.updated_at).toEqual(after[L2A]!.updated_at);
  });

  it('a scene that is not cached: 200 with nothing invalidated', async () => {
    const uncached = 'S2A_MSIL1C_20170413T104021_N0204_R008_T31SCA_20170413T104021';
    expect(await post('/v1/admin/cache/invalidate', { scene_id: uncached })).toMatchObject({ status: 200, body: { invalidated: 0, scenes: [] } });
  });

  it('dry_run reports what would be invalidated and changes nothing', async () => {
    const before = await rows();
    const res = await post('/v1/admin/cache/invalidate', { pattern: '*_T32TNS_*', dry_run: true });
    expect(res).toMatchObject({ status: 200, body: { dry_run: true, invalidated: 4, bytes: 160 + 75 + 30 + 60, scenes: ALL_SCENES.filter((id) => id !== L2A_VUL) } });
    const bandsDry = await post('/v1/admin/cache/invalidate', { scene_id: L2A, bands: ['B04'], dry_run: true });
    expect(bandsDry).toMatchObject({ status: 200, body: { dry_run: true, invalidated: 1, bytes: 100, bands: ['B04'], scenes: [L2A] } });
    expect(await rows()).toEqual(before);
    expect(await keysOf(L2A)).toHaveLength(3);
  });

  it('by pattern: * and ? are wildcards, _ is literal, the whole name must match, case-insensitive, .SAFE ignored', async () => {
    const before = await rows();
    const res = await post('/v1/admin/cache/invalidate', { pattern: 's2?_msil2a_2024*.SAFE' });
    expect(res).toMatchObject({ status: 200, body: { invalidated: 3, scenes: [L2A_TNS_2, L2A, L2A_VUL].sort() } });
    const after = await rows();
    for (const scene of [L2A, L2A_TNS_2, L2A_VUL]) expect(after[scene]?.is_valid).toBe(false);
    // The decoy differs only where the pattern has a literal `_`; L1C is another level.
    expect(after[DECOY]).toEqual(before[DECOY]);
    expect(after[L1C]).toEqual(before[L1C]);

    // Anchored: a pattern without a trailing * does not match longer names.
    expect((await post('/v1/admin/cache/invalidate', { pattern: 'S2A_MSIL1C_20240324T101651' })).body).toMatchObject({ invalidated: 0 });
    expect((await rows())[L1C]?.is_valid).toBe(true);
  });

  it('a pattern matching everything needs all: true', async () => {
    const res = await post('/v1/admin/cache/invalidate', { pattern: '*', all: true });
    expect(res).toMatchObject({ status: 200, body: { invalidated: 5, scenes: ALL_SCENES } });
    expect(Object.values(await rows()).every((r) => !r.is_valid)).toBe(true);
  });

  it('bands of one scene: their objects deleted, entries dropped, the row stays valid with the rest', async () => {
    const before = await rows();
    const res = await post('/v1/admin/cache/invalidate', { scene_id: L2A, bands: ['B04_10m', 'SCL', 'B02'] });

    // B04_10m is B04 (its native resolution); B02 is not cached: not counted.
    expect(res).toMatchObject({ status: 200, body: { invalidated: 1, bytes: 110, bands: ['B02', 'B04', 'SCL'], scenes: [L2A] } });
    const after = await rows();
    expect(after[L2A]).toMatchObject({ is_valid: true, total_bytes: 50, bands: { B03: before[L2A]!.bands.B03 } });
    expect(Object.keys(after[L2A]!.bands)).toEqual(['B03']);
    expect(await keysOf(L2A)).toEqual([`${storagePath(L2A)}/B03.jp2`]);
    for (const other of ALL_SCENES.filter((s) => s !== L2A)) {
      expect(after[other]).toEqual(before[other]);
      expect(await keysOf(other)).toHaveLength(Object.keys(before[other]!.bands).length);
    }
    // Repeating it finds nothing left to invalidate.
    expect((await post('/v1/admin/cache/invalidate', { scene_id: L2A, bands: ['B04', 'SCL'] })).body).toMatchObject({ invalidated: 0, bytes: 0, scenes: [] });
  });

  it('bands by pattern: only matching valid rows holding the band; invalid rows are left alone', async () => {
    await invalidatedDaysAgo(L2A_TNS_2, 0);
    const before = await rows();
    const res = await post('/v1/admin/cache/invalidate', { pattern: 'S2B_MSIL2A_*', bands: ['B02'] });
    // L2A has no B02, L2A_TNS_2 is S2A, the decoy does not match: only L2A_VUL.
    expect(res).toMatchObject({ status: 200, body: { invalidated: 1, bytes: 20, bands: ['B02'], scenes: [L2A_VUL] } });
    const after = await rows();
    expect(Object.keys(after[L2A_VUL]!.bands)).toEqual(['B04']);
    expect(after[L2A_VUL]!.total_bytes).toBe(40);
    expect(await keysOf(L2A_VUL)).toEqual([`${storagePath(L2A_VUL)}/B04.jp2`]);

    // B04 of every L2A scene of 2024: the invalid row keeps its (untrusted) band and objects.
    const b04 = await post('/v1/admin/cache/invalidate', { pattern: 'S2?_MSIL2A_2024*', bands: ['B04'] });
    expect(b04.body).toMatchObject({ invalidated: 2, bytes: 140, scenes: [L2A, L2A_VUL] });
    const last = await rows();
    expect(last[L2A_TNS_2]).toEqual(before[L2A_TNS_2]);
    expect(await keysOf(L2A_TNS_2)).toHaveLength(1);
    expect(last[DECOY]).toEqual(before[DECOY]);
    expect(last[L1C]).toEqual(before[L1C]);
  });

  it('drops an entry only while it is the one that was read: a band re-registered meanwhile is kept', async () => {
    // The API deletes the objects, then drops the entries it read; a job that registered fresh
    // bytes for the band in between must keep its entry.
    const read = (await findScene(api.db, L2A))!.bands.B04!;
    const fresh = (await cache(L2A, { B04: 100 }, { jobId: 'fresh-download' })).bands.B04!;
    expect(fresh).not.toEqual(read);
    expect(await removeBandEntries(api.db, L2A, { B04: read, SCL: (await findScene(api.db, L2A))!.bands.SCL! })).toEqual(['SCL']);
    expect((await findScene(api.db, L2A))!.bands.B04).toEqual(fresh);
    expect(await removeBandEntries(api.db, L2A, { B04: fresh })).toEqual(['B04']);
    expect(await findScene(api.db, L2A)).toMatchObject({ is_valid: true, total_bytes: 50 });
    expect(await removeBandEntries(api.db, 'no-such-scene', { B04: fresh })).toEqual([]);
  });

  it('band invalidation without an object store answers 503 and changes nothing; whole scenes still work', async () => {
    const bare = await startTestApi({ env: { ADMIN_API_KEY } });
    try {
      await cache(L2A, { B03: 50, B04: 100, SCL: 10 }, { db: bare.db });
      const res = await bare.request('POST', '/v1/admin/cache/invalidate', { json: { scene_id: L2A, bands: ['B04'] }, headers: admin });
      expect(res).toMatchObject({ status: 503, body: { error: { code: 'service_unavailable' } } });
      expect(Object.keys((await findScene(bare.db, L2A))!.bands).sort()).toEqual(['B03', 'B04', 'SCL']);
      expect(await keysOf(L2A)).toHaveLength(3);
      const cleanup = await bare.request('POST', '/v1/admin/cache/cleanup', { json: { older_than_days: 0 }, headers: admin });
      expect(cleanup.status).toBe(503);
      const whole = await bare.request('POST', '/v1/admin/cache/invalidate', { json: { scene_id: L2A }, headers: admin });
      expect(whole).toMatchObject({ status: 200, body: { invalidated: 1 } });
    } finally {
      await bare.close();
    }
  });
});

describe('POST /v1/admin/cache/cleanup', () => {
  it('deletes invalid rows older than N days and every object under their prefix; valid and recent rows stay', async () => {
    await invalidatedDaysAgo(L2A, 10);
    await invalidatedDaysAgo(L1C, 3);
    await api.db.updateTable('global_scene_cache').set({ updated_at: sql`now() - interval '40 days'` }).where('scene_id', '=', L2A_VUL).execute();
    // A leftover nothing describes (e.g. a truncated band the worker dropped from the row).
    const orphan = `${storagePath(L2A)}/B8A_20m.jp2`;
    await s3.store.uploadStream({ bucket, key: orphan, body: Readable.from([Buffer.alloc(7)]), contentLength: 7 });
    const before = await rows();

    const dry = await post('/v1/admin/cache/cleanup', { older_than_days: 5, dry_run: true });
    expect(dry).toMatchObject({ status: 200, body: { dry_run: true, deleted: 1, bytes_freed: 160, objects_deleted: 3, scenes: [L2A], skipped: [], more: false } });
    expect(await rows()).toEqual(before);
    expect(await keysOf(L2A)).toHaveLength(4);

    const res = await post('/v1/admin/cache/cleanup', { older_than_days: 5 });
    expect(res).toMatchObject({ status: 200, body: { dry_run: false, deleted: 1, bytes_freed: 167, objects_deleted: 4, scenes: [L2A], scenes_truncated: false, skipped: [], more: false } });
    const after = await rows();
    expect(after[L2A]).toBeUndefined();
    expect(await keysOf(L2A)).toEqual([]);
    for (const other of ALL_SCENES.filter((s) => s !== L2A)) {
      expect(after[other]).toEqual(before[other]);
      expect(await keysOf(other)).toHaveLength(Object.keys(before[other]!.bands).length);
    }

    // 0 days: every invalid row, whatever its age.
    const all = await post('/v1/admin/cache/cleanup', { older_than_days: 0 });
    expect(all.body).toMatchObject({ deleted: 1, bytes_freed: 75, objects_deleted: 2, scenes: [L1C] });
    expect((await rows())[L2A_VUL]).toBeDefined();
    expect((await post('/v1/admin/cache/cleanup', { older_than_days: 0 })).body).toMatchObject({ deleted: 0, scenes: [], more: false });
  });

  it('oldest first, at most limit per request, more: true while others remain', async () => {
    await invalidatedDaysAgo(L2A, 10);
    await invalidatedDaysAgo(L2A_VUL, 20);
    await invalidatedDaysAgo(L1C, 15);
    const first = await post('/v1/admin/cache/cleanup', { older_than_days: 1, limit: 2 });
    expect(first.body).toMatchObject({ deleted: 2, scenes: [L2A_VUL, L1C], more: true });
    const second = await post('/v1/admin/cache/cleanup', { older_than_days: 1, limit: 2 });
    expect(second.body).toMatchObject({ deleted: 1, scenes: [L2A], more: false });
    expect(Object.keys(await rows()).sort()).toEqual([DECOY, L2A_TNS_2].sort());
  });

  it('skips a scene whose advisory lock a downloader holds, and cleans it once released', async () => {
    await invalidatedDaysAgo(L2A, 10);
    await invalidatedDaysAgo(L1C, 10);
    await api.db.connection().execute(async (conn) => {
      // The worker's session-level scene lock (advisory-lock.ts), held on a connection of our own.
      await sql`SELECT pg_advisory_lock(hashtextextended(${`scene:${L2A}`}, 0))`.execute(conn);
      try {
        const res = await post('/v1/admin/cache/cleanup', { older_than_days: 1 });
        expect(res.body).toMatchObject({ deleted: 1, scenes: [L1C], skipped: [L2A] });
        expect((await rows())[L2A]?.is_valid).toBe(false);
        expect(await keysOf(L2A)).toHaveLength(3);
      } finally {
        await sql`SELECT pg_advisory_unlock(hashtextextended(${`scene:${L2A}`}, 0))`.execute(conn);
      }
    });
    const res = await post('/v1/admin/cache/cleanup', { older_than_days: 1 });
    expect(res.body).toMatchObject({ deleted: 1, scenes: [L2A], skipped: [] });
    expect(await keysOf(L2A)).toEqual([]);
  });
});

describe('GET /v1/admin/cache/entries', () => {
  interface Entry {
    scene_id: string;
    is_valid: boolean;
    bands: Record<string, { key: string; size: number }>;
    total_bytes: number;
    level: string;
    updated_at: string;
  }

  async function allPages(query: string, limit: number): Promise<Entry[][]> {
    const pages: Entry[][] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`/v1/admin/cache/entries?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      pages.push(res.body.items as Entry[]);
      cursor = res.body.next_cursor as string | null;
    } while (cursor !== null && pages.length < 20);
    return pages;
  }

  it('lists every row by scene id with band sizes, page by page', async () => {
    const pages = await allPages('', 2);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat().map((e) => e.scene_id)).toEqual(ALL_SCENES);
    const l2a = pages.flat().find((e) => e.scene_id === L2A)!;
    expect(l2a).toMatchObject({
      is_valid: true,
      level: 'L2A',
      tile: '32TNS',
      mission: 'S2B',
      sensing_date: '2024-03-24',
      total_bytes: 160,
      download_count: 0,
      last_accessed_at: null,
      storage_bucket: bucket,
      storage_path: storagePath(L2A),
      bands: { B03: { key: `${storagePath(L2A)}/B03.jp2`, size: 50 }, B04: { size: 100 }, SCL: { size: 10 } },
    });
    expect(Date.parse(l2a.updated_at)).not.toBeNaN();

    // A row added between pages behind the cursor does not shift the next page.
    const first = await get('/v1/admin/cache/entries?limit=2');
    await cache('S2A_MSIL1C_20170413T104021_N0204_R008_T31SCA_20170413T104021', { B01: 1 });
    const second = await get(`/v1/admin/cache/entries?limit=2&cursor=${first.body.next_cursor as string}`);
    expect((second.body.items as Entry[]).map((e) => e.scene_id)).toEqual(ALL_SCENES.slice(2, 4));
  });

  it('filters by validity, prefix and pattern', async () => {
    await invalidatedDaysAgo(L2A_VUL, 2);
    const invalid = await get('/v1/admin/cache/entries?valid=false');
    expect((invalid.body.items as Entry[]).map((e) => e.scene_id)).toEqual([L2A_VUL]);
    expect(invalid.body.next_cursor).toBeNull();
    const valid = await get('/v1/admin/cache/entries?valid=true');
    expect((valid.body.items as Entry[]).map((e) => e.scene_id)).toEqual(ALL_SCENES.filter((s) => s !== L2A_VUL));

    const prefix = await get('/v1/admin/cache/entries?scene_id_prefix=s2b_msil2a');
    expect((prefix.body.items as Entry[]).map((e) => e.scene_id)).toEqual([L2A, L2A_VUL]);
    const pattern = await get(`/v1/admin/cache/entries?pattern=${encodeURIComponent('*_T32TNS_*')}&valid=true`);
    expect((pattern.body.items as Entry[]).map((e) => e.scene_id)).toEqual(ALL_SCENES.filter((id) => id !== L2A_VUL));
    // A bare * lists everything: listing needs no confirmation.
    const star = await allPages('&pattern=*', 3);
    expect(star.flat()).toHaveLength(5);
  });
});

describe('parseScenePattern', () => {
  it('translates a glob to an escaped, anchored LIKE pattern', () => {
    expect(parseScenePattern('s2b_msil2a_2024*_T32TNS_?????????????.SAFE')).toEqual({
      glob: 'S2B_MSIL2A_2024*_T32TNS_?????????????',
      like: 'S2B\\_MSIL2A\\_2024%\\_T32TNS\\______________',
      matchesEveryScene: false,
    });
    expect(parseScenePattern('**').matchesEveryScene).toBe(true);
    expect(() => parseScenePattern('S2B\\')).toThrow(/not a scene name pattern/);
    expect(() => parseScenePattern('.SAFE')).toThrow(/must not be empty/);
  });
});
