/**
 * The API end to end through the typed client (@scenecache/client) on real services: the API
 * (buildApp, listening), an in-process worker, cdse-sim, s3rver, Postgres and Redis (the worker
 * tests' pipeline harness), with tenant API keys. Enqueue → wait → completed (downloaded, then
 * reused by another tenant), wait by long-polls, idempotent enqueue, a batch, paging, cancel, and
 * errors as ScenecacheApiError.
 */
import { ScenecacheApiError, ScenecacheClient, type Job } from '@scenecache/client';
import { createApiKey } from '@scenecache/db';
import { startPipelineHarness, type PipelineHarness } from '../../worker/test/pipeline-harness.js';

const ADMIN_API_KEY = 'client-test-admin-key-0123456789';
const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const L1C = 'S2A_MSIL1C_20240324T101651_N0510_R065_T32TNS_20240324T122424';

let h: PipelineHarness;
/** Tenant `acme`'s client, `globex`'s, and an admin's. */
let acme: ScenecacheClient;
let globex: ScenecacheClient;
let admin: ScenecacheClient;

beforeAll(async () => {
  h = await startPipelineHarness({ env: { AUTH_MODE: 'keys', ADMIN_API_KEY } });
  await h.startWorker();
  const [acmeKey, globexKey] = await Promise.all([createApiKey(h.db, { tenantId: 'acme' }), createApiKey(h.db, { tenantId: 'globex' })]);
  acme = new ScenecacheClient({ baseUrl: h.apiUrl, apiKey: acmeKey.secret });
  globex = new ScenecacheClient({ baseUrl: h.apiUrl, apiKey: globexKey.secret });
  admin = new ScenecacheClient({ baseUrl: h.apiUrl, apiKey: ADMIN_API_KEY });
});
afterAll(async () => {
  await h?.close();
});

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<ScenecacheApiError> {
  const err = await promise.then(
    (value) => {
      throw new Error(`expected an error, got ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ScenecacheApiError);
  return err as ScenecacheApiError;
}

describe('enqueue → wait', () => {
  it('ends completed, downloaded for the first tenant and reused for the next, with the tenant objects', async () => {
    const enqueued = await acme.enqueue({ tenant_id: 'acme', scene_id: `${L2A}.SAFE`, bands: ['B04', 'SCL'] });
    expect(enqueued).toMatchObject({ status: 'queued', tenant_id: 'acme', scene_id: L2A, bands: ['B04', 'SCL'] });

    const first = await acme.wait(enqueued.job_id, { timeoutMs: 60_000, pollWaitSeconds: 5 });
    expect(first).toMatchObject({ job_id: enqueued.job_id, status: 'completed', cache_status: 'downloaded', error: null });
    expect(first.bands_downloaded.sort()).toEqual(['B04', 'SCL']);
    expect(Object.keys(first.objects ?? {}).sort()).toEqual(['B04', 'SCL']);
    expect(first.objects!.B04).toMatch(new RegExp(`^s3://${h.settings.tenantBucketPrefix}acme/`));

    const { job_id } = await globex.enqueue({ tenant_id: 'globex', scene_id: L2A, bands: ['B04'] });
    const second = await globex.wait(job_id, { timeoutMs: 60_000 });
    expect(second).toMatchObject({ status: 'completed', cache_status: 'reused', bands_reused: ['B04'], bytes_downloaded: 0 });
    expect(second.objects!.B04).toMatch(new RegExp(`^s3://${h.settings.tenantBucketPrefix}globex/`));
    // get() answers at once with the same result.
    expect(await globex.get(job_id)).toEqual(second);
  });

  it('waits by long-polls: the server holds the request until the job ends', async () => {
    let requests = 0;
    const counting = new ScenecacheClient({
      baseUrl: h.apiUrl,
      apiKey: ADMIN_API_KEY,
      fetch: (request) => {
        requests++;
        return fetch(request);
      },
    });
    const { job_id } = await counting.enqueue({ tenant_id: 'acme', scene_id: L2A, bands: ['B02'] });
    requests = 0;
    const job = await counting.wait(job_id, { timeoutMs: 60_000, pollWaitSeconds: 30 });
    expect(job).toMatchObject({ status: 'completed', cache_status: 'downloaded' });
    // One long-poll answered when the job ended (a second only if the first began as it ended).
    expect(requests).toBeLessThanOrEqual(2);
  });

  it('returns the first job again for a repeated Idempotency-Key', async () => {
    const request = { tenant_id: 'acme', scene_id: L1C, bands: ['B02'] };
    const first = await acme.enqueue(request, { idempotencyKey: 'client-test-1' });
    const again = await acme.enqueue(request, { idempotencyKey: 'client-test-1' });
    expect(again.job_id).toBe(first.job_id);
    const conflict = await rejection(acme.enqueue({ ...request, bands: ['B03'] }, { idempotencyKey: 'client-test-1' }));
    expect([conflict.status, conflict.code]).toEqual([409, 'conflict']);
    expect((await acme.wait(first.job_id, { timeoutMs: 60_000 })).status).toBe('completed');
  });

  it('enqueues a batch, all or none', async () => {
    const jobs = await acme.enqueueBatch([
      { tenant_id: 'acme', scene_id: L1C, bands: ['B03'] },
      { tenant_id: 'acme', scene_id: L1C, bands: ['B02', 'B03'] },
    ]);
    expect(jobs.map((j) => j.bands)).toEqual([['B03'], ['B02', 'B03']]);
    const done = await Promise.all(jobs.map((j) => acme.wait(j.job_id, { timeoutMs: 60_000 })));
    expect(done.map((j) => j.status)).toEqual(['completed', 'completed']);

    const err = await rejection(acme.enqueueBatch([{ tenant_id: 'acme', scene_id: L1C }, { tenant_id: 'acme', scene_id: 'not-a-product' }]));
    expect(err.status).toBe(400);
    expect(err.field).toBe('jobs[1].scene_id');
  });
});

describe('list', () => {
  it('pages through every job of a tenant, newest first, with listPages and listAll', async () => {
    const ids = (await acme.enqueueBatch(['B05', 'B06', 'B07', 'B8A', 'B11'].map((band) => ({ tenant_id: 'acme', scene_id: L2A, bands: [band] })))).map((j) => j.job_id);
    await Promise.all(ids.map((id) => acme.wait(id, { timeoutMs: 60_000 })));

    const all: Job[] = [];
    for await (const job of acme.listAll({ limit: 2 })) all.push(job);
    const pages = [];
    for await (const page of acme.listPages({ limit: 2 })) pages.push(page);
    expect(pages.slice(0, -1).every((p) => p.items.length === 2 && p.next_cursor !== null)).toBe(true);
    expect(pages.at(-1)!.next_cursor).toBeNull();
    expect(pages.flatMap((p) => p.items.map((j) => j.job_id))).toEqual(all.map((j) => j.job_id));

    // Every acme job once, no other tenant's, newest first.
    expect(new Set(all.map((j) => j.job_id)).size).toBe(all.length);
    expect(all.every((j) => j.tenant_id === 'acme')).toBe(true);
    expect(all.map((j) => j.job_id)).toEqual(expect.arrayContaining(ids));
    const enqueuedAt = all.map((j) => Date.parse(j.enqueued_at));
    expect(enqueuedAt).toEqual([...enqueuedAt].sort((a, b) => b - a));

    // Filters pass through; the admin key sees both tenants.
    const page = await acme.list({ status: 'completed', cache_status: 'downloaded', limit: 500 });
    expect(page.items.length).toBeGreaterThan(0);
    expect(page.items.every((j) => j.status === 'completed' && j.cache_status === 'downloaded')).toBe(true);
    const tenants = new Set<string>();
    for await (const job of admin.listAll({ limit: 500 })) tenants.add(job.tenant_id);
    expect([...tenants].sort()).toEqual(['acme', 'globex']);
  });
});

describe('cancel', () => {
  it('cancels a queued job at once; wait returns it cancelled; cancelling again is no error', async () => {
    // The queue paused: the job stays queued until the cancel.
    await h.queue.pause();
    try {
      const { job_id } = await acme.enqueue({ tenant_id: 'acme', scene_id: L1C, bands: ['B05'] });
      const cancelled = await acme.cancel(job_id);
      expect(cancelled).toMatchObject({ job_id, status: 'cancelled' });
      expect(await acme.wait(job_id, { timeoutMs: 5_000 })).toMatchObject({ status: 'cancelled', cache_status: null });
      expect((await acme.cancel(job_id)).status).toBe('cancelled');
    } finally {
      await h.queue.resume();
    }
  });

  it('a job cancelled while it may be running ends cancelled or completed, as wait reports', async () => {
    const { job_id } = await acme.enqueue({ tenant_id: 'acme', scene_id: L1C, bands: ['B06', 'B07'] });
    const answer = await acme.cancel(job_id);
    // 200 cancelled (still queued) or 202 cancel_requested (active: it stops at its next step).
    expect(answer.status === 'cancelled' || answer.cancel_requested).toBe(true);
    expect(['cancelled', 'completed']).toContain((await acme.wait(job_id, { timeoutMs: 60_000 })).status);
  });

  it('refuses a completed job (409 job_finished) and hides another tenant\'s (404)', async () => {
    const { job_id } = await acme.enqueue({ tenant_id: 'acme', scene_id: L2A, bands: ['B04'] });
    expect((await acme.wait(job_id, { timeoutMs: 60_000 })).status).toBe('completed');
    const finished = await rejection(acme.cancel(job_id));
    expect([finished.status, finished.code]).toEqual([409, 'job_finished']);
    const hidden = await rejection(globex.cancel(job_id));
    expect([hidden.status, hidden.code]).toEqual([404, 'not_found']);
  });
});

describe('errors', () => {
  it('a bad scene id is a ScenecacheApiError 400 with its code and field', async () => {
    const err = await rejection(acme.enqueue({ tenant_id: 'acme', scene_id: 'S2B_MSIL2A_not_a_product', bands: ['B04'] }));
    expect(err).toMatchObject({ status: 400, field: 'scene_id', name: 'ScenecacheApiError' });
    expect(err.code).toBe('invalid_product_name');
    expect(err.message.length).toBeGreaterThan(0);
    expect(err.requestId).toEqual(expect.any(String));
  });

  it("another tenant's job is 404 not_found, for get and wait", async () => {
    const { job_id } = await acme.enqueue({ tenant_id: 'acme', scene_id: L1C, bands: ['B04'] });
    for (const call of [globex.get(job_id), globex.wait(job_id, { timeoutMs: 5_000 })]) {
      const err = await rejection(call);
      expect([err.status, err.code]).toEqual([404, 'not_found']);
    }
    expect((await acme.wait(job_id, { timeoutMs: 60_000 })).status).toBe('completed');
  });

  it('enqueueing for another tenant is 403, a wrong key 401', async () => {
    const forbidden = await rejection(acme.enqueue({ tenant_id: 'globex', scene_id: L1C }));
    expect([forbidden.status, forbidden.code]).toEqual([403, 'forbidden']);
    const unauthorized = await rejection(new ScenecacheClient({ baseUrl: h.apiUrl, apiKey: 'not-a-key' }).get('anything'));
    expect([unauthorized.status, unauthorized.code]).toEqual([401, 'unauthorized']);
  });
});

describe('the openapi-fetch client underneath', () => {
  it('calls the operations the class does not wrap, typed, with the key', async () => {
    const { data, response } = await admin.api.GET('/v1/cache/stats', { params: { query: { tenant_id: 'acme' } } });
    expect(response.status).toBe(200);
    expect(data).toBeDefined();
  });
});
