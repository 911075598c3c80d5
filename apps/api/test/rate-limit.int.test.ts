/**
 * Per-key rate limiting of /v1 on real Redis: a budget per API key (per IP in open mode), 429
 * `rate_limited` with Retry-After and x-ratelimit-* headers, nothing enqueued when refused, one
 * budget shared by API replicas, the window resetting, ADMIN_API_KEY exempt, and fail-open (logged)
 * while Redis is away.
 */
import { randomUUID } from 'node:crypto';
import { createApiKey, createDb } from '@scenecache/db';
import { startTcpProxy, until, type TcpProxy } from '@scenecache/testing';
import { rateLimitNamespace } from '../src/rate-limit.js';
import { L1C, L2A, startTestApi, TEST_REDIS_URL, type TestApi, type TestReply } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-ratelimit-0123456789';
// Long enough that no window ends while a test runs, however loaded the machine.
const LONG_WINDOW_MS = '600000';

function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

function enqueue(api: TestApi, key: string, tenantId: string): Promise<TestReply> {
  return api.request('POST', '/v1/downloads', { headers: bearer(key), json: { tenant_id: tenantId, scene_id: L2A, bands: ['B04'] } });
}

function rateHeaders(reply: TestReply): { limit?: string; remaining?: string } {
  return { limit: reply.headers['x-ratelimit-limit'], remaining: reply.headers['x-ratelimit-remaining'] };
}

function expectRateLimited(reply: TestReply, max: number, windowS: number): void {
  expect(reply.status).toBe(429);
  expect(reply.body).toEqual({ error: { code: 'rate_limited', message: expect.stringContaining(`${max} requests per`) as string } });
  const retryAfter = Number(reply.headers['retry-after']);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= windowS).toBe(true);
  expect(rateHeaders(reply)).toEqual({ limit: String(max), remaining: '0' });
  expect(reply.headers['x-ratelimit-reset']).toBe(String(retryAfter));
}

describe('RATE_LIMIT_MAX=3 per API key', () => {
  const queuePrefix = `rl-${randomUUID()}`;
  const env = { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: LONG_WINDOW_MS, ADMIN_API_KEY, QUEUE_PREFIX: queuePrefix };
  let api: TestApi;
  let keyA: { id: string; secret: string };
  let keyB: { id: string; secret: string };

  beforeAll(async () => {
    api = await startTestApi({ env });
    const [a, b] = await Promise.all([createApiKey(api.db, { tenantId: 'acme' }), createApiKey(api.db, { tenantId: 'globex' })]);
    keyA = { id: a.row.id, secret: a.secret };
    keyB = { id: b.row.id, secret: b.secret };
  });
  afterAll(async () => {
    const keys = await api.redis.keys(`${rateLimitNamespace(api.settings)}*`);
    if (keys.length > 0) await api.redis.del(...keys);
    await api.close();
  });

  it("the 4th request of a key is 429 with Retry-After and the API's error body; nothing is enqueued", async () => {
    for (const remaining of ['2', '1', '0']) {
      const accepted = await enqueue(api, keyA.secret, 'acme');
      expect(accepted.status).toBe(202);
      expect(rateHeaders(accepted)).toEqual({ limit: '3', remaining });
      expect(Number(accepted.headers['x-ratelimit-reset'])).toBeGreaterThan(0);
    }
    const [rows, jobs] = [await api.rowCount(), await api.queueJobCount()];
    expect([rows, jobs]).toEqual([3, 3]);

    expectRateLimited(await enqueue(api, keyA.secret, 'acme'), 3, 600);
    expectRateLimited(await api.request('GET', '/v1/downloads', { headers: bearer(keyA.secret) }), 3, 600);
    expect([await api.rowCount(), await api.queueJobCount()]).toEqual([rows, jobs]);
    // The counter is the key's, under the queue prefix.
    expect(await api.redis.get(`${queuePrefix}:ratelimit:key:${keyA.id}`)).toBe('5');
  });

  it('another key has its own budget', async () => {
    const other = await api.request('GET', '/v1/downloads', { headers: bearer(keyB.secret) });
    expect(other.status).toBe(200);
    expect(rateHeaders(other)).toEqual({ limit: '3', remaining: '2' });
  });

  it('a batch is one request, whatever its size', async () => {
    const { secret } = await createApiKey(api.db, { tenantId: 'initech' });
    const jobs = [L2A, L1C].flatMap((scene_id) => ['B02', 'B03', 'B04'].map((band) => ({ tenant_id: 'initech', scene_id, bands: [band] })));
    const batch = await api.request('POST', '/v1/downloads/batch', { headers: bearer(secret), json: { jobs } });
    expect(batch.status).toBe(202);
    expect(rateHeaders(batch)).toEqual({ limit: '3', remaining: '2' });
  });

  it('requests that fail auth are not counted; ADMIN_API_KEY is exempt; admin keys of the table are not', async () => {
    for (let i = 0; i < 5; i++) expect((await api.request('GET', '/v1/downloads', { headers: bearer(`sck_wrong${i}`) })).status).toBe(401);
    for (let i = 0; i < 5; i++) {
      const admin = await api.request('GET', '/v1/downloads', { headers: bearer(ADMIN_API_KEY) });
      expect(admin.status).toBe(200);
      expect(rateHeaders(admin)).toEqual({ limit: undefined, remaining: undefined });
    }
    const { secret } = await createApiKey(api.db, { tenantId: null, name: 'ops' });
    for (let i = 0; i < 3; i++) expect((await api.request('GET', '/v1/downloads', { headers: bearer(secret) })).status).toBe(200);
    expectRateLimited(await api.request('GET', '/v1/downloads', { headers: bearer(secret) }), 3, 600);
  });

  it('health, metrics and docs are not limited', async () => {
    for (let i = 0; i < 5; i++) {
      for (const path of ['/healthz', '/metrics', '/docs/json']) {
        const res = await fetch(`${api.baseUrl}${path}`, { headers: bearer(keyA.secret) });
        expect({ path, status: res.status, limit: res.headers.get('x-ratelimit-limit') }).toEqual({ path, status: 200, limit: null });
      }
    }
  });

  it('a second API instance on the same Redis and prefix shares the budgets', async () => {
    const second = await startTestApi({ env, db: createDb(api.databaseUrl!) });
    try {
      const [rows, jobs] = [await api.rowCount(), await second.queueJobCount()];
      expectRateLimited(await enqueue(second, keyA.secret, 'acme'), 3, 600);
      expect([await api.rowCount(), await second.queueJobCount()]).toEqual([rows, jobs]);
      // keyB used 1 of 3 on the first instance.
      const b2 = await second.request('GET', '/v1/downloads', { headers: bearer(keyB.secret) });
      expect(rateHeaders(b2)).toEqual({ limit: '3', remaining: '1' });
      expect(rateHeaders(await api.request('GET', '/v1/downloads', { headers: bearer(keyB.secret) }))).toEqual({ limit: '3', remaining: '0' });
      expectRateLimited(await second.request('GET', '/v1/downloads', { headers: bearer(keyB.secret) }), 3, 600);
    } finally {
      await second.close();
    }
  });

  it('a counter Redis cannot update lets the request through (fail-open)', async () => {
    const { row, secret } = await createApiKey(api.db, { tenantId: 'umbrella' });
    // INCR on a hash fails (WRONGTYPE): the store errors like an unreachable Redis would.
    await api.redis.hset(`${queuePrefix}:ratelimit:key:${row.id}`, 'not', 'a counter');
    for (let i = 0; i < 5; i++) expect((await api.request('GET', '/v1/downloads', { headers: bearer(secret) })).status).toBe(200);
  });

  it('RATE_LIMIT_MAX=0 turns the limiter off, even for a key whose budget is spent', async () => {
    const unlimited = await startTestApi({ env: { ...env, RATE_LIMIT_MAX: '0' }, db: createDb(api.databaseUrl!) });
    try {
      const reply = await unlimited.request('GET', '/v1/downloads', { headers: bearer(keyA.secret) });
      expect(reply.status).toBe(200);
      expect(rateHeaders(reply)).toEqual({ limit: undefined, remaining: undefined });
    } finally {
      await unlimited.close();
    }
  });
});

describe('open dev mode, a 1 s window', () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi({ env: { RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_MS: '1000', QUEUE_PREFIX: `rl-${randomUUID()}` } });
  });
  afterAll(async () => {
    await api.redis.del(`${rateLimitNamespace(api.settings)}ip:127.0.0.1`);
    await api.close();
  });

  it('limits per client IP, and the budget comes back after the window', async () => {
    // The window may end between two requests on a loaded machine: retry the whole sequence.
    const limited = await until(
      'a 429 within one window',
      async () => {
        const replies = [];
        for (let i = 0; i < 3; i++) replies.push(await api.request('GET', '/v1/downloads'));
        return replies[2]!.status === 429 ? replies : false;
      },
      20_000,
    );
    expect(limited.map((r) => r.status)).toEqual([200, 200, 429]);
    expectRateLimited(limited[2]!, 2, 1);
    expect(limited[2]!.body).toMatchObject({ error: { message: expect.stringContaining('per client IP') as string } });
    expect(await api.redis.exists(`${rateLimitNamespace(api.settings)}ip:127.0.0.1`)).toBe(1);
    const after = await until('the budget back', async () => {
      const reply = await api.request('GET', '/v1/downloads');
      return reply.status === 200 ? reply : false;
    }, 10_000, 100);
    expect(rateHeaders(after)).toEqual({ limit: '2', remaining: '1' });
  });
});

describe('Redis outage (through a TCP proxy)', () => {
  let api: TestApi;
  let proxy: TcpProxy;
  let key: string;

  beforeAll(async () => {
    const target = new URL(TEST_REDIS_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    api = await startTestApi({
      redisUrl: proxy.rewrite(TEST_REDIS_URL),
      env: { RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_MS: LONG_WINDOW_MS, ADMIN_API_KEY, QUEUE_PREFIX: `rl-${randomUUID()}` },
    });
    key = (await createApiKey(api.db, { tenantId: 'acme' })).secret;
    await until('the API connected to Redis', () => api.redis.status === 'ready', 10_000);
  });
  afterAll(async () => {
    await proxy.up();
    await until('Redis back', () => api.redis.status === 'ready', 10_000);
    const keys = await api.redis.keys(`${rateLimitNamespace(api.settings)}*`);
    if (keys.length > 0) await api.redis.del(...keys);
    await api.close();
    await proxy.close();
  });

  it('fails open while Redis is away (reads still served, enqueues 503), and limits again once it is back', async () => {
    for (const remaining of ['1', '0']) expect(rateHeaders(await api.request('GET', '/v1/downloads', { headers: bearer(key) }))).toEqual({ limit: '2', remaining });

    await proxy.down();
    await until('the connection noticed', () => api.redis.status !== 'ready', 10_000);
    for (let i = 0; i < 3; i++) {
      const read = await api.request('GET', '/v1/downloads', { headers: bearer(key) });
      expect(read.status).toBe(200);
      expect(rateHeaders(read)).toEqual({ limit: undefined, remaining: undefined });
    }
    const write = await enqueue(api, key, 'acme');
    expect(write.status).toBe(503);
    expect(write.body).toMatchObject({ error: { code: 'service_unavailable' } });

    await proxy.up();
    await until('Redis back', () => api.redis.status === 'ready', 10_000);
    // The budget spent before the outage is still spent.
    expectRateLimited(await api.request('GET', '/v1/downloads', { headers: bearer(key) }), 2, 600);
  });
});
