/**
 * Issue 16, the API's side of cancel, long-poll and callbacks (no worker; real Postgres and Redis):
 *
 * - `DELETE /v1/downloads/{id}`: a queued job (and a delayed one, and one whose BullMQ job never
 *   landed) is cancelled at once — 200, `status: cancelled`, out of the queue; a job a worker holds
 *   (locked in BullMQ) keeps a cancel request — 202, `cancel_requested: true`; again: 200, the same
 *   view; a completed or failed job: 409 `job_finished`; another tenant's job or an unknown id: 404.
 * - `GET /v1/downloads/{id}?wait=`: 400 outside 0–60 or not an integer; a job that does not end
 *   is answered after the wait as it is; one that ends (cancelled by the API, or finalized and
 *   announced the way the workers do it) is answered at once; waits hold no database connection
 *   (more waits than the pool's connections, and the API still answers); closing the app answers
 *   the waits at once.
 * - `callback_url` at enqueue: https only (http to loopback only with CALLBACK_ALLOW_HTTP_LOOPBACK),
 *   no credentials, the batch item named; a key without a callback secret (ADMIN_API_KEY without
 *   CALLBACK_SIGNING_SECRET, a key that predates callbacks) is refused; a cancelled job's delivery
 *   is queued once, its body the job's view.
 */
import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { CALLBACK_QUEUE, jobEndedChannel, SCENE_DOWNLOAD_QUEUE, type CallbackJobData } from '@scenecache/core';
import { createApiKey, findJobById, insertQueuedJob, markJobActive, markJobCompleted, markJobFailed } from '@scenecache/db';
import { L1C, L2A, startTestApi, TEST_REDIS_URL, type TestApi, type TestReply } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-cancel-wait-0123456789';
const HOOK = 'https://hooks.example.com/scenecache?tenant=acme';

let api: TestApi;
let acmeKey: string;
let acmeKeyId: string;
let globexKey: string;
let callbacks: Queue<CallbackJobData>;
let callbacksRedis: Redis;

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const admin = as(ADMIN_API_KEY);

beforeAll(async () => {
  api = await startTestApi({ env: { ADMIN_API_KEY } });
  const acme = await createApiKey(api.db, { tenantId: 'acme' });
  acmeKey = acme.secret;
  acmeKeyId = acme.row.id;
  globexKey = (await createApiKey(api.db, { tenantId: 'globex' })).secret;
  callbacksRedis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  callbacks = new Queue<CallbackJobData>(CALLBACK_QUEUE, { connection: callbacksRedis, prefix: api.prefix });
});
afterAll(async () => {
  await callbacks.obliterate({ force: true });
  await callbacks.close();
  await callbacksRedis.quit();
  await api.close();
});
beforeEach(async () => {
  await api.reset();
  await callbacks.obliterate({ force: true });
});

async function enqueue(key: string, body: Record<string, unknown>): Promise<TestReply> {
  return api.request('POST', '/v1/downloads', { json: body, headers: as(key) });
}

async function enqueued(key = acmeKey, body: Record<string, unknown> = { tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }): Promise<string> {
  const res = await enqueue(key, body);
  expect(res.status).toBe(202);
  return res.body.job_id as string;
}

function cancel(id: string, key = acmeKey): Promise<TestReply> {
  return api.request('DELETE', `/v1/downloads/${id}`, { headers: as(key) });
}

describe('DELETE /v1/downloads/{id}', () => {
  it('cancels a queued job at once: 200 with status cancelled, out of the queue, the row finished', async () => {
    const id = await enqueued();
    expect(await api.queue.getJobState(id)).toBe('waiting');

    const res = await cancel(id);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      job_id: id,
      status: 'cancelled',
      cancel_requested: true,
      cancel_requested_at: expect.any(String) as string,
      cancelled_at: expect.any(String) as string,
      finished_at: expect.any(String) as string,
      started_at: null,
      duration_ms: null,
      callback: null,
    });
    expect(await api.queue.getJobState(id)).toBe('unknown');
    expect(await findJobById(api.db, id)).toMatchObject({ status: 'cancelled' });
    expect((await api.request('GET', `/v1/downloads/${id}`, { headers: as(acmeKey) })).body).toEqual(res.body);
    // Listed by status.
    const listed = await api.request('GET', '/v1/downloads?status=cancelled', { headers: admin });
    expect((listed.body.items as Array<{ job_id: string }>).map((j) => j.job_id)).toEqual([id]);
  });

  it('is idempotent: a cancelled job answers 200 with the same view', async () => {
    const id = await enqueued();
    const first = await cancel(id);
    const again = await cancel(id);
    expect(again).toMatchObject({ status: 200, body: first.body });
  });

  it('cancels a delayed job (waiting for another download or a retry) and a job whose BullMQ entry never landed', async () => {
    // Delayed: as a waiter or a retry sits in BullMQ.
    const delayed = randomUUID();
    await insertQueuedJob(api.db, { id: delayed, tenantId: 'acme', sceneId: L2A, bands: ['B04'] });
    await api.queue.add(SCENE_DOWNLOAD_QUEUE, { tenant_id: 'acme', scene_id: L2A, bands: ['B04'], enqueued_at: new Date().toISOString() }, { jobId: delayed, delay: 60_000 });
    expect(await api.queue.getJobState(delayed)).toBe('delayed');
    expect(await cancel(delayed)).toMatchObject({ status: 200, body: { status: 'cancelled' } });
    expect(await api.queue.getJobState(delayed)).toBe('unknown');

    // A row without a BullMQ job (its enqueue died between the insert and the add).
    const orphan = randomUUID();
    await insertQueuedJob(api.db, { id: orphan, tenantId: 'acme', sceneId: L2A, bands: ['B04'] });
    expect(await cancel(orphan)).toMatchObject({ status: 200, body: { status: 'cancelled' } });
  });

  it('a job a worker holds keeps a cancel request: 202 with cancel_requested, still in BullMQ', async () => {
    const id = await enqueued();
    // A worker that takes the job and holds it (its BullMQ lock) until released.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let taken!: () => void;
    const started = new Promise<void>((resolve) => (taken = resolve));
    const connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const worker = new Worker(SCENE_DOWNLOAD_QUEUE, async () => {
      taken();
      await held;
    }, { connection, prefix: api.prefix });
    try {
      await started;
      await markJobActive(api.db, { id, tenantId: 'acme', sceneId: L2A, bands: ['B04'], workerId: 'w1', attempt: 1 });

      const res = await cancel(id);

      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ job_id: id, status: 'active', cancel_requested: true, cancelled_at: null, finished_at: null });
      expect(await api.queue.getJobState(id)).toBe('active');
      // Asked again while it runs: the same answer, the first request's time kept.
      const again = await cancel(id);
      expect(again).toMatchObject({ status: 202, body: { cancel_requested_at: res.body.cancel_requested_at } });
    } finally {
      release();
      await worker.close();
      await connection.quit();
    }
  });

  it('409 job_finished for a completed or failed job; 404 for another tenant\'s job and for an unknown id', async () => {
    const done = await enqueued();
    await markJobActive(api.db, { id: done, tenantId: 'acme', sceneId: L2A, bands: ['B04'], workerId: 'w1', attempt: 1 });
    await markJobCompleted(api.db, done, { scene_id: L2A, tenant_id: 'acme', cache_status: 'reused', bands_downloaded: [], bands_reused: ['B04'], bytes_downloaded: 0, bytes_copied: 1, objects: {}, duration_ms: 1, message: '' }, 'w1');
    expect(await cancel(done)).toMatchObject({ status: 409, body: { error: { code: 'job_finished', message: expect.stringContaining('completed') as string } } });

    const failed = await enqueued();
    await markJobFailed(api.db, failed, { code: 'product_not_found', message: 'no such product', attempt: 1, final: true });
    expect(await cancel(failed)).toMatchObject({ status: 409, body: { error: { code: 'job_finished' } } });

    const acmeJob = await enqueued();
    const other = await cancel(acmeJob, globexKey);
    expect(other).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect(await findJobById(api.db, acmeJob)).toMatchObject({ status: 'queued', cancel_requested_at: null });
    expect((await cancel(randomUUID())).status).toBe(404);
    // The admin key cancels any tenant's job.
    expect(await cancel(acmeJob, ADMIN_API_KEY)).toMatchObject({ status: 200, body: { status: 'cancelled' } });
  });
});

describe('GET /v1/downloads/{id}?wait=', () => {
  it.each(['61', '-1', 'abc', '1.5', '1e3'])('400 naming wait for ?wait=%s', async (wait) => {
    const id = await enqueued();
    const res = await api.request('GET', `/v1/downloads/${id}?wait=${wait}`, { headers: as(acmeKey) });
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_payload', field: 'wait' } } });
  });

  it('answers a job that does not end after the wait, with its current view', async () => {
    const id = await enqueued();
    const t0 = Date.now();
    const res = await api.request('GET', `/v1/downloads/${id}?wait=1`, { headers: as(acmeKey) });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(res).toMatchObject({ status: 200, body: { job_id: id, status: 'queued' } });
    // wait=0 and an ended job answer at once.
    expect((await api.request('GET', `/v1/downloads/${id}?wait=0`, { headers: as(acmeKey) })).body).toMatchObject({ status: 'queued' });
  });

  it('answers as soon as the job is cancelled, long before the wait ends', async () => {
    const id = await enqueued();
    const t0 = Date.now();
    const waiting = api.request('GET', `/v1/downloads/${id}?wait=30`, { headers: as(acmeKey) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await cancel(id)).status).toBe(200);
    const res = await waiting;
    expect(res).toMatchObject({ status: 200, body: { job_id: id, status: 'cancelled' } });
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('answers as soon as a worker announces the job\'s end (row finalized, id published)', async () => {
    const id = await enqueued();
    const waiting = api.request('GET', `/v1/downloads/${id}?wait=30`, { headers: as(acmeKey) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const t0 = Date.now();
    await markJobActive(api.db, { id, tenantId: 'acme', sceneId: L2A, bands: ['B04'], workerId: 'w1', attempt: 1 });
    await markJobCompleted(api.db, id, { scene_id: L2A, tenant_id: 'acme', cache_status: 'reused', bands_downloaded: [], bands_reused: ['B04'], bytes_downloaded: 0, bytes_copied: 1, objects: {}, duration_ms: 1, message: 'ok' }, 'w1');
    await api.redis.publish(jobEndedChannel(api.prefix), id);
    const res = await waiting;
    expect(res).toMatchObject({ status: 200, body: { job_id: id, status: 'completed', message: 'ok' } });
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('holds no database connection while it waits: more waits than pool connections, and the API still answers', async () => {
    const ids = await Promise.all(Array.from({ length: 15 }, () => enqueued()));
    const waits = ids.map((id) => api.request('GET', `/v1/downloads/${id}?wait=3`, { headers: as(acmeKey) }));
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The pool has 10 connections; 15 waits are in progress.
    const t0 = Date.now();
    const other = await api.request('GET', `/v1/downloads/${ids[0]}`, { headers: as(acmeKey) });
    expect(other.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect((await Promise.all(waits)).map((r) => r.body.status)).toEqual(ids.map(() => 'queued'));
  });

  it('a wait longer than the request deadline (requestTimeout: receiving the request) is answered whole', async () => {
    const own = await startTestApi({ timeouts: { requestMs: 1_000 } });
    try {
      const res = await own.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L1C } });
      const t0 = Date.now();
      const reply = await own.request('GET', `/v1/downloads/${res.body.job_id as string}?wait=3`);
      expect(reply).toMatchObject({ status: 200, body: { status: 'queued' } });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2_950);
    } finally {
      await own.close();
    }
  });

  it('closing the API answers the waits at once with the current view', async () => {
    const own = await startTestApi();
    try {
      const res = await own.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L1C } });
      const id = res.body.job_id as string;
      const t0 = Date.now();
      const waiting = own.request('GET', `/v1/downloads/${id}?wait=60`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const closed = own.app.close();
      const reply = await waiting;
      await closed;
      expect(reply).toMatchObject({ status: 200, body: { job_id: id, status: 'queued' } });
      expect(reply.headers.connection).toBe('close');
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      await own.close();
    }
  });
});

describe('callback_url at enqueue', () => {
  it('stores the URL and the signing key; the view shows the delivery as pending', async () => {
    const res = await enqueue(acmeKey, { tenant_id: 'acme', scene_id: L2A, bands: ['B04'], callback_url: HOOK });
    expect(res.status).toBe(202);
    const id = res.body.job_id as string;
    expect(await findJobById(api.db, id)).toMatchObject({ callback_url: HOOK, callback_key_id: acmeKeyId, callback_state: null });
    const view = await api.request('GET', `/v1/downloads/${id}`, { headers: as(acmeKey) });
    expect(view.body.callback).toEqual({ url: HOOK, state: 'pending', attempts: 0, last_status: null, last_error: null, delivered_at: null });
    // An idempotent replay must name the same callback.
    const headers = { ...as(acmeKey), 'idempotency-key': 'k1' };
    expect((await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A, callback_url: HOOK }, headers })).status).toBe(202);
    const replay = await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A, callback_url: `${HOOK}&x=1` }, headers });
    expect(replay).toMatchObject({ status: 409, body: { error: { code: 'conflict' } } });
  });

  it.each([
    ['http://127.0.0.1:9000/cb', /must be https:\/\//],
    ['http://hooks.example.com/cb', /must be https:\/\//],
    ['https://user:secret@hooks.example.com/cb', /user name or password/],
    ['ftp://hooks.example.com/cb', /must be https:\/\//],
    ['not a url', /absolute URL/],
    [`https://hooks.example.com/${'x'.repeat(2100)}`, /at most 2048|too_big|2048/],
  ])('400 for %s (https only; no http to loopback unless CALLBACK_ALLOW_HTTP_LOOPBACK)', async (url, message) => {
    const res = await enqueue(acmeKey, { tenant_id: 'acme', scene_id: L2A, callback_url: url });
    expect(res.status).toBe(400);
    expect((res.body.error as { field: string }).field).toBe('callback_url');
    expect((res.body.error as { message: string }).message).toMatch(message);
    expect(await api.rowCount()).toBe(0);
  });

  it('names the batch item at fault, and enqueues nothing', async () => {
    const res = await api.request('POST', '/v1/downloads/batch', {
      json: { jobs: [{ tenant_id: 'acme', scene_id: L2A, callback_url: HOOK }, { tenant_id: 'acme', scene_id: L1C, callback_url: 'http://hooks.example.com/' }] },
      headers: as(acmeKey),
    });
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_callback_url', field: 'jobs[1].callback_url' } } });
    expect(await api.rowCount()).toBe(0);
  });

  it('400 callback_secret_missing without a secret to sign with: ADMIN_API_KEY without CALLBACK_SIGNING_SECRET, a key made before callbacks', async () => {
    const asAdmin = await enqueue(ADMIN_API_KEY, { tenant_id: 'acme', scene_id: L2A, callback_url: HOOK });
    expect(asAdmin).toMatchObject({ status: 400, body: { error: { code: 'callback_secret_missing', field: 'callback_url' } } });
    expect((asAdmin.body.error as { message: string }).message).toContain('CALLBACK_SIGNING_SECRET');
    // Without a callback the admin key enqueues as before.
    expect((await enqueue(ADMIN_API_KEY, { tenant_id: 'acme', scene_id: L2A })).status).toBe(202);

    const old = await createApiKey(api.db, { tenantId: 'acme' });
    await api.db.updateTable('api_keys').set({ callback_secret: null }).where('id', '=', old.row.id).execute();
    const res = await enqueue(old.secret, { tenant_id: 'acme', scene_id: L2A, callback_url: HOOK });
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'callback_secret_missing' } } });
    expect((res.body.error as { message: string }).message).toContain('rotate-callback-secret');
  });

  it('a cancelled job\'s callback is queued once, its body the job\'s view as it ended', async () => {
    const res = await enqueue(acmeKey, { tenant_id: 'acme', scene_id: L2A, bands: ['B04'], callback_url: HOOK });
    const id = res.body.job_id as string;
    const cancelled = await cancel(id);
    await cancel(id);

    const delivery = await callbacks.getJob(id);
    expect(delivery).toBeDefined();
    expect(await callbacks.count()).toBe(1);
    expect(delivery!.data).toMatchObject({ job_id: id, url: HOOK, key_id: acmeKeyId, delivery_id: expect.any(String) as string });
    const body = JSON.parse(delivery!.data.body) as Record<string, unknown>;
    expect(body).toEqual({ ...cancelled.body, callback: { url: HOOK, state: 'pending', attempts: 0, last_status: null, last_error: null, delivered_at: null } });
    // No secret travels with the delivery.
    expect(JSON.stringify(delivery!.data)).not.toMatch(/whsec_/);
    expect(await findJobById(api.db, id)).toMatchObject({ callback_state: 'pending' });
  });
});
