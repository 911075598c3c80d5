import { createDb } from '@scenecache/db';
import { L2A, startTestApi, type TestApi } from './helpers.js';

// Nothing listens on port 1: every connection is refused.
const CLOSED_POSTGRES_URL = 'postgres://root@127.0.0.1:1/scenecache';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi({ db: createDb(CLOSED_POSTGRES_URL, { max: 2, connectionTimeoutMillis: 1_000 }) });
});
afterAll(async () => {
  await api.close();
});

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const started = Date.now();
  const result = await work();
  return { ms: Date.now() - started, result };
}

describe('with Postgres unreachable', () => {
  it('POST /v1/downloads: 503 service_unavailable quickly, nothing enqueued', async () => {
    const { ms, result: res } = await timed(() => api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A } }));
    expect(ms).toBeLessThan(5_000);
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: { code: 'service_unavailable', message: expect.stringContaining('Postgres') as string } });
    expect(await api.queueJobCount()).toBe(0);
  });

  it('GET /v1/downloads/:id and GET /v1/downloads: 503', async () => {
    expect((await api.request('GET', '/v1/downloads/some-id')).status).toBe(503);
    expect((await api.request('GET', '/v1/downloads')).body).toMatchObject({ error: { code: 'service_unavailable' } });
  });

  it('GET /readyz: 503 naming postgres; /healthz stays 200', async () => {
    const res = await api.request('GET', '/readyz');
    expect(res).toMatchObject({ status: 503, body: { checks: { postgres: 'fail', redis: 'ok' } } });
    expect((await api.request('GET', '/healthz')).status).toBe(200);
  });
});
