/**
 * bull-board at /admin/queues: admin keys only (Bearer or HTTP Basic, with a Basic challenge so
 * browsers prompt), the page, its static assets and its JSON API behind the same check, read-only,
 * out of the OpenAPI document; open in dev mode; a Redis outage is a 503, not a 500. The workers'
 * maintenance queue is on the board too (its scheduled runs visible), read-only as well.
 */
import { Queue } from 'bullmq';
import { MAINTENANCE_QUEUE, SCENE_DOWNLOAD_QUEUE } from '@scenecache/core';
import { createApiKey } from '@scenecache/db';
import { startTcpProxy, until, type TcpProxy } from '@scenecache/testing';
import { L2A, startTestApi, TEST_REDIS_URL, type TestApi } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-queues-0123456789';
const BASIC_CHALLENGE = 'Basic realm="scenecache admin", charset="UTF-8"';

/** A raw reply: the board serves HTML and assets, not only JSON. */
interface RawReply {
  status: number;
  headers: Headers;
  text: string;
}

async function get(api: TestApi, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawReply> {
  const res = await fetch(`${api.baseUrl}${path}`, { method, headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}` };
}

function expectError(reply: RawReply, status: number, code: string): void {
  expect({ status: reply.status, contentType: reply.headers.get('content-type') }).toEqual({ status, contentType: expect.stringMatching(/^application\/json/) as string });
  expect(JSON.parse(reply.text)).toEqual({ error: { code, message: expect.any(String) as string } });
}

/** The board's queue list, as its UI fetches it. */
interface BoardQueues {
  queues: Array<{ name: string; counts: Record<string, number>; readOnlyMode: boolean; jobs: Array<{ id: string; data: unknown }> }>;
}

describe('with ADMIN_API_KEY and key rows', () => {
  let api: TestApi;
  let tenantKey: string;
  let adminRowKey: string;

  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY } });
    tenantKey = (await createApiKey(api.db, { tenantId: 'acme' })).secret;
    adminRowKey = (await createApiKey(api.db, { tenantId: null, name: 'ops' })).secret;
  });
  afterAll(async () => {
    await api.close();
  });

  it('without credentials: 401 with a Basic challenge (browsers prompt), for the page, its API and its assets', async () => {
    for (const path of ['/admin/queues', '/admin/queues/', '/admin/queues/queue/scene-downloads', '/admin/queues/api/queues', '/admin/queues/static/favicon-32x32.png']) {
      const reply = await get(api, path);
      expectError(reply, 401, 'unauthorized');
      expect({ path, challenge: reply.headers.get('www-authenticate') }).toEqual({ path, challenge: BASIC_CHALLENGE });
    }
  });

  it('a wrong key or a malformed header: 401; a tenant key (Bearer or Basic): 403', async () => {
    expectError(await get(api, '/admin/queues', basic('ops', `${ADMIN_API_KEY}x`)), 401, 'unauthorized');
    expectError(await get(api, '/admin/queues', bearer('sck_unknown')), 401, 'unauthorized');
    expectError(await get(api, '/admin/queues', { authorization: 'Basic !!!' }), 401, 'unauthorized');
    expectError(await get(api, '/admin/queues', { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` }), 401, 'unauthorized');
    expectError(await get(api, '/admin/queues', bearer(tenantKey)), 403, 'forbidden');
    const forbidden = await get(api, '/admin/queues/api/queues', basic('acme', tenantKey));
    expectError(forbidden, 403, 'forbidden');
    expect(forbidden.headers.get('www-authenticate')).toBeNull();
  });

  it('an admin key as Bearer, as a Basic password (any user name) or as a Basic user name with no password: the board page', async () => {
    for (const headers of [bearer(ADMIN_API_KEY), basic('anyone', ADMIN_API_KEY), basic('', ADMIN_API_KEY), basic(ADMIN_API_KEY, ''), basic('ops', adminRowKey)]) {
      const page = await get(api, '/admin/queues', headers);
      expect({ headers, status: page.status, contentType: page.headers.get('content-type') }).toEqual({ headers, status: 200, contentType: expect.stringMatching(/^text\/html/) as string });
      expect(page.text).toContain('scenecache queues');
    }
  });

  it('the static assets the page references are served behind the same check', async () => {
    const page = await get(api, '/admin/queues', basic('ops', ADMIN_API_KEY));
    // The page links its assets relative to `<base href="/admin/queues/">`.
    const base = /<base href="([^"]+)"/.exec(page.text)?.[1];
    expect(base).toBe('/admin/queues/');
    const assets = [...page.text.matchAll(/(?:src|href)="(static\/[^"]+)"/g)].map((m) => new URL(m[1]!, `http://x${base}`).pathname);
    expect(assets.length).toBeGreaterThan(2);
    expect(assets.every((a) => a.startsWith('/admin/queues/static/'))).toBe(true);
    for (const asset of assets) {
      expect({ asset, status: (await get(api, asset, basic('ops', ADMIN_API_KEY))).status }).toEqual({ asset, status: 200 });
      expect({ asset, status: (await get(api, asset)).status }).toEqual({ asset, status: 401 });
    }
  });

  it('GET /admin/queues/api/queues lists the download queue with the job enqueued through the API', async () => {
    const enqueued = await fetch(`${api.baseUrl}/v1/downloads`, {
      method: 'POST',
      headers: { ...bearer(tenantKey), 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }),
    });
    expect(enqueued.status).toBe(202);
    const { job_id: jobId } = (await enqueued.json()) as { job_id: string };

    const reply = await get(api, `/admin/queues/api/queues?activeQueue=${SCENE_DOWNLOAD_QUEUE}&status=latest`, basic('ops', ADMIN_API_KEY));
    expect(reply.status).toBe(200);
    const { queues } = JSON.parse(reply.text) as BoardQueues;
    expect(queues.map((q) => q.name)).toEqual([SCENE_DOWNLOAD_QUEUE, MAINTENANCE_QUEUE]);
    const board = queues[0]!;
    expect(board.readOnlyMode).toBe(true);
    // The board's counts are the queue's own, and they hold our one job.
    expect(board.counts).toEqual(await api.queue.getJobCounts(...(Object.keys(board.counts) as Parameters<TestApi['queue']['getJobCounts']>)));
    expect(Object.values(board.counts).reduce((a, b) => a + b, 0)).toBe(1);
    expect(board.jobs.map((j) => j.id)).toEqual([jobId]);
    expect(board.jobs[0]!.data).toMatchObject({ tenant_id: 'acme', scene_id: L2A });
  });

  it("shows the workers' maintenance queue read-only: a scheduled run is listed, and cannot be removed or promoted from the board", async () => {
    // What every worker does at start (apps/worker maintenance.ts): upsert the job scheduler on the
    // maintenance queue, same prefix. The first run is due at once.
    const workerSide = new Queue(MAINTENANCE_QUEUE, { connection: { url: TEST_REDIS_URL }, prefix: api.prefix });
    try {
      await workerSide.upsertJobScheduler('global-cache-maintenance', { every: 300_000 }, { name: 'global-cache-maintenance' });
      const counts = await workerSide.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized', 'waiting-children');
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
      const [job] = await workerSide.getJobs(['waiting', 'delayed']);
      expect(job?.name).toBe('global-cache-maintenance');

      const reply = await get(api, `/admin/queues/api/queues?activeQueue=${MAINTENANCE_QUEUE}&status=latest`, basic('ops', ADMIN_API_KEY));
      expect(reply.status).toBe(200);
      const board = (JSON.parse(reply.text) as BoardQueues).queues.find((q) => q.name === MAINTENANCE_QUEUE)!;
      expect(board.readOnlyMode).toBe(true);
      expect(board.counts).toEqual(await api.maintenanceQueue.getJobCounts(...(Object.keys(board.counts) as Parameters<TestApi['queue']['getJobCounts']>)));
      expect(board.jobs.map((j) => j.id)).toEqual([job!.id]);

      // The board's job and queue actions (bull-board api routes): refused in read-only mode.
      const jobPath = `/admin/queues/api/queues/${MAINTENANCE_QUEUE}/${encodeURIComponent(job!.id!)}`;
      for (const path of [`${jobPath}/clean`, `${jobPath}/promote`, `/admin/queues/api/queues/${MAINTENANCE_QUEUE}/empty`, `/admin/queues/api/queues/${MAINTENANCE_QUEUE}/obliterate`]) {
        expect({ path, status: (await get(api, path, basic('ops', ADMIN_API_KEY), 'PUT')).status }).toEqual({ path, status: 405 });
      }
      expect((await workerSide.getJobs(['waiting', 'delayed'])).map((j) => j.id)).toEqual([job!.id]);
    } finally {
      await workerSide.obliterate({ force: true });
      await workerSide.close();
    }
  });

  it('is read-only: pausing the queue from the board is refused and the queue keeps running', async () => {
    const reply = await get(api, `/admin/queues/api/queues/${SCENE_DOWNLOAD_QUEUE}/pause`, basic('ops', ADMIN_API_KEY), 'PUT');
    expect(reply.status).toBe(405);
    expect(await api.queue.isPaused()).toBe(false);
    // Without a key the action does not even reach the board.
    expect((await get(api, `/admin/queues/api/queues/${SCENE_DOWNLOAD_QUEUE}/pause`, {}, 'PUT')).status).toBe(401);
  });

  it('stays out of the OpenAPI document; the /v1 API still takes Bearer only', async () => {
    const doc = (await (await fetch(`${api.baseUrl}/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/admin'))).toEqual([]);
    expect(Object.keys(doc.paths)).toContain('/v1/downloads');
    // Basic credentials are for the UI only: the API keeps its Bearer contract.
    const v1 = await get(api, '/v1/downloads', basic('ops', ADMIN_API_KEY));
    expect(v1.status).toBe(401);
    expect(v1.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });
});

describe('AUTH_MODE=open, Redis through a proxy', () => {
  let api: TestApi;
  let proxy: TcpProxy;

  beforeAll(async () => {
    const target = new URL(TEST_REDIS_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    api = await startTestApi({ redisUrl: proxy.rewrite(TEST_REDIS_URL), env: { AUTH_MODE: 'open' } });
    await until('the API connected to Redis', () => api.redis.status === 'ready', 10_000);
  });
  afterAll(async () => {
    await proxy.up();
    await api.close();
    await proxy.close();
  });

  it('is open without credentials, like the rest of the API', async () => {
    const page = await get(api, '/admin/queues');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect((await get(api, '/admin/queues/api/queues')).status).toBe(200);
  });

  it('with Redis down the board API answers 503 service_unavailable, not 500, and recovers', async () => {
    await proxy.down();
    await until('the connection noticed', () => api.redis.status !== 'ready', 10_000);
    const down = await get(api, '/admin/queues/api/queues');
    expectError(down, 503, 'service_unavailable');
    await proxy.up();
    await until('the board answers again', async () => (await get(api, '/admin/queues/api/queues')).status === 200, 15_000, 100);
  });
});
