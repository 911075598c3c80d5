/**
 * `GET /v1/fleet` on a real queue and real advisory locks: the queue counts match jobs put in
 * known BullMQ states; `upstream_slots.in_use` matches upstream-slot locks taken by the workers' own
 * lock code (`AdvisoryLocks` / `SceneLease`) on separate connections — and only those (a scene
 * lock, a slot beyond the limit and another database's slot lock do not count);
 * `upstream_budget` sums the `upstream_transfers` rows of the last 30 days (not older ones) against
 * UPSTREAM_MONTHLY_BYTES, with when the oldest leaves the window; auth and outages.
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { SCENE_DOWNLOAD_QUEUE, type DownloadJobData } from '@scenecache/core';
import { AdvisoryLocks, createApiKey, createDb, upstreamSlotLockName, type SceneLease } from '@scenecache/db';
import { createTestDatabase, insertUpstreamTransfers, until } from '@scenecache/testing';
import { CLOSED_REDIS_URL, L1C, L2A, startTestApi, TEST_REDIS_URL, type TestApi } from './helpers.js';

const DAY_MS = 86_400_000;

function jobData(tenantId: string, sceneId: string): DownloadJobData {
  return { tenant_id: tenantId, scene_id: sceneId, bands: ['B04'], enqueued_at: new Date().toISOString() };
}

/** Take the advisory lock `name` on `client` (the same key function as advisory-lock.ts). */
async function lockByName(client: pg.Client, name: string): Promise<void> {
  const res = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [name]);
  expect(res.rows[0]?.ok).toBe(true);
}

describe('GET /v1/fleet (open dev mode)', () => {
  let api: TestApi;
  let workerRedis: Redis;
  let worker: Worker<DownloadJobData>;
  let locks: AdvisoryLocks;

  beforeAll(async () => {
    api = await startTestApi();
    workerRedis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    // A worker that runs nothing: it only moves a job to active when asked (getNextJob).
    worker = new Worker<DownloadJobData>(SCENE_DOWNLOAD_QUEUE, null, { connection: workerRedis, prefix: api.prefix, autorun: false });
    locks = new AdvisoryLocks({ connectionString: api.databaseUrl!, maxConnections: 4 });
  });
  afterAll(async () => {
    await locks.close();
    await worker.close(true);
    await workerRedis.quit();
    await api.close();
  });

  it('is all zeros on an idle fleet, with the configured slot limit', async () => {
    const res = await api.request('GET', '/v1/fleet');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      queue: { waiting: 0, prioritized: 0, delayed: 0, active: 0, backlog: 0 },
      upstream_slots: { in_use: 0, limit: api.settings.upstreamConcurrency },
      upstream_budget: { window_bytes: 0, budget_bytes: 12_000_000_000_000, used_ratio: 0, frees_at: null },
      at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/) as string,
    });
    expect(api.settings.upstreamConcurrency).toBe(4);
    expect(api.settings.upstreamMonthlyBytes).toBe(12e12);
    expect(Math.abs(Date.parse(res.body.at as string) - Date.now())).toBeLessThan(60_000);
  });

  it('sums the transfers of the last 30 days against the budget, and says when the oldest leaves the window', async () => {
    const t0 = Date.now();
    const oldest = new Date(t0 - 29 * DAY_MS);
    await insertUpstreamTransfers(api.db, [
      // Outside the window (31 days ago): not counted, however large.
      { bytes: 5_000_000_000_000, startedAt: new Date(t0 - 31 * DAY_MS), band: 'B02' },
      { bytes: 4_000_000_000_000, startedAt: oldest, band: 'B03' },
      { bytes: 3_000_000_000_000, startedAt: new Date(t0 - 12 * DAY_MS), band: 'B04' },
      { bytes: 1_999_864_500_000, startedAt: new Date(t0 - 3 * DAY_MS), band: 'B08', tenantId: 'globex' },
      // A real 10 m band's size, started a minute ago.
      { bytes: 135_500_000, startedAt: new Date(t0 - 60_000), band: 'B8A', tenantId: 'initech' },
    ]);
    const res = await api.request('GET', '/v1/fleet');
    expect(res.status).toBe(200);
    expect(res.body.upstream_budget).toEqual({
      window_bytes: 9_000_000_000_000,
      budget_bytes: 12_000_000_000_000,
      used_ratio: 0.75,
      // The oldest transfer in the window + 30 days: tomorrow, whatever the request's own time.
      frees_at: new Date(t0 + DAY_MS).toISOString(),
    });

    // Over the budget: the ratio is not capped at 1 (downloads wait until frees_at).
    await insertUpstreamTransfers(api.db, [{ bytes: 4_000_000_000_000, startedAt: new Date(t0 - 2 * DAY_MS), band: 'B11' }]);
    const over = await api.request('GET', '/v1/fleet');
    expect(over.body.upstream_budget).toEqual({
      window_bytes: 13_000_000_000_000,
      budget_bytes: 12_000_000_000_000,
      used_ratio: 13 / 12,
      frees_at: new Date(t0 + DAY_MS).toISOString(),
    });

    // Only the transfer outside the window left: an empty window frees nothing.
    await api.db.deleteFrom('upstream_transfers').where('started_at', '>', new Date(t0 - 30 * DAY_MS)).execute();
    expect((await api.request('GET', '/v1/fleet')).body.upstream_budget).toEqual({ window_bytes: 0, budget_bytes: 12_000_000_000_000, used_ratio: 0, frees_at: null });
    await api.db.deleteFrom('upstream_transfers').execute();
  });

  it('counts jobs by queue state; backlog is their sum', async () => {
    // active: added first and taken by the idle worker (it takes the oldest waiting job).
    await api.queue.add('download', jobData('acme', L2A), { jobId: `active-${randomUUID()}` });
    const token = `token-${randomUUID()}`;
    const taken = await worker.getNextJob(token);
    if (!taken) throw new Error('the worker took no job');
    for (let i = 0; i < 3; i++) await api.queue.add('download', jobData(`w${i}`, L2A));
    for (let i = 0; i < 2; i++) await api.queue.add('download', jobData(`p${i}`, L1C), { priority: 3 + i });
    await api.queue.add('download', jobData('d0', L2A), { delay: 600_000 });
    // What BullMQ itself reports, to be sure the jobs are where the test put them.
    expect(await api.queue.getJobCounts('wait', 'prioritized', 'delayed', 'active')).toEqual({ wait: 3, prioritized: 2, delayed: 1, active: 1 });

    const res = await api.request('GET', '/v1/fleet');
    expect(res.status).toBe(200);
    expect(res.body.queue).toEqual({ waiting: 3, prioritized: 2, delayed: 1, active: 1, backlog: 7 });

    // Completed and failed jobs are not backlog.
    await taken.moveToCompleted({}, token, false);
    expect((await api.request('GET', '/v1/fleet')).body.queue).toEqual({ waiting: 3, prioritized: 2, delayed: 1, active: 0, backlog: 6 });
  });

  it('counts the upstream slots held fleet-wide, in this database only', async () => {
    const leases: SceneLease[] = [];
    const other = await createTestDatabase();
    const raw = new pg.Client({ connectionString: api.databaseUrl });
    const rawOther = new pg.Client({ connectionString: other.url });
    try {
      await raw.connect();
      await rawOther.connect();
      // Locks that are not upstream slots of this fleet: a scene lock, a slot name beyond
      // UPSTREAM_CONCURRENCY, and slot 0 in another database (another fleet on the same server).
      const scene = (await locks.tryAcquireScene(`fleet-${randomUUID()}`))!;
      leases.push(scene);
      await lockByName(raw, upstreamSlotLockName(api.settings.upstreamConcurrency));
      await lockByName(rawOther, upstreamSlotLockName(0));
      expect((await api.request('GET', '/v1/fleet')).body.upstream_slots).toEqual({ in_use: 0, limit: 4 });

      // Two slots taken the way workers take them: a scene lease, then a slot on its connection.
      for (let i = 0; i < 2; i++) {
        const lease = (await locks.tryAcquireScene(`fleet-${randomUUID()}`))!;
        leases.push(lease);
        expect(await lease.tryAcquireUpstreamSlot(api.settings.upstreamConcurrency)).toEqual(expect.any(Number));
      }
      expect((await api.request('GET', '/v1/fleet')).body.upstream_slots).toEqual({ in_use: 2, limit: 4 });
      // The workers' own count agrees (the same query).
      expect(await locks.upstreamSlotsInUse(api.settings.upstreamConcurrency)).toBe(2);

      // A third slot taken directly by name on a plain connection counts too (unless it is one of the two).
      const held = new Set(leases.flatMap((l) => l.upstreamSlots));
      const free = [0, 1, 2, 3].find((s) => !held.has(s))!;
      await lockByName(raw, upstreamSlotLockName(free));
      expect((await api.request('GET', '/v1/fleet')).body.upstream_slots).toEqual({ in_use: 3, limit: 4 });

      await leases[1]!.releaseUpstreamSlot(leases[1]!.upstreamSlots[0]!);
      expect((await api.request('GET', '/v1/fleet')).body.upstream_slots).toEqual({ in_use: 2, limit: 4 });
    } finally {
      await Promise.all(leases.map((l) => l.release()));
      await raw.end();
      await rawOther.end();
      await other.drop();
    }
    // Sessions gone, locks gone (the server cleans up a closed session asynchronously: poll).
    await until('slots released', async () => ((await api.request('GET', '/v1/fleet')).body.upstream_slots as { in_use: number }).in_use === 0, 10_000);
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${api.baseUrl}/docs/json`)).json()) as { paths: Record<string, Record<string, { tags: string[]; description: string; security: unknown }>> };
    const op = doc.paths['/v1/fleet']?.get;
    expect(op).toBeDefined();
    expect(op!.tags).toEqual(['fleet']);
    expect(op!.description).toContain('KEDA');
    expect(op!.description).toContain('UPSTREAM_MONTHLY_BYTES');
    expect(op!.security).toEqual([{ bearerAuth: [] }]);
  });
});

describe('GET /v1/fleet with auth on', () => {
  const ADMIN_API_KEY = 'fleet-admin-key-0123456789';
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('needs a key (401), and any key may read it: admin or tenant', async () => {
    const anonymous = await api.request('GET', '/v1/fleet');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) as string } });
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer/);

    const admin = await api.request('GET', '/v1/fleet', { headers: { authorization: `Bearer ${ADMIN_API_KEY}` } });
    expect(admin.status).toBe(200);
    const { secret } = await createApiKey(api.db, { tenantId: 'acme' });
    const tenant = await api.request('GET', '/v1/fleet', { headers: { authorization: `Bearer ${secret}` } });
    expect(tenant.status).toBe(200);
    expect(tenant.body.upstream_slots).toEqual({ in_use: 0, limit: 4 });
  });
});

describe('GET /v1/fleet with a dependency down', () => {
  it('503 service_unavailable when Redis does not answer', async () => {
    const api = await startTestApi({ redisUrl: CLOSED_REDIS_URL });
    try {
      const res = await api.request('GET', '/v1/fleet');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { code: 'service_unavailable', message: expect.any(String) as string } });
    } finally {
      await api.close();
    }
  });

  it('503 service_unavailable when Postgres does not answer', async () => {
    // With ADMIN_API_KEY set, the admin key is checked without Postgres: the request reaches the route.
    const api = await startTestApi({
      db: createDb('postgres://root@127.0.0.1:1/scenecache', { max: 2, connectionTimeoutMillis: 1_000 }),
      env: { ADMIN_API_KEY: 'fleet-admin-key-0123456789' },
    });
    try {
      const res = await api.request('GET', '/v1/fleet', { headers: { authorization: 'Bearer fleet-admin-key-0123456789' } });
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { code: 'service_unavailable', message: expect.stringContaining('Postgres') as string } });
    } finally {
      await api.close();
    }
  });
});
