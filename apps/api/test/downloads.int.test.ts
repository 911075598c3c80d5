import { randomUUID } from 'node:crypto';
import { DOWNLOAD_JOB_OPTIONS, SCENE_DOWNLOAD_QUEUE } from '@scenecache/core';
import { v7 as uuidv7 } from 'uuid';
import { insertQueuedJob, jobIdCreatedAt, markJobActive, markJobCompleted, markJobFailed } from '@scenecache/db';

/** A UUIDv7 job id made at `ms` (Unix ms). */
const newJobIdAt = (ms: number) => uuidv7({ msecs: ms });
import { L1C, L2A, startTestApi, type TestApi, type TestReply } from './helpers.js';

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
});

// Bad input (bodies, headers, media types, sizes, batch shapes) is one table in
// apps/worker/test/bad-input.int.test.ts: the API's answers there, plus no row, no queue entry and
// no upstream call, and the same content as BullMQ job data failing at once in a running worker.
describe('unknown routes', () => {
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
      waiting_for: null,
      error: null,
      enqueued_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as string,
      started_at: null,
      finished_at: null,
      duration_ms: null,
      worker_id: null,
      cancel_requested: false,
      cancel_requested_at: null,
      cancelled_at: null,
      callback: null,
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

  it('job ids are UUIDv7; an id made before the retention cutoff that is gone is 404 expired, a younger one not_found', async () => {
    const created = await post('/v1/downloads', { tenant_id: 'acme', scene_id: L2A });
    const id = created.body.job_id as string;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Math.abs(jobIdCreatedAt(id)! - Date.now())).toBeLessThan(60_000);
    // DOWNLOAD_JOBS_RETENTION_DAYS is 90 by default.
    const old = newJobIdAt(Date.now() - 120 * 86_400_000);
    const expired = await get(`/v1/downloads/${old}`);
    expect(expired).toMatchObject({ status: 404, body: { error: { code: 'expired', message: expect.stringContaining('90 days') as string } } });
    expect((await get(`/v1/downloads/${newJobIdAt(Date.now() - 10 * 86_400_000)}`)).body).toMatchObject({ error: { code: 'not_found' } });
    // A job of that age that still exists (e.g. never finished) is served.
    await insertQueuedJob(api.db, { id: old, tenantId: 'acme', sceneId: L2A, bands: ['B04'] });
    expect((await get(`/v1/downloads/${old}`)).status).toBe(200);
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
