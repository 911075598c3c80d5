/**
 * Issue 15 — `GET /v1/cache/usage` and `POST /v1/admin/cache/maintenance` on real Postgres, Redis
 * and S3 (s3rver): the usage against the budget, a dry run that changes nothing and reports exactly
 * what the run then does (invalid entries past retention, expiry, eviction invalid-first then least
 * recently used, to 90 % of the budget), the objects really deleted from the global bucket (keys
 * outside `sentinel-2/` and tenant buckets untouched), the API's maintenance counters and the
 * global cache gauges, one run at a time (409 `maintenance_running` while another run holds the
 * lock; a dry run never conflicts), 503 without S3, auth and bad input; a run in progress stops
 * between batches when the API closes and answers what it did (`aborted: true`).
 */
import { Readable } from 'node:stream';
import pg from 'pg';
import { sql } from 'kysely';
import { CACHE_MAINTENANCE_COUNTERS } from '@scenecache/core';
import { createApiKey } from '@scenecache/db';
import { CACHE_MAINTENANCE_LOCK_NAME } from '@scenecache/global-cache';
import { metricValue, parseMetricSamples, seedCachedProduct, startTestS3, testProductName, until, type MetricSample, type TestS3 } from '@scenecache/testing';
import { startTestApi, type TestApi, type TestReply } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-cache-lifecycle-0123';
const admin = { authorization: `Bearer ${ADMIN_API_KEY}` };
/** Every seeded product: 2 band objects of 100 bytes. */
const PRODUCT_BYTES = 200;
const BUDGET = 700;

let s3: TestS3;
let bucket: string;
let tenantBucket: string;
let api: TestApi;
let tenantKey: string;

/** P0 invalid 40 days ago, P1 unused 90 days, P2 invalid yesterday, P3…P6 last used 10, 5, 1, 0 days ago. */
const P = [0, 1, 2, 3, 4, 5, 6].map((i) => testProductName(i));
/** Band object keys of each seeded product. */
const keysOf: Record<string, string[]> = {};
/** An object of the global bucket outside `sentinel-2/`: never touched by the maintenance. */
const OTHER_KEY = 'notes/readme.txt';

async function seed(): Promise<void> {
  await api.db.deleteFrom('global_scene_cache').execute();
  for (const key of await s3.store.listKeys(bucket)) await s3.store.deleteObject(bucket, key);
  const plan = [{ invalidDaysAgo: 40 }, { lastUsedDaysAgo: 90 }, { invalidDaysAgo: 1 }, { lastUsedDaysAgo: 10 }, { lastUsedDaysAgo: 5 }, { lastUsedDaysAgo: 1 }, { lastUsedDaysAgo: 0 }];
  for (const [i, dates] of plan.entries()) {
    const bands = await seedCachedProduct({ db: api.db, client: s3.client, bucket, sceneId: P[i]!, bands: 2, bodyBytes: 100, ...dates });
    keysOf[P[i]!] = Object.values(bands).map((b) => b.key);
  }
  await s3.store.uploadStream({ bucket, key: OTHER_KEY, body: Readable.from([Buffer.from('not a band')]), contentLength: 10 });
}

/** A product's last use as the table computes it (ISO 8601). */
async function lastUseOf(sceneId: string): Promise<string> {
  const row = await sql<{ at: Date }>`SELECT GREATEST(created_at, updated_at, last_accessed_at) AS at FROM global_scene_cache WHERE scene_id = ${sceneId}`.execute(api.db);
  return row.rows[0]!.at.toISOString();
}

async function sceneIds(): Promise<string[]> {
  return (await api.db.selectFrom('global_scene_cache').select('scene_id').orderBy('scene_id').execute()).map((r) => r.scene_id);
}

async function scrape(target: TestApi = api): Promise<MetricSample[]> {
  const res = await fetch(`${target.baseUrl}/metrics`);
  expect(res.status).toBe(200);
  return parseMetricSamples(await res.text());
}

function post(path: string, json: unknown, headers: Record<string, string> = admin): Promise<TestReply> {
  return api.request('POST', path, { json, headers });
}

beforeAll(async () => {
  s3 = await startTestS3();
  bucket = s3.uniqueBucket('api-lifecycle-global');
  tenantBucket = s3.uniqueBucket('api-lifecycle-tenant');
  await s3.store.ensureBucket(bucket);
  await s3.store.ensureBucket(tenantBucket);
  api = await startTestApi({
    env: { ADMIN_API_KEY, GLOBAL_BUCKET: bucket, GLOBAL_CACHE_MAX_BYTES: String(BUDGET), CACHE_UNUSED_TTL_DAYS: '60', CACHE_INVALID_RETENTION_DAYS: '30' },
    store: s3.store,
  });
  tenantKey = (await createApiKey(api.db, { tenantId: 'acme' })).secret;
}, 60_000);
afterAll(async () => {
  await api?.close();
  await s3?.close();
});
beforeEach(async () => {
  await seed();
});

describe('GET /v1/cache/usage', () => {
  it('reports what the table registers against the budget, and the life-cycle settings', async () => {
    const reply = await api.request('GET', '/v1/cache/usage', { headers: admin });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      bytes: 7 * PRODUCT_BYTES,
      objects: 14,
      products: 7,
      invalid_products: 2,
      invalid_bytes: 2 * PRODUCT_BYTES,
      // The least recently used valid product: P1 (90 days); invalid rows do not count.
      oldest_access_at: await lastUseOf(P[1]!),
      budget_bytes: BUDGET,
      used_ratio: 1400 / 700,
      bytes_over_budget: 700,
      eviction_target_bytes: 630,
      unused_ttl_days: 60,
      invalid_retention_days: 30,
      maintenance_interval_ms: 300_000,
    });
  });

  it('is read at scrape time into scenecache_global_cache_bytes, next to the budget gauge', async () => {
    const samples = await scrape();
    expect(metricValue(samples, 'scenecache_global_cache_bytes')).toBe(1400);
    expect(metricValue(samples, 'scenecache_global_cache_budget_bytes')).toBe(BUDGET);
    await api.db.deleteFrom('global_scene_cache').where('scene_id', '=', P[6]!).execute();
    expect(metricValue(await scrape(), 'scenecache_global_cache_bytes')).toBe(1200);
  });

  it('admin keys only: 401 without a key, 403 for a tenant key; an unknown query parameter is 400', async () => {
    expect(await api.request('GET', '/v1/cache/usage')).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    expect(await api.request('GET', '/v1/cache/usage', { headers: { authorization: `Bearer ${tenantKey}` } })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    const unknown = await api.request('GET', '/v1/cache/usage?tenant_id=acme', { headers: admin });
    expect({ status: unknown.status, body: unknown.body }).toEqual({ status: 400, body: { error: { code: 'invalid_payload', message: 'unknown query parameter tenant_id', field: 'tenant_id' } } });
  });
});

describe('POST /v1/admin/cache/maintenance', () => {
  /** What both the dry run and the run remove. */
  const removed = () => ({
    invalid_removed: { products: 1, bytes: 200, objects: 2, scene_ids: [P[0]], scene_ids_truncated: false },
    expired: { products: 1, bytes: 200, objects: 2, scene_ids: [P[1]], scene_ids_truncated: false },
    // 1000 bytes left after the first two rules, over 700: down to 630 — the invalid row first, then the least recently used.
    evicted: { products: 2, bytes: 400, objects: 4, scene_ids: [P[2], P[3]], scene_ids_truncated: false },
  });

  it('a dry run changes nothing and reports exactly what the run then does; the run deletes rows and objects and counts them', async () => {
    const before = { bytes: 1400, objects: 14, products: 7, invalid_products: 2, invalid_bytes: 400, oldest_access_at: await lastUseOf(P[1]!) };
    const allKeys = [...Object.values(keysOf).flat(), OTHER_KEY].sort();
    await s3.store.uploadStream({ bucket: tenantBucket, key: keysOf[P[3]!]![0]!, body: Readable.from([Buffer.alloc(100, 7)]), contentLength: 100 });

    const dry = await post('/v1/admin/cache/maintenance', { dry_run: true });
    expect(dry.status).toBe(200);
    expect(dry.body).toEqual({
      dry_run: true,
      started_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/) as string,
      duration_ms: expect.any(Number) as number,
      budget_bytes: BUDGET,
      unused_ttl_days: 60,
      invalid_retention_days: 30,
      usage_before: before,
      // Bytes, objects and products as the run would leave them; the other figures as before.
      usage_after: { ...before, bytes: 600, objects: 6, products: 3 },
      multipart_uploads: { aborted: 0, supported: false },
      ...removed(),
      orphans: { objects: 0, bytes: 0 },
      vanished: { bands: 0, products_invalidated: 0, scene_ids: [] },
      // A dry run deletes nothing: the listing is the bucket as it is.
      bucket_listing: { objects: 14, bytes: 1400 },
      skipped: [],
      aborted: false,
    });
    expect(await sceneIds()).toEqual([...P].sort());
    expect((await s3.store.listKeys(bucket)).sort()).toEqual(allKeys);
    const dryMetrics = await scrape();
    for (const counter of Object.values(CACHE_MAINTENANCE_COUNTERS)) expect([counter.name, metricValue(dryMetrics, counter.name)]).toEqual([counter.name, 0]);

    // The run, with no body at all (= {}).
    const run = await api.request('POST', '/v1/admin/cache/maintenance', { headers: admin });
    expect(run.status).toBe(200);
    const after = { bytes: 600, objects: 6, products: 3, invalid_products: 0, invalid_bytes: 0, oldest_access_at: await lastUseOf(P[4]!) };
    expect(run.body).toEqual({
      ...dry.body,
      dry_run: false,
      started_at: expect.any(String) as string,
      duration_ms: expect.any(Number) as number,
      usage_after: after,
      bucket_listing: { objects: 6, bytes: 600 },
    });
    expect(await sceneIds()).toEqual([P[4], P[5], P[6]].sort());
    expect((await s3.store.listKeys(bucket)).sort()).toEqual([...keysOf[P[4]!]!, ...keysOf[P[5]!]!, ...keysOf[P[6]!]!, OTHER_KEY].sort());
    // The tenant's copy of an evicted product stays.
    expect(await s3.store.listKeys(tenantBucket)).toEqual([keysOf[P[3]!]![0]]);

    const samples = await scrape();
    expect(metricValue(samples, 'scenecache_cache_evictions_total')).toBe(2);
    expect(metricValue(samples, 'scenecache_cache_expiries_total')).toBe(1);
    expect(metricValue(samples, 'scenecache_cache_invalid_removed_total')).toBe(1);
    expect(metricValue(samples, 'scenecache_cache_removed_bytes_total')).toBe(800);
    expect(metricValue(samples, 'scenecache_cache_orphans_removed_total')).toBe(0);
    expect(metricValue(samples, 'scenecache_global_cache_bytes')).toBe(600);

    // Usage agrees; a second run finds nothing to do.
    expect((await api.request('GET', '/v1/cache/usage', { headers: admin })).body).toMatchObject({ ...after, used_ratio: 600 / 700, bytes_over_budget: 0 });
    const again = await post('/v1/admin/cache/maintenance', {});
    const nothing = { products: 0, bytes: 0, objects: 0, scene_ids: [], scene_ids_truncated: false };
    expect(again.body).toMatchObject({ dry_run: false, usage_before: after, usage_after: after, invalid_removed: nothing, expired: nothing, evicted: nothing });
  });

  it('409 maintenance_running while another run holds the lock (nothing removed); a dry run still answers', async () => {
    const holder = new pg.Client({ connectionString: api.databaseUrl });
    holder.on('error', () => undefined);
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [CACHE_MAINTENANCE_LOCK_NAME]);
      const blocked = await post('/v1/admin/cache/maintenance', {});
      expect({ status: blocked.status, code: (blocked.body.error as { code: string }).code }).toEqual({ status: 409, code: 'maintenance_running' });
      expect(Object.keys(blocked.body)).toEqual(['error']);
      expect(await sceneIds()).toEqual([...P].sort());
      const dry = await post('/v1/admin/cache/maintenance', { dry_run: true });
      expect(dry.status).toBe(200);
      expect(dry.body.evicted).toMatchObject({ products: 2 });
    } finally {
      await holder.end();
    }
    const run = await post('/v1/admin/cache/maintenance', {});
    expect(run.status).toBe(200);
    expect(await sceneIds()).toEqual([P[4], P[5], P[6]].sort());
  });

  it('admin keys only: 401 without a key, 403 for a tenant key even with a bad body; nothing removed', async () => {
    expect(await post('/v1/admin/cache/maintenance', {}, {})).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    for (const json of [{}, { dry_run: 'nonsense' }]) {
      expect(await post('/v1/admin/cache/maintenance', json, { authorization: `Bearer ${tenantKey}` })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    }
    expect(await sceneIds()).toEqual([...P].sort());
  });

  it.each([
    ['dry_run not a boolean', 400, 'invalid_payload', 'dry_run', { json: { dry_run: 'yes' } }],
    ['an unknown field', 400, 'invalid_payload', 'dryrun', { json: { dryrun: true } }],
    ['an array body', 400, 'invalid_payload', undefined, { json: [] }],
    ['a body that is not JSON', 400, 'invalid_json', undefined, { body: '{"dry_run":', headers: { 'content-type': 'application/json' } }],
    ['a text/plain body', 415, 'unsupported_media_type', undefined, { body: 'dry_run', headers: { 'content-type': 'text/plain' } }],
  ] as const)('%s: %i %s, nothing removed', async (_name, status, code, field, request) => {
    const reply = await api.request('POST', '/v1/admin/cache/maintenance', { ...request, headers: { ...admin, ...('headers' in request ? request.headers : {}) } });
    expect({ status: reply.status, keys: Object.keys(reply.body), code: (reply.body.error as { code: string }).code, field: (reply.body.error as { field?: string }).field }).toEqual({ status, keys: ['error'], code, field });
    expect(await sceneIds()).toEqual([...P].sort());
  });
});

describe('an API without S3 and without a budget', () => {
  let bare: TestApi;
  beforeAll(async () => {
    bare = await startTestApi();
  });
  afterAll(async () => {
    await bare?.close();
  });

  it('the maintenance answers 503 service_unavailable (dry run too); the usage has no budget; no budget gauge', async () => {
    for (const json of [{}, { dry_run: true }]) {
      const reply = await bare.request('POST', '/v1/admin/cache/maintenance', { json });
      expect({ status: reply.status, code: (reply.body.error as { code: string }).code }).toEqual({ status: 503, code: 'service_unavailable' });
    }
    const usage = await bare.request('GET', '/v1/cache/usage');
    expect(usage).toMatchObject({ status: 200 });
    expect(usage.body).toEqual({
      bytes: 0,
      objects: 0,
      products: 0,
      invalid_products: 0,
      invalid_bytes: 0,
      oldest_access_at: null,
      budget_bytes: null,
      used_ratio: null,
      bytes_over_budget: null,
      eviction_target_bytes: null,
      unused_ttl_days: null,
      invalid_retention_days: 30,
      maintenance_interval_ms: 300_000,
    });
    const samples = await scrape(bare);
    expect(metricValue(samples, 'scenecache_global_cache_bytes')).toBe(0);
    expect(samples.filter((s) => s.name === 'scenecache_global_cache_budget_bytes')).toEqual([]);
  });
});

describe('closing the API during a run', () => {
  let closing: TestApi;
  let closingBucket: string;
  const PRODUCTS = 450;

  beforeAll(async () => {
    closingBucket = s3.uniqueBucket('api-lifecycle-closing');
    await s3.store.ensureBucket(closingBucket);
    closing = await startTestApi({ env: { GLOBAL_BUCKET: closingBucket, CACHE_INVALID_RETENTION_DAYS: '30' }, store: s3.store });
    // 450 invalid products past retention: three batches of 200 (MAINTENANCE_BATCH_SIZE), oldest first.
    for (let i = 0; i < PRODUCTS; i += 25) {
      await Promise.all(
        Array.from({ length: 25 }, (_, j) => seedCachedProduct({ db: closing.db, client: s3.client, bucket: closingBucket, sceneId: testProductName(i + j), bands: 1, bodyBytes: 10, invalidDaysAgo: 1_000 - i - j })),
      );
    }
  }, 120_000);
  afterAll(async () => {
    await closing?.close();
  });

  it('stops the run between batches and answers what it did, aborted: true, closing the connection', async () => {
    const rowCount = async () => Number((await closing.db.selectFrom('global_scene_cache').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    expect(await rowCount()).toBe(PRODUCTS);
    // A row of the second batch locked by another transaction: that batch's DELETE waits for it.
    const holder = new pg.Client({ connectionString: closing.databaseUrl });
    holder.on('error', () => undefined);
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM global_scene_cache WHERE scene_id = $1 FOR UPDATE', [testProductName(250)]);
      const run = closing.request('POST', '/v1/admin/cache/maintenance', { json: {} });
      await until('the first batch is deleted', async () => (await rowCount()) === PRODUCTS - 200, 30_000, 50);
      const closed = closing.app.close();
      await until('the API began closing', () => closing.app.readiness.shuttingDown, 5_000, 10);
      await holder.query('COMMIT');
      const reply = await run;
      // Answered, and told to close its keep-alive connection (which would hold close() otherwise).
      expect([reply.status, reply.headers.connection]).toEqual([200, 'close']);
      expect(reply.body).toMatchObject({
        dry_run: false,
        aborted: true,
        invalid_removed: { products: 400, bytes: 4_000, objects: 400, scene_ids_truncated: true },
        expired: { products: 0 },
        evicted: { products: 0 },
        // Stopped before the reconciliation listed the bucket.
        bucket_listing: null,
        usage_after: { products: PRODUCTS - 400, bytes: 10 * (PRODUCTS - 400) },
      });
      // The first 100 of the products removed: all of the first batch (the 200 oldest), in the order deleted.
      const firstBatch = new Set(Array.from({ length: 200 }, (_, i) => testProductName(i)));
      const listed = (reply.body.invalid_removed as { scene_ids: string[] }).scene_ids;
      expect({ listed: listed.length, distinct: new Set(listed).size, fromFirstBatch: listed.filter((id) => firstBatch.has(id)).length }).toEqual({ listed: 100, distinct: 100, fromFirstBatch: 100 });
      await closed;
      expect(await rowCount()).toBe(PRODUCTS - 400);
      expect(await s3.store.listKeys(closingBucket)).toHaveLength(PRODUCTS - 400);
    } finally {
      await holder.end();
    }
  });
});
