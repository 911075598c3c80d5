/**
 * ScenecacheClient against an injected fetch: the requests it makes (URL, method, headers, body),
 * how replies and error replies come back, the wait loop and paging. The API end to end through
 * the client: apps/api/test/client.int.test.ts.
 */
import { MAX_POLL_WAIT_SECONDS, ScenecacheApiError, ScenecacheClient, ScenecacheWaitTimeoutError, type Job } from '../src/index.js';

const BASE = 'http://api.test:8080';
const SCENE = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';

/** A job view with `status` (and any other fields). */
function job(status: string, extra: Partial<Job> = {}): Job {
  return {
    job_id: 'j-1',
    status,
    tenant_id: 'acme',
    scene_id: SCENE,
    bands: ['B04'],
    priority: null,
    cache_status: status === 'completed' ? 'downloaded' : null,
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
    enqueued_at: '2026-11-22T10:00:00.000Z',
    started_at: null,
    finished_at: null,
    duration_ms: null,
    worker_id: null,
    ...extra,
  } as Job;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

/** A fetch answering from `replies` in order, recording each request (with its body text). */
function fakeFetch(...replies: Array<Response | ((request: Request) => Response | Promise<Response>)>) {
  const requests: Array<{ method: string; url: URL; headers: Headers; body: string }> = [];
  const fetch = async (request: Request): Promise<Response> => {
    requests.push({ method: request.method, url: new URL(request.url), headers: request.headers, body: await request.text() });
    const next = replies.shift();
    if (next === undefined) throw new Error(`unexpected request ${request.method} ${request.url}`);
    return typeof next === 'function' ? next(request) : next;
  };
  return { fetch, requests };
}

describe('ScenecacheClient requests', () => {
  it('enqueues with the bearer key, the JSON body and the Idempotency-Key', async () => {
    const { fetch, requests } = fakeFetch(json(202, { job_id: 'j-1', status: 'queued', tenant_id: 'acme', scene_id: SCENE, bands: ['B04'], priority: null }));
    const client = new ScenecacheClient({ baseUrl: `${BASE}/`, apiKey: 'sk-123', fetch, headers: { 'user-agent': 'client-test' } });
    const enqueued = await client.enqueue({ tenant_id: 'acme', scene_id: SCENE, bands: ['B04'] }, { idempotencyKey: 'k-1' });
    expect(enqueued.job_id).toBe('j-1');
    const [req] = requests;
    expect(req!.method).toBe('POST');
    expect(req!.url.href).toBe(`${BASE}/v1/downloads`);
    expect(req!.headers.get('authorization')).toBe('Bearer sk-123');
    expect(req!.headers.get('idempotency-key')).toBe('k-1');
    expect(req!.headers.get('user-agent')).toBe('client-test');
    expect(req!.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(req!.body)).toEqual({ tenant_id: 'acme', scene_id: SCENE, bands: ['B04'] });
  });

  it('sends no Authorization header without a key, no Idempotency-Key without one', async () => {
    const { fetch, requests } = fakeFetch(json(202, { jobs: [] }));
    await new ScenecacheClient({ baseUrl: BASE, fetch }).enqueueBatch([{ tenant_id: 'acme', scene_id: SCENE }]);
    expect(requests[0]!.url.pathname).toBe('/v1/downloads/batch');
    expect(requests[0]!.headers.has('authorization')).toBe(false);
    expect(requests[0]!.headers.has('idempotency-key')).toBe(false);
    expect(JSON.parse(requests[0]!.body)).toEqual({ jobs: [{ tenant_id: 'acme', scene_id: SCENE }] });
  });

  it('gets a job by its id (path-encoded, no wait parameter)', async () => {
    const { fetch, requests } = fakeFetch(json(200, job('active')));
    expect((await new ScenecacheClient({ baseUrl: BASE, fetch }).get('j 1')).status).toBe('active');
    expect(requests[0]!.url.pathname).toBe('/v1/downloads/j%201');
    expect(requests[0]!.url.search).toBe('');
  });

  it('cancels with DELETE /v1/downloads/{id}', async () => {
    const { fetch, requests } = fakeFetch(json(200, job('cancelled')));
    expect((await new ScenecacheClient({ baseUrl: BASE, fetch }).cancel('j-1')).status).toBe('cancelled');
    expect([requests[0]!.method, requests[0]!.url.pathname]).toEqual(['DELETE', '/v1/downloads/j-1']);
  });
});

describe('ScenecacheApiError', () => {
  it('carries the status, code, message and field of the API error body, the request id and Retry-After', async () => {
    const { fetch } = fakeFetch(json(400, { error: { code: 'invalid_product_name', message: 'not a product', field: 'scene_id' } }, { 'x-request-id': 'r-1' }), json(503, { error: { code: 'service_unavailable', message: 'retry' } }, { 'retry-after': '5' }));
    const client = new ScenecacheClient({ baseUrl: BASE, fetch });
    const err = await client.enqueue({ tenant_id: 'acme', scene_id: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScenecacheApiError);
    expect(err).toMatchObject({ name: 'ScenecacheApiError', status: 400, code: 'invalid_product_name', message: 'not a product', field: 'scene_id', requestId: 'r-1', retryAfterSeconds: undefined });
    await expect(client.get('j-1')).rejects.toMatchObject({ status: 503, code: 'service_unavailable', retryAfterSeconds: 5 });
  });

  it('names a reply without the API error body by its status, with the start of the body', async () => {
    const { fetch } = fakeFetch(new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway', headers: { 'content-type': 'text/html' } }));
    await expect(new ScenecacheClient({ baseUrl: BASE, fetch }).get('j-1')).rejects.toMatchObject({ status: 502, code: 'http_502', message: 'HTTP 502 Bad Gateway: <html>bad gateway</html>' });
  });

  it('lets a network failure through as the fetch error', async () => {
    const fetch = (): Promise<Response> => Promise.reject(new TypeError('fetch failed'));
    await expect(new ScenecacheClient({ baseUrl: BASE, fetch }).get('j-1')).rejects.toThrow(TypeError);
  });
});

describe('wait', () => {
  it('long-polls with ?wait= until the job is in a final state', async () => {
    const { fetch, requests } = fakeFetch(json(200, job('queued')), json(200, job('active')), json(200, job('completed')));
    const done = await new ScenecacheClient({ baseUrl: BASE, fetch }).wait('j-1', { pollWaitSeconds: 7, minPollIntervalMs: 0 });
    expect(done.status).toBe('completed');
    expect(requests.map((r) => `${r.url.pathname}${r.url.search}`)).toEqual(Array(3).fill('/v1/downloads/j-1?wait=7'));
  });

  it.each(['failed', 'cancelled'])('returns a %s job (final) without throwing', async (status) => {
    const { fetch } = fakeFetch(json(200, job(status)));
    expect((await new ScenecacheClient({ baseUrl: BASE, fetch }).wait('j-1')).status).toBe(status);
  });

  it('pauses minPollIntervalMs between polls a server answers at once', async () => {
    const { fetch } = fakeFetch(json(200, job('queued')), json(200, job('queued')), json(200, job('completed')));
    const started = Date.now();
    await new ScenecacheClient({ baseUrl: BASE, fetch }).wait('j-1', { minPollIntervalMs: 150 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('asks for no more than the time left, and throws ScenecacheWaitTimeoutError with the last state at the timeout', async () => {
    const { fetch, requests } = fakeFetch(...Array.from({ length: 50 }, () => json(200, job('active', { waiting_for: 'upstream_slot' }))));
    const err = await new ScenecacheClient({ baseUrl: BASE, fetch }).wait('j-1', { timeoutMs: 2_300, pollWaitSeconds: 60, minPollIntervalMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScenecacheWaitTimeoutError);
    expect(err).toMatchObject({ timeoutMs: 2_300, job: { status: 'active', waiting_for: 'upstream_slot' } });
    // 2.3 s left: wait=2, later wait=1, and no wait once under a second is left.
    const waits = requests.map((r) => r.url.searchParams.get('wait'));
    expect(waits[0]).toBe('2');
    expect(waits.at(-1)).toBeNull();
    expect(requests.length).toBeGreaterThanOrEqual(4);
    expect(requests.length).toBeLessThanOrEqual(6);
  });

  it('ends on an error reply (404)', async () => {
    const { fetch } = fakeFetch(json(404, { error: { code: 'not_found', message: 'no download job j-1' } }));
    await expect(new ScenecacheClient({ baseUrl: BASE, fetch }).wait('j-1')).rejects.toMatchObject({ status: 404, code: 'not_found' });
  });

  it('stops when its signal aborts', async () => {
    const { fetch } = fakeFetch(...Array.from({ length: 10 }, () => json(200, job('queued'))));
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('stop waiting')), 100);
    await expect(new ScenecacheClient({ baseUrl: BASE, fetch }).wait('j-1', { minPollIntervalMs: 5_000, signal: controller.signal })).rejects.toThrow('stop waiting');
  });

  it('refuses a pollWaitSeconds the API does not allow', async () => {
    const client = new ScenecacheClient({ baseUrl: BASE, fetch: fakeFetch().fetch });
    await expect(client.wait('j-1', { pollWaitSeconds: MAX_POLL_WAIT_SECONDS + 1 })).rejects.toThrow(RangeError);
    await expect(client.wait('j-1', { pollWaitSeconds: 1.5 })).rejects.toThrow(RangeError);
  });
});

describe('list', () => {
  it('passes the filters, and listAll follows next_cursor across pages', async () => {
    const { fetch, requests } = fakeFetch(
      json(200, { items: [job('completed', { job_id: 'a' }), job('completed', { job_id: 'b' })], next_cursor: 'c1' }),
      json(200, { items: [job('completed', { job_id: 'c' })], next_cursor: null }),
    );
    const ids: string[] = [];
    for await (const j of new ScenecacheClient({ baseUrl: BASE, fetch }).listAll({ tenant_id: 'acme', status: 'completed', limit: 2 })) ids.push(j.job_id);
    expect(ids).toEqual(['a', 'b', 'c']);
    expect(requests.map((r) => Object.fromEntries(r.url.searchParams))).toEqual([
      { tenant_id: 'acme', status: 'completed', limit: '2' },
      { tenant_id: 'acme', status: 'completed', limit: '2', cursor: 'c1' },
    ]);
  });

  it('fetches a page only when the iteration asks for it', async () => {
    const { fetch, requests } = fakeFetch(json(200, { items: [job('queued', { job_id: 'a' })], next_cursor: 'c1' }));
    for await (const page of new ScenecacheClient({ baseUrl: BASE, fetch }).listPages()) {
      expect(page.items).toHaveLength(1);
      break;
    }
    expect(requests).toHaveLength(1);
  });
});
