import { randomUUID } from 'node:crypto';
import { createLogger, DOWNLOAD_JOB_OPTIONS, MAX_BATCH_SIZE, SCENE_DOWNLOAD_QUEUE } from '@scenecache/core';
import { insertQueuedJob, markJobActive, markJobCompleted, markJobFailed } from '@scenecache/db';
import { buildApp } from '../src/app.js';
import { httpRequest, L1C, L2A, startTestApi, type TestApi, type TestReply } from './helpers.js';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});
afterAll(async () => {
  await api.close();
});
beforeEach(async () => {
  await api.reset();
});

function post(url: string, json: unknown, headers: Record<string, string> = {}): Promise<TestReply> {
  return api.request('POST', url, { json, headers });
}

function get(url: string): Promise<TestReply> {
  return api.request('GET', url);
}

describe('POST /v1/downloads', () => {
  it('enqueues: 202, a queued row with canonical bands, a BullMQ job with the same id and data', async () => {
    const res = await post('/v1/downloads', { tenant_id: 'acme', scene_id: `${L2A}.SAFE`, bands: ['B04_10m', 'SCL', 'B8A', 'B02_60m'], priority: 10 });

    expect(res.status).toBe(202);
    const jobId = res.body.job_id as string;
    expect(res.body).toEqual({ job_id: jobId, status: 'queued', tenant_id: 'acme', scene_id: L2A, bands: ['B04', 'SCL', 'B8A', 'B02_60m'], priority: 10 });
    expect(res.headers.location).toBe(`/v1/downloads/${jobId}`);
    expect(res.headers['x-request-id']).toEqual(expect.any(String) as string);

    const row = await api.db.selectFrom('download_jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ tenant_id: 'acme', scene_id: L2A, bands_requested: ['B04', 'SCL', 'B8A', 'B02_60m'], priority: 10, status: 'queued', idempotency_key: null });

    const job = await api.queue.getJob(jobId);
    expect(job).toBeDefined();
    expect(job!.name).toBe(SCENE_DOWNLOAD_QUEUE);
    expect(job!.data).toEqual({ tenant_id: 'acme', scene_id: L2A, bands: ['B04', 'SCL', 'B8A', 'B02_60m'], enqueued_at: row.enqueued_at.toISOString() });
    expect(job!.opts).toMatchObject({ priority: 10, attempts: DOWNLOAD_JOB_OPTIONS.attempts, backoff: DOWNLOAD_JOB_OPTIONS.backoff });
    expect(await api.queueJobCount()).toBe(1);
  });

  it('defaults to the four 10 m bands and no priority', async () => {
    const res = await post('/v1/downloads', { tenant_id: 'acme', scene_id: L1C });

    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ scene_id: L1C, bands: ['B02', 'B03', 'B04', 'B08'], priority: null });
    const job = await api.queue.getJob(res.body.job_id as string);
    expect(job!.opts.priority).toBeUndefined();
  });

  it('is idempotent per tenant with Idempotency-Key: 200 with the same job, one row, one queue entry', async () => {
    const body = { tenant_id: 'acme', scene_id: L2A, bands: ['B04'] };
    const headers = { 'idempotency-key': 'order-42/attempt:1' };
    const first = await post('/v1/downloads', body, headers);
    const again = await post('/v1/downloads', body, headers);

    expect(first.status).toBe(202);
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(await api.rowCount()).toBe(1);
    expect(await api.queueJobCount()).toBe(1);

    // The replay reports the job's current status.
    await markJobActive(api.db, { id: first.body.job_id as string, tenantId: 'acme', sceneId: L2A, bands: ['B04'], workerId: 'w1', attempt: 1 });
    const later = await post('/v1/downloads', body, headers);
    expect(later).toMatchObject({ status: 200, body: { job_id: first.body.job_id, status: 'active' } });

    // Another tenant's key space is its own.
    const other = await post('/v1/downloads', { ...body, tenant_id: 'globex' }, headers);
    expect(other.status).toBe(202);
    expect(other.body.job_id).not.toBe(first.body.job_id);
    expect(await api.rowCount()).toBe(2);
  });

  it('answers 409 when an Idempotency-Key is reused for a different request', async () => {
    const headers = { 'idempotency-key': 'k-1' };
    await post('/v1/downloads', { tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }, headers);
    const res = await post('/v1/downloads', { tenant_id: 'acme', scene_id: L2A, bands: ['B08'] }, headers);

    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: { code: 'conflict', message: expect.stringContaining('different request') as string, field: 'Idempotency-Key' } });
    expect(await api.rowCount()).toBe(1);
    expect(await api.queueJobCount()).toBe(1);
  });

  it('re-adds the job of a queued row that has none (a process died between insert and add)', async () => {
    const id = randomUUID();
    await insertQueuedJob(api.db, { id, tenantId: 'acme', sceneId: L2A, bands: ['B04'], idempotencyKey: 'orphan' });
    expect(await api.queueJobCount()).toBe(0);

    const res = await post('/v1/downloads', { tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }, { 'idempotency-key': 'orphan' });

    expect(res).toMatchObject({ status: 200, body: { job_id: id, status: 'queued' } });
    expect((await api.queue.getJob(id))?.data).toMatchObject({ tenant_id: 'acme', scene_id: L2A, bands: ['B04'] });
  });

  it.each([
    ['too long', 'k'.repeat(201)],
    ['not ASCII', 'clé-1'],
    ['blank', ' '],
  ])('rejects an Idempotency-Key that is %s', async (_what, key) => {
    const res = await post('/v1/downloads', { tenant_id: 'acme', scene_id: L2A }, { 'idempotency-key': key });

    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_payload', message: expect.stringContaining('Idempotency-Key') as string, field: 'Idempotency-Key' } });
    expect(await api.rowCount()).toBe(0);
    expect(await api.queueJobCount()).toBe(0);
  });
});

describe('invalid requests: 4xx naming the field, no row, no queue entry', () => {
  const ok = { tenant_id: 'acme', scene_id: L2A };
  const cases: Array<[string, unknown, number, string, string | undefined]> = [
    ['a bad product name', { ...ok, scene_id: 'S2B_MSIL2A_2024' }, 400, 'invalid_product_name', 'scene_id'],
    ['.. in the name', { ...ok, scene_id: `${L2A}..` }, 400, 'invalid_product_name', 'scene_id'],
    ['../ before the name', { ...ok, scene_id: `../${L2A}` }, 400, 'invalid_product_name', 'scene_id'],
    ['/ in the name', { ...ok, scene_id: `S2B_MSIL2A/${L2A.slice(11)}` }, 400, 'invalid_product_name', 'scene_id'],
    ['a lower-case name', { ...ok, scene_id: L2A.toLowerCase() }, 400, 'invalid_product_name', 'scene_id'],
    ['an S1 product', { ...ok, scene_id: 'S1A_IW_GRDH_1SDV_20240324T101649_20240324T101714_053123_067012_1A2B' }, 400, 'invalid_product_name', 'scene_id'],
    ['an unknown band', { ...ok, bands: ['B04', 'B13'] }, 400, 'unknown_band', 'bands[1]'],
    ['a lower-case band', { ...ok, bands: ['b04'] }, 400, 'unknown_band', 'bands[0]'],
    ['B10 for L2A', { ...ok, bands: ['B10'] }, 400, 'band_not_in_level', 'bands[0]'],
    ['SCL for L1C', { ...ok, scene_id: L1C, bands: ['B02', 'SCL'] }, 400, 'band_not_in_level', 'bands[1]'],
    ['a resolution suffix for L1C', { ...ok, scene_id: L1C, bands: ['B04_20m'] }, 400, 'band_not_in_level', 'bands[0]'],
    ['B04 and B04_10m on L2A', { ...ok, bands: ['B04', 'B04_10m'] }, 400, 'duplicate_band', 'bands[1]'],
    ['an upper-case tenant id', { ...ok, tenant_id: 'Acme' }, 400, 'invalid_tenant_id', 'tenant_id'],
    ['a tenant id too long for a bucket name', { ...ok, tenant_id: 'a'.repeat(46) }, 400, 'invalid_tenant_id', 'tenant_id'],
    ['a tenant id over 63 characters', { ...ok, tenant_id: 'a'.repeat(64) }, 400, 'invalid_payload', 'tenant_id'],
    ['dots in the tenant id', { ...ok, tenant_id: 'acme.corp' }, 400, 'invalid_tenant_id', 'tenant_id'],
    ['a tenant id ending in a hyphen', { ...ok, tenant_id: 'acme-' }, 400, 'invalid_tenant_id', 'tenant_id'],
    ['an empty tenant id', { ...ok, tenant_id: '' }, 400, 'invalid_payload', 'tenant_id'],
    ['a missing tenant id', { scene_id: L2A }, 400, 'invalid_payload', 'tenant_id'],
    ['an unknown field', { ...ok, band: ['B04'] }, 400, 'invalid_payload', 'band'],
    ['a number for tenant_id', { ...ok, tenant_id: 7 }, 400, 'invalid_payload', 'tenant_id'],
    ['a string for bands', { ...ok, bands: 'B04' }, 400, 'invalid_payload', 'bands'],
    ['a number in bands', { ...ok, bands: ['B04', 8] }, 400, 'invalid_payload', 'bands[1]'],
    ['empty bands', { ...ok, bands: [] }, 400, 'invalid_payload', 'bands'],
    ['a string priority', { ...ok, priority: '1' }, 400, 'invalid_payload', 'priority'],
    ['priority 0', { ...ok, priority: 0 }, 400, 'invalid_payload', 'priority'],
    ['a fractional priority', { ...ok, priority: 1.5 }, 400, 'invalid_payload', 'priority'],
    ['priority above the BullMQ maximum', { ...ok, priority: 2_097_153 }, 400, 'invalid_payload', 'priority'],
    ['an array body', [ok], 400, 'invalid_payload', undefined],
    ['a null body', null, 400, 'invalid_payload', undefined],
  ];

  it.each(cases)('%s', async (_what, payload, status, code, field) => {
    const res = await api.request('POST', '/v1/downloads', { body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });

    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error: { code, message: expect.any(String) as string, ...(field === undefined ? {} : { field }) } });
    expect(await api.rowCount()).toBe(0);
    expect(await api.queueJobCount()).toBe(0);
  });

  it('a tenant id that makes a bucket name S3 reserves (xn-- prefix)', async () => {
    // The rule applies to the bucket name: with the default TENANT_BUCKET_PREFIX no tenant id can
    // start one, so this app uses the prefix `x`.
    const settings = { ...api.settings, tenantBucketPrefix: 'x' };
    const app = buildApp({ settings, db: api.db, queue: api.queue, redis: api.redis, logger: createLogger('api-test', 'silent') });
    try {
      const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });
      const res = await httpRequest(baseUrl, 'POST', '/v1/downloads', { json: { tenant_id: 'n--acme', scene_id: L2A } });

      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: { code: 'invalid_tenant_id', message: expect.stringContaining('xn--') as string, field: 'tenant_id' } });
      expect(await api.rowCount()).toBe(0);
      expect(await api.queueJobCount()).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('415 for a non-JSON body', async () => {
    const res = await api.request('POST', '/v1/downloads', { headers: { 'content-type': 'text/plain' }, body: 'tenant_id=acme' });
    expect(res.status).toBe(415);
    expect(res.body).toEqual({ error: { code: 'unsupported_media_type', message: expect.any(String) as string } });
    const form = await api.request('POST', '/v1/downloads', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' });
    expect(form.status).toBe(415);
    const none = await api.request('POST', '/v1/downloads', { body: JSON.stringify({ tenant_id: 'acme', scene_id: L2A }), headers: { 'content-type': '' } });
    expect(none.status).toBe(415);
    expect(await api.rowCount()).toBe(0);
  });

  it('413 for a body over the limit', async () => {
    const body = JSON.stringify({ tenant_id: 'acme', scene_id: L2A, padding: 'x'.repeat(300 * 1024) });
    const res = await api.request('POST', '/v1/downloads', { headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: { code: 'payload_too_large', message: expect.any(String) as string } });
    expect(await api.rowCount()).toBe(0);
  });

  it.each([
    ['malformed JSON', '{"tenant_id": "acme",'],
    ['an empty JSON body', ''],
  ])('400 invalid_json for %s', async (_what, body) => {
    const res = await api.request('POST', '/v1/downloads', { headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_json', message: expect.any(String) as string } });
    expect(await api.rowCount()).toBe(0);
    expect(await api.queueJobCount()).toBe(0);
  });

  it('400 for a POST without a body', async () => {
    const res = await api.request('POST', '/v1/downloads');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_payload', message: 'the body must be a JSON object' } });
  });

  it('404 JSON for an unknown route', async () => {
    const res = await get('/v1/nope');
    expect(res).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });
});

describe('POST /v1/downloads/batch', () => {
  it('enqueues every job: 202, rows and queue entries in order', async () => {
    const jobs = [
      { tenant_id: 'acme', scene_id: L2A, bands: ['B04_10m'] },
      { tenant_id: 'acme', scene_id: `${L1C}.SAFE`, bands: ['B10'], priority: 3 },
      { tenant_id: 'globex', scene_id: L2A },
    ];
    const res = await post('/v1/downloads/batch', { jobs });

    expect(res.status).toBe(202);
    const out = res.body.jobs as Array<Record<string, unknown>>;
    expect(out).toEqual([
      { job_id: expect.any(String) as string, status: 'queued', tenant_id: 'acme', scene_id: L2A, bands: ['B04'], priority: null },
      { job_id: expect.any(String) as string, status: 'queued', tenant_id: 'acme', scene_id: L1C, bands: ['B10'], priority: 3 },
      { job_id: expect.any(String) as string, status: 'queued', tenant_id: 'globex', scene_id: L2A, bands: ['B02', 'B03', 'B04', 'B08'], priority: null },
    ]);
    expect(await api.rowCount()).toBe(3);
    expect(await api.queueJobCount()).toBe(3);
    for (const item of out) {
      const job = await api.queue.getJob(item.job_id as string);
      expect(job?.data).toMatchObject({ tenant_id: item.tenant_id, scene_id: item.scene_id, bands: item.bands });
    }
  });

  it.each<[string, unknown, string]>([
    ['a bad band in one item', { jobs: [{ tenant_id: 'acme', scene_id: L2A }, { tenant_id: 'acme', scene_id: L2A }, { tenant_id: 'acme', scene_id: L2A }, { tenant_id: 'acme', scene_id: L2A, bands: ['B99'] }] }, 'jobs[3].bands[0]'],
    ['a bad tenant in one item', { jobs: [{ tenant_id: 'acme', scene_id: L2A }, { tenant_id: 'ACME', scene_id: L2A }] }, 'jobs[1].tenant_id'],
    ['a bad product in the first item', { jobs: [{ tenant_id: 'acme', scene_id: 'nope' }, { tenant_id: 'acme', scene_id: L2A }] }, 'jobs[0].scene_id'],
    ['an unknown field in one item', { jobs: [{ tenant_id: 'acme', scene_id: L2A }, { tenant_id: 'acme', scene_id: L2A, extra: 1 }] }, 'jobs[1].extra'],
    ['a wrong type in one item', { jobs: [{ tenant_id: 'acme', scene_id: L2A, priority: 0 }] }, 'jobs[0].priority'],
    ['an empty batch', { jobs: [] }, 'jobs'],
    ['an oversized batch', { jobs: Array.from({ length: MAX_BATCH_SIZE + 1 }, () => ({ tenant_id: 'acme', scene_id: L2A })) }, 'jobs'],
    ['a missing jobs array', {}, 'jobs'],
    ['an unknown top-level field', { jobs: [{ tenant_id: 'acme', scene_id: L2A }], dry_run: true }, 'dry_run'],
  ])('400 for %s, nothing enqueued', async (_what, payload, field) => {
    const res = await post('/v1/downloads/batch', payload);

    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: expect.any(String) as string, message: expect.any(String) as string, field } });
    expect(await api.rowCount()).toBe(0);
    expect(await api.queueJobCount()).toBe(0);
  });

  it('reports the item in the message', async () => {
    const res = await post('/v1/downloads/batch', { jobs: [{ tenant_id: 'acme', scene_id: L2A, bands: ['B04', 'B04_10m'] }] });
    expect(res.body).toEqual({ error: { code: 'duplicate_band', message: expect.stringMatching(/^jobs\[0\]\.bands\[1\]/) as string, field: 'jobs[0].bands[1]' } });
  });
});

describe('GET /v1/downloads/:id', () => {
  it('returns the job with its result', async () => {
    const created = await post('/v1/downloads', { tenant_id: 'acme', scene_id: L2A, bands: ['B04', 'B08'] });
    const id = created.body.job_id as string;

    const queued = await get(`/v1/downloads/${id}`);
    expect(queued.status).toBe(200);
    expect(queued.body).toEqual({
      job_id: id,
      tenant_id: 'acme',
      scene_id: L2A,
      bands: ['B04', 'B08'],
      priority: null,
      status: 'queued',
      cache_status: null,
      bands_downloaded: [],
      bands_reused: [],
      bytes_downloaded: 0,
      bytes_copied: 0,
      objects: null,
      message: null,
      attempts: 0,
      waits: 0,
      error: null,
      enqueued_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as string,
      started_at: null,
      finished_at: null,
      duration_ms: null,
      worker_id: null,
    });

    await markJobActive(api.db, { id, tenantId: 'acme', sceneId: L2A, bands: ['B04', 'B08'], workerId: 'w1', attempt: 1 });
    const objects = { B04: 's3://scenecache-tenant-acme/a/B04.jp2', B08: 's3://scenecache-tenant-acme/a/B08.jp2' };
    await markJobCompleted(
      api.db,
      id,
      { scene_id: L2A, tenant_id: 'acme', cache_status: 'reused', bands_downloaded: [], bands_reused: ['B04', 'B08'], bytes_downloaded: 0, bytes_copied: 250_000_000, objects, duration_ms: 812, message: 'reused 2 bands' },
      'w1',
    );
    const done = await get(`/v1/downloads/${id}`);
    expect(done.body).toMatchObject({
      status: 'completed',
      cache_status: 'reused',
      bands_reused: ['B04', 'B08'],
      bytes_copied: 250_000_000,
      objects,
      attempts: 1,
      duration_ms: 812,
      worker_id: 'w1',
      error: null,
      started_at: expect.any(String) as string,
      finished_at: expect.any(String) as string,
    });
  });

  it('shows a failure as {code, message}', async () => {
    const created = await post('/v1/downloads', { tenant_id: 'acme', scene_id: L2A });
    const id = created.body.job_id as string;
    await markJobFailed(api.db, id, { code: 'product_not_found', message: 'CDSE has no such product', attempt: 1, final: true });

    const res = await get(`/v1/downloads/${id}`);
    expect(res.body).toMatchObject({ status: 'failed', error: { code: 'product_not_found', message: 'CDSE has no such product' } });
  });

  it('404 not_found for an unknown id', async () => {
    const res = await get(`/v1/downloads/${randomUUID()}`);
    expect(res).toMatchObject({ status: 404, body: { error: { code: 'not_found', message: expect.any(String) as string } } });
  });
});

describe('GET /v1/downloads', () => {
  async function enqueue(tenant: string, scene = L2A): Promise<string> {
    const res = await post('/v1/downloads', { tenant_id: tenant, scene_id: scene });
    expect(res.status).toBe(202);
    return res.body.job_id as string;
  }

  it('lists newest first, filters, and pages with next_cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await enqueue('acme', i % 2 === 0 ? L2A : L1C));
    const other = await enqueue('globex');
    const newestFirst = [...ids].reverse();

    const page1 = await get('/v1/downloads?tenant_id=acme&limit=2');
    expect(page1.status).toBe(200);
    const items1 = page1.body.items as Array<Record<string, unknown>>;
    expect(items1.map((j) => j.job_id)).toEqual(newestFirst.slice(0, 2));
    expect(items1[0]).toMatchObject({ tenant_id: 'acme', status: 'queued', error: null });

    const seen = [...items1.map((j) => j.job_id)];
    let cursor = page1.body.next_cursor as string | null;
    while (cursor !== null) {
      const page = await get(`/v1/downloads?tenant_id=acme&limit=2&cursor=${encodeURIComponent(cursor)}`);
      seen.push(...(page.body.items as Array<Record<string, unknown>>).map((j) => j.job_id));
      cursor = page.body.next_cursor as string | null;
    }
    expect(seen).toEqual(newestFirst);

    const all = await get('/v1/downloads');
    expect((all.body.items as unknown[]).length).toBe(6);
    expect(all.body.next_cursor).toBeNull();

    const l1c = await get(`/v1/downloads?scene_id=${L1C}.SAFE`);
    expect((l1c.body.items as Array<Record<string, unknown>>).map((j) => j.job_id)).toEqual([ids[3], ids[1]]);

    await markJobActive(api.db, { id: other, tenantId: 'globex', sceneId: L2A, bands: ['B04'], workerId: 'w', attempt: 1 });
    await markJobCompleted(api.db, other, { scene_id: L2A, tenant_id: 'globex', cache_status: 'downloaded', bands_downloaded: ['B04'], bands_reused: [], bytes_downloaded: 1, bytes_copied: 1, objects: {}, duration_ms: 1, message: '' }, 'w');
    const completed = await get('/v1/downloads?status=completed&cache_status=downloaded');
    expect((completed.body.items as Array<Record<string, unknown>>).map((j) => j.job_id)).toEqual([other]);

    const future = await get('/v1/downloads?since=2999-01-01');
    expect(future.body).toEqual({ items: [], next_cursor: null });
    const past = await get('/v1/downloads?until=2020-01-01T00:00:00Z');
    expect(past.body.items).toEqual([]);
    const window = await get(`/v1/downloads?since=2020-01-01T00:00:00%2B02:00&until=2999-01-01T00:00:00.000Z&limit=500`);
    expect((window.body.items as unknown[]).length).toBe(6);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['limit=ten', 'limit'],
    ['status=done', 'status'],
    ['status=queued&status=active', 'status'],
    ['cache_status=hit', 'cache_status'],
    ['tenant_id=Acme', 'tenant_id'],
    ['scene_id=S2B_nope', 'scene_id'],
    ['since=yesterday', 'since'],
    ['until=2026-02-30T00:00:00Z', 'until'],
    ['since=2026-01-01T10:00:00', 'since'],
    ['cursor=garbage', 'cursor'],
    [`cursor=${Buffer.from('["2026-01-01T00:00:00.000000Z"]').toString('base64url')}`, 'cursor'],
    ['tenant=acme', 'tenant'],
  ])('400 naming the parameter for ?%s', async (query, field) => {
    const res = await get(`/v1/downloads?${query}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'invalid_payload', message: expect.any(String) as string, field } });
  });
});
