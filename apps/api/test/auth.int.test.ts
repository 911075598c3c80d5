import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  createApiKey,
  createDb,
  findActiveKeyByHash,
  hashApiKey,
  insertQueuedJob,
  listApiKeys,
  markJobActive,
  markJobCompleted,
  revokeApiKey,
  touchApiKey,
} from '@scenecache/db';
import type { FastifyRequest } from 'fastify';
import { loadSettings } from '@scenecache/core';
import { canSeeTenant, requireAdmin, requireTenants, scopeTenant } from '../src/auth.js';
import { L1C, L2A, startTestApi, type TestApi, type TestReply } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-0123456789';
const CLI = resolve(process.cwd(), 'packages/db/dist/keys.cli.js');
const run = promisify(execFile);

function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

function expectUnauthorized(res: TestReply): void {
  expect(res.status).toBe(401);
  expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) as string } });
  expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
}

/** A completed job of `tenantId` that moved `bytes` into its bucket. */
async function completedJob(api: TestApi, tenantId: string, bytes: number): Promise<void> {
  const id = randomUUID();
  await insertQueuedJob(api.db, { id, tenantId, sceneId: L2A, bands: ['B04'] });
  await markJobActive(api.db, { id, tenantId, sceneId: L2A, bands: ['B04'], workerId: 'w1', attempt: 1 });
  await markJobCompleted(
    api.db,
    id,
    {
      scene_id: L2A,
      tenant_id: tenantId,
      cache_status: 'downloaded',
      bands_downloaded: ['B04'],
      bands_reused: [],
      bytes_downloaded: bytes,
      bytes_copied: bytes,
      objects: { B04: `s3://t-${tenantId}/${L2A}/B04.jp2` },
      duration_ms: 10,
      message: 'ok',
    },
    'w1',
  );
}

describe('AUTH_MODE=keys (the default) without ADMIN_API_KEY', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ env: { AUTH_MODE: 'keys' } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('fails closed: 401 with no key at all, the first key works, revoking the last key leaves it closed', async () => {
    // No ADMIN_API_KEY, no key in api_keys: nobody is let in (it used to be open "dev mode").
    expectUnauthorized(await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A } }));
    expectUnauthorized(await api.request('GET', '/v1/downloads', { headers: bearer('whatever') }));
    expectUnauthorized(await api.request('GET', '/v1/fleet'));
    expect((await api.request('GET', '/admin/queues')).status).toBe(401);
    expect(await api.rowCount()).toBe(0);

    const { row, secret } = await createApiKey(api.db, { tenantId: 'acme' });
    expectUnauthorized(await api.request('GET', '/v1/downloads'));
    expect((await api.request('GET', '/v1/downloads', { headers: bearer(secret) })).status).toBe(200);

    // Revoking the last key does not open the API (it used to, silently).
    await revokeApiKey(api.db, row.id);
    expectUnauthorized(await api.request('GET', '/v1/downloads'));
    expectUnauthorized(await api.request('GET', '/v1/downloads', { headers: bearer(secret) }));
    expectUnauthorized(await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A } }));
    expect(await api.rowCount()).toBe(0);
  });
});

describe('AUTH_MODE=open', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ env: { AUTH_MODE: 'open' } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('is open only because it says so: keys in api_keys change nothing, an Authorization header is ignored', async () => {
    expect((await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A } })).status).toBe(202);
    await createApiKey(api.db, { tenantId: 'acme' });
    expect((await api.request('GET', '/v1/downloads')).status).toBe(200);
    expect((await api.request('GET', '/v1/downloads', { headers: bearer('whatever') })).status).toBe(200);
    expect((await api.request('POST', '/v1/admin/cache/invalidate', { json: { scene_id: L2A, dry_run: true } })).status).toBe(200);
  });

  it('cannot be combined with ADMIN_API_KEY: the settings refuse it', () => {
    expect(() => loadSettings({ AUTH_MODE: 'open', ADMIN_API_KEY })).toThrow(/AUTH_MODE=open checks no key/);
    expect(() => loadSettings({ AUTH_MODE: 'none' })).toThrow(/AUTH_MODE/);
    expect(loadSettings({}).authMode).toBe('keys');
  });
});

describe('a route that never authenticated', () => {
  it('has no principal: the permission checks refuse it (401), never treat it as open', () => {
    const request = { principal: null } as unknown as FastifyRequest;
    for (const check of [() => requireAdmin(request), () => requireTenants(request, ['acme']), () => canSeeTenant(request, 'acme'), () => scopeTenant(request, undefined)]) {
      expect(check).toThrow(expect.objectContaining({ code: 'unauthorized', httpStatus: 401 }) as Error);
    }
  });
});

describe('with ADMIN_API_KEY', () => {
  let api: TestApi;
  let t1: string;
  let t2: string;
  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY } });
    t1 = (await createApiKey(api.db, { tenantId: 't1', name: 't1 service' })).secret;
    t2 = (await createApiKey(api.db, { tenantId: 't2' })).secret;
  });
  afterAll(async () => {
    await api.close();
  });
  beforeEach(async () => {
    await api.reset();
  });

  it('401 without a key, with a malformed header, an unknown key, a revoked key; health and metrics stay open', async () => {
    expectUnauthorized(await api.request('GET', '/v1/downloads'));
    expectUnauthorized(await api.request('GET', '/v1/cache/stats', { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } }));
    expectUnauthorized(await api.request('GET', '/v1/downloads', { headers: { authorization: 'Bearer' } }));
    expectUnauthorized(await api.request('GET', '/v1/downloads', { headers: bearer('sck_garbage') }));
    expectUnauthorized(await api.request('GET', '/v1/downloads', { headers: bearer(`${ADMIN_API_KEY}x`) }));
    const revoked = await createApiKey(api.db, { tenantId: 't1' });
    expect((await api.request('GET', '/v1/downloads', { headers: bearer(revoked.secret) })).status).toBe(200);
    await revokeApiKey(api.db, revoked.row.id);
    expectUnauthorized(await api.request('GET', '/v1/downloads', { headers: bearer(revoked.secret) }));

    const enqueue = await api.request('POST', '/v1/downloads', { json: { tenant_id: 't1', scene_id: L2A } });
    expectUnauthorized(enqueue);
    expect(await api.rowCount()).toBe(0);

    expect((await api.request('GET', '/healthz')).status).toBe(200);
    expect((await fetch(`${api.baseUrl}/metrics`)).status).toBe(200);
  });

  it('a tenant key enqueues for its tenant only (403 for another, batches all or nothing)', async () => {
    const own = await api.request('POST', '/v1/downloads', { json: { tenant_id: 't1', scene_id: L2A }, headers: bearer(t1) });
    expect(own).toMatchObject({ status: 202, body: { tenant_id: 't1', status: 'queued' } });

    const other = await api.request('POST', '/v1/downloads', { json: { tenant_id: 't2', scene_id: L2A }, headers: bearer(t1) });
    expect(other).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });

    const batch = await api.request('POST', '/v1/downloads/batch', {
      json: { jobs: [{ tenant_id: 't1', scene_id: L1C }, { tenant_id: 't2', scene_id: L1C }] },
      headers: bearer(t1),
    });
    expect(batch).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    const ownBatch = await api.request('POST', '/v1/downloads/batch', { json: { jobs: [{ tenant_id: 't1', scene_id: L1C }] }, headers: bearer(t1) });
    expect(ownBatch.status).toBe(202);

    expect(await api.rowCount()).toBe(2);
    expect(await api.queueJobCount()).toBe(2);
  });

  it("a tenant key reads its jobs; another tenant's job id is 404, not 403; the admin key reads every job", async () => {
    const mine = await api.request('POST', '/v1/downloads', { json: { tenant_id: 't1', scene_id: L2A }, headers: bearer(t1) });
    const theirs = await api.request('POST', '/v1/downloads', { json: { tenant_id: 't2', scene_id: L2A }, headers: bearer(t2) });
    const mineId = mine.body.job_id as string;
    const theirsId = theirs.body.job_id as string;

    expect(await api.request('GET', `/v1/downloads/${mineId}`, { headers: bearer(t1) })).toMatchObject({ status: 200, body: { job_id: mineId, tenant_id: 't1' } });
    const hidden = await api.request('GET', `/v1/downloads/${theirsId}`, { headers: bearer(t1) });
    const missing = await api.request('GET', `/v1/downloads/${randomUUID()}`, { headers: bearer(t1) });
    expect(hidden).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    // Indistinguishable from an id that does not exist (besides the id in the message).
    expect(missing.status).toBe(404);
    expect((hidden.body.error as { message: string }).message).toBe(`no download job ${theirsId}`);

    expect((await api.request('GET', `/v1/downloads/${theirsId}`, { headers: bearer(ADMIN_API_KEY) })).status).toBe(200);
    expect((await api.request('GET', `/v1/downloads/${mineId}`, { headers: bearer(ADMIN_API_KEY) })).status).toBe(200);
  });

  it('lists and stats are forced to the tenant of a tenant key; the admin key sees all', async () => {
    await completedJob(api, 't1', 100);
    await completedJob(api, 't2', 1000);
    await completedJob(api, 't2', 1000);

    const list = await api.request('GET', '/v1/downloads', { headers: bearer(t1) });
    expect(list.status).toBe(200);
    expect((list.body.items as { tenant_id: string }[]).map((j) => j.tenant_id)).toEqual(['t1']);
    expect((await api.request('GET', '/v1/downloads?tenant_id=t1', { headers: bearer(t1) })).status).toBe(200);
    expect(await api.request('GET', '/v1/downloads?tenant_id=t2', { headers: bearer(t1) })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });

    const adminList = await api.request('GET', '/v1/downloads', { headers: bearer(ADMIN_API_KEY) });
    expect((adminList.body.items as { tenant_id: string }[]).map((j) => j.tenant_id).sort()).toEqual(['t1', 't2', 't2']);

    const stats = await api.request('GET', '/v1/cache/stats', { headers: bearer(t1) });
    const t1Stats = await api.request('GET', '/v1/cache/stats?tenant_id=t1', { headers: bearer(ADMIN_API_KEY) });
    const allStats = await api.request('GET', '/v1/cache/stats', { headers: bearer(ADMIN_API_KEY) });
    expect(stats.status).toBe(200);
    expect(stats.body).toEqual(t1Stats.body);
    expect(stats.body).toMatchObject({ totals: { requests: 1, bytes_downloaded: 100 } });
    expect(allStats.body).toMatchObject({ totals: { requests: 3, bytes_downloaded: 2100 } });
    expect((await api.request('GET', '/v1/cache/stats?tenant_id=t2', { headers: bearer(t1) })).status).toBe(403);
  });

  it('admin-only routes: 403 for a tenant key; an admin key from api_keys works like ADMIN_API_KEY', async () => {
    expect(await api.request('GET', '/v1/cache/scenes', { headers: bearer(t1) })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    expect((await api.request('GET', '/v1/cache/scenes', { headers: bearer(ADMIN_API_KEY) })).status).toBe(200);

    const admin = await createApiKey(api.db, { tenantId: null, name: 'ops' });
    expect((await api.request('GET', '/v1/cache/scenes', { headers: bearer(admin.secret) })).status).toBe(200);
    const forT2 = await api.request('POST', '/v1/downloads', { json: { tenant_id: 't2', scene_id: L2A }, headers: bearer(admin.secret) });
    expect(forT2.status).toBe(202);
  });

  it('records last_used_at on use', async () => {
    const key = await createApiKey(api.db, { tenantId: 't1' });
    expect(key.row.last_used_at).toBeNull();
    await api.request('GET', '/v1/downloads', { headers: bearer(key.secret) });
    // The touch is not awaited by the request: poll briefly.
    let row = await findActiveKeyByHash(api.db, hashApiKey(key.secret));
    for (let i = 0; i < 50 && row?.last_used_at === null; i++) {
      await new Promise((r) => setTimeout(r, 20));
      row = await findActiveKeyByHash(api.db, hashApiKey(key.secret));
    }
    expect(row?.last_used_at).toBeInstanceOf(Date);
  });
});

describe('api-key repository', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it('stores only the hash and a display prefix; revokes once; touches at most once a minute', async () => {
    const { row, secret } = await createApiKey(api.db, { tenantId: 'acme', name: 'n' });
    expect(secret).toMatch(/^sck_[A-Za-z0-9_-]{43}$/);
    expect(row).toMatchObject({ tenant_id: 'acme', name: 'n', key_hash: hashApiKey(secret), prefix: secret.slice(0, 12), revoked_at: null, last_used_at: null });
    expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(await listApiKeys(api.db))).not.toContain(secret);

    expect(await touchApiKey(api.db, row.id)).toBe(true);
    expect(await touchApiKey(api.db, row.id)).toBe(false);

    expect((await findActiveKeyByHash(api.db, row.key_hash))?.id).toBe(row.id);
    expect((await revokeApiKey(api.db, row.id))?.revoked_at).toBeInstanceOf(Date);
    expect(await revokeApiKey(api.db, row.id)).toBeUndefined();
    expect(await findActiveKeyByHash(api.db, row.key_hash)).toBeUndefined();
  });
});

describe('with Postgres unreachable', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY }, db: createDb('postgres://root@127.0.0.1:1/scenecache', { max: 2, connectionTimeoutMillis: 1_000 }) });
  });
  afterAll(async () => {
    await api.close();
  });

  it('a key lookup is 503 service_unavailable, not 401', async () => {
    const res = await api.request('GET', '/v1/downloads', { headers: bearer('sck_whatever') });
    expect(res).toMatchObject({ status: 503, body: { error: { code: 'service_unavailable' } } });
    expect(res.headers['www-authenticate']).toBeUndefined();
    // Without a key there is nothing to look up: 401 at once.
    expect((await api.request('GET', '/v1/downloads')).status).toBe(401);
  });
});

describe('npm run keys (packages/db/dist/keys.cli.js)', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY } });
  });
  afterAll(async () => {
    await api.close();
  });

  async function keys(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { PATH: process.env.PATH, DATABASE_URL: api.databaseUrl, LOG_LEVEL: 'silent' };
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout: string; stderr: string };
      return { code: e.code ?? -1, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('create / list / revoke round trip; the created key works until revoked', async () => {
    const created = await keys('create', '--tenant', 't1', '--name', 'ci');
    expect(created.code).toBe(0);
    const secret = /^(sck_\S+)$/m.exec(created.stdout)?.[1];
    expect(secret).toBeDefined();
    const id = /created key for tenant t1 ([0-9a-f-]{36})/.exec(created.stdout)?.[1];
    expect(id).toBeDefined();

    const own = await api.request('POST', '/v1/downloads', { json: { tenant_id: 't1', scene_id: L2A }, headers: bearer(secret!) });
    expect(own.status).toBe(202);

    const admin = await keys('create', '--admin', '--json');
    expect(admin.code).toBe(0);
    const adminKey = JSON.parse(admin.stdout) as { id: string; secret: string; tenant_id: string | null };
    expect(adminKey.tenant_id).toBeNull();
    expect((await api.request('GET', '/v1/cache/scenes', { headers: bearer(adminKey.secret) })).status).toBe(200);

    const listed = await keys('list', '--json');
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout) as { id: string; tenant_id: string | null; name: string | null; revoked_at: string | null }[];
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id, tenant_id: 't1', name: 'ci', revoked_at: null }),
        expect.objectContaining({ id: adminKey.id, tenant_id: null }),
      ]),
    );
    expect(listed.stdout).not.toContain(secret!);
    const table = await keys('list');
    expect(table.stdout).toContain(id!);
    expect(table.stdout).toContain(secret!.slice(0, 12));

    expect((await keys('revoke', id!)).code).toBe(0);
    expectUnauthorized(await api.request('GET', '/v1/downloads', { headers: bearer(secret!) }));
    expect(await keys('revoke', id!)).toMatchObject({ code: 1, stderr: expect.stringContaining('no active key') as string });
  });

  it('usage errors exit 2', async () => {
    expect((await keys()).code).toBe(2);
    expect((await keys('create')).code).toBe(2);
    expect((await keys('create', '--admin', '--tenant', 't1')).code).toBe(2);
    expect((await keys('create', '--tenant', 'Not A Tenant')).code).toBe(2);
    expect((await keys('revoke', 'not-a-uuid')).code).toBe(2);
    expect((await keys('frobnicate')).code).toBe(2);
  });
});
