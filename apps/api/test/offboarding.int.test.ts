/**
 * Issue 15 — tenant offboarding, `DELETE /v1/admin/tenants/{tenant_id}`, on real Postgres, Redis
 * and S3 (s3rver): a dry run changes nothing and reports exactly what the run then removes; the run
 * removes the tenant's `tenant_scenes` rows, with `delete_objects=true` every object of its bucket
 * (more than one listing page), with `purge_jobs=true` its finished job rows — and leaves another
 * tenant's rows, objects and jobs, the global cache and the global bucket as they were. A tenant
 * with queued or active jobs is refused (409 `tenant_busy`; a dry run reports it); a tenant id whose
 * bucket would be the global bucket is 400; a repeat answers zeros; a missing bucket holds nothing;
 * 503 for `delete_objects` without S3; auth; bad input in our error shape.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { insertQueuedJob, upsertTenantScene, createApiKey, summarizeTenant } from '@scenecache/db';
import { insertFinishedJob, seedCachedProduct, startTestS3, testProductName, type TestS3 } from '@scenecache/testing';
import { startTestApi, type TestApi, type TestReply } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-offboarding-012345';
const admin = { authorization: `Bearer ${ADMIN_API_KEY}` };
/** A prefix of this run's own: the tenant buckets are `{PREFIX}{tenant}` (cleaned up at the end on an external S3). */
const PREFIX = `t-${randomBytes(4).toString('hex')}-`;
const bucketOf = (tenant: string) => `${PREFIX}${tenant}`;
/** The global bucket: `{PREFIX}global`, so tenant id `global` would name it. */
const GLOBAL_BUCKET = bucketOf('global');
/** Extra objects the first test puts in acme's bucket beyond its band copies: past one listing page (1000). */
const ACME_EXTRA_OBJECTS = 1_005;

let s3: TestS3;
let api: TestApi;
let tenantKey: string;

async function put(bucket: string, key: string, bytes: number): Promise<void> {
  await s3.store.uploadStream({ bucket, key, body: Readable.from([Buffer.alloc(bytes, 1)]), contentLength: bytes });
}

/** A tenant's copy of `bands` (band → bytes) of a scene: objects in its bucket and its `tenant_scenes` row. */
async function tenantCopy(tenant: string, sceneId: string, bands: Record<string, number>): Promise<void> {
  const keys: Record<string, string> = {};
  for (const [band, bytes] of Object.entries(bands)) {
    keys[band] = `${sceneId}/${band}.jp2`;
    await put(bucketOf(tenant), keys[band], bytes);
  }
  await upsertTenantScene(api.db, { tenantId: tenant, sceneId, bucket: bucketOf(tenant), bands: keys });
}

async function finishedJobs(tenant: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await insertFinishedJob(api.db, { tenantId: tenant, sceneId: testProductName(i), finishedAt: new Date(), outcome: { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 10 } });
  }
}

/** Everything scenecache keeps for a tenant, and its bucket's keys. */
async function stateOf(tenant: string): Promise<{ footprint: Awaited<ReturnType<typeof summarizeTenant>>; keys: string[] }> {
  return { footprint: await summarizeTenant(api.db, tenant), keys: (await s3.store.listKeys(bucketOf(tenant))).sort() };
}

async function globalState(): Promise<{ rows: string[]; keys: string[] }> {
  const rows = (await api.db.selectFrom('global_scene_cache').select('scene_id').orderBy('scene_id').execute()).map((r) => r.scene_id);
  return { rows, keys: (await s3.store.listKeys(GLOBAL_BUCKET)).sort() };
}

function del(path: string, headers: Record<string, string> = admin): Promise<TestReply> {
  return api.request('DELETE', path, { headers });
}

/**
 * acme: 2 scenes (B04 100 B + B08 50 B, and SCL 30 B) in its bucket, 3 finished jobs. globex: 1
 * scene (B04 70 B) + 1 other object (5 B), 1 finished job and 1 queued. The global cache: 2
 * products in the global bucket.
 */
async function seed(): Promise<void> {
  await api.db.deleteFrom('tenant_scenes').execute();
  await api.db.deleteFrom('download_jobs').execute();
  await api.db.deleteFrom('global_scene_cache').execute();
  for (const bucket of [bucketOf('acme'), bucketOf('globex'), GLOBAL_BUCKET]) {
    await s3.store.ensureBucket(bucket);
    const keys = await s3.store.listKeys(bucket);
    if (keys.length > 0) await s3.store.deleteObjects(bucket, keys);
  }
  await tenantCopy('acme', testProductName(0), { B04: 100, B08: 50 });
  await tenantCopy('acme', testProductName(1), { SCL: 30 });
  await finishedJobs('acme', 3);
  await tenantCopy('globex', testProductName(0), { B04: 70 });
  await put(bucketOf('globex'), 'exports/keep.txt', 5);
  await finishedJobs('globex', 1);
  await insertQueuedJob(api.db, { id: randomUUID(), tenantId: 'globex', sceneId: testProductName(2), bands: ['B04'] });
  for (const i of [0, 1]) await seedCachedProduct({ db: api.db, client: s3.client, bucket: GLOBAL_BUCKET, sceneId: testProductName(i) });
}

beforeAll(async () => {
  s3 = await startTestS3();
  api = await startTestApi({ env: { ADMIN_API_KEY, TENANT_BUCKET_PREFIX: PREFIX, GLOBAL_BUCKET }, store: s3.store });
  tenantKey = (await createApiKey(api.db, { tenantId: 'acme' })).secret;
}, 60_000);
afterAll(async () => {
  await api?.close();
  if (s3 && !s3.embedded) {
    // An external S3 keeps what the run made: empty and delete this run's buckets.
    const { DeleteBucketCommand } = await import('@aws-sdk/client-s3');
    for (const bucket of [bucketOf('acme'), bucketOf('globex'), GLOBAL_BUCKET]) {
      const keys = await s3.store.listKeys(bucket).catch(() => []);
      if (keys.length > 0) await s3.store.deleteObjects(bucket, keys);
      await s3.client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
    }
  }
  await s3?.close();
});
beforeEach(async () => {
  await seed();
}, 60_000);

describe('DELETE /v1/admin/tenants/{tenant_id}', () => {
  it('a dry run changes nothing and reports exactly what the run then removes (past a listing page); other tenants and the global cache stay', async () => {
    // Objects no tenant_scenes row lists go too, past one listing page (1000 keys), 25 puts at a time.
    for (let i = 0; i < ACME_EXTRA_OBJECTS; i += 25) {
      await Promise.all(Array.from({ length: Math.min(25, ACME_EXTRA_OBJECTS - i) }, (_, j) => put(bucketOf('acme'), `exports/${String(i + j).padStart(4, '0')}.txt`, 2)));
    }
    const acmeBefore = await stateOf('acme');
    expect(acmeBefore.footprint).toEqual({ scenes: 2, objects: 3, jobs: 3, unfinishedJobs: 0 });
    expect(acmeBefore.keys).toHaveLength(3 + ACME_EXTRA_OBJECTS);
    const globexBefore = await stateOf('globex');
    const globalBefore = await globalState();
    expect(globalBefore.rows).toHaveLength(2);
    expect(globalBefore.keys).toHaveLength(4);

    const expected = {
      tenant_id: 'acme',
      bucket: bucketOf('acme'),
      delete_objects: true,
      purge_jobs: true,
      busy: false,
      tenant_scenes: { deleted: 2, band_objects: 3 },
      objects: { bucket_exists: true, deleted: 3 + ACME_EXTRA_OBJECTS, bytes: 180 + 2 * ACME_EXTRA_OBJECTS },
      jobs: { purged: 3, kept: 0, unfinished: 0 },
    };
    const dry = await del('/v1/admin/tenants/acme?dry_run=true&delete_objects=true&purge_jobs=true');
    expect({ status: dry.status, body: dry.body }).toEqual({ status: 200, body: { ...expected, dry_run: true } });
    expect(await stateOf('acme')).toEqual(acmeBefore);

    const run = await del('/v1/admin/tenants/acme?delete_objects=true&purge_jobs=true');
    expect({ status: run.status, body: run.body }).toEqual({ status: 200, body: { ...expected, dry_run: false } });
    expect(await stateOf('acme')).toEqual({ footprint: { scenes: 0, objects: 0, jobs: 0, unfinishedJobs: 0 }, keys: [] });
    // Another tenant's rows, objects and jobs, and the global cache: as they were.
    expect(await stateOf('globex')).toEqual(globexBefore);
    expect(globexBefore).toEqual({ footprint: { scenes: 1, objects: 1, jobs: 2, unfinishedJobs: 1 }, keys: [`${testProductName(0)}/B04.jp2`, 'exports/keep.txt'] });
    expect(await globalState()).toEqual(globalBefore);

    // Idempotent: nothing left, zeros (the bucket stays, empty).
    const again = await del('/v1/admin/tenants/acme?delete_objects=true&purge_jobs=true');
    expect({ status: again.status, body: again.body }).toEqual({
      status: 200,
      body: { ...expected, dry_run: false, tenant_scenes: { deleted: 0, band_objects: 0 }, objects: { bucket_exists: true, deleted: 0, bytes: 0 }, jobs: { purged: 0, kept: 0, unfinished: 0 } },
    });
  });

  it('by default only the tenant_scenes rows go: the bucket objects and the job history stay', async () => {
    const before = await stateOf('acme');
    const run = await del('/v1/admin/tenants/acme');
    expect({ status: run.status, body: run.body }).toEqual({
      status: 200,
      body: {
        tenant_id: 'acme',
        bucket: bucketOf('acme'),
        dry_run: false,
        delete_objects: false,
        purge_jobs: false,
        busy: false,
        tenant_scenes: { deleted: 2, band_objects: 3 },
        objects: null,
        jobs: { purged: 0, kept: 3, unfinished: 0 },
      },
    });
    expect(await stateOf('acme')).toEqual({ footprint: { scenes: 0, objects: 0, jobs: 3, unfinishedJobs: 0 }, keys: before.keys });
  });

  it('a tenant with a queued job: 409 tenant_busy and nothing removed; a dry run reports it', async () => {
    const before = await stateOf('globex');
    const busy = await del('/v1/admin/tenants/globex?delete_objects=true&purge_jobs=true');
    expect({ status: busy.status, keys: Object.keys(busy.body), code: (busy.body.error as { code: string }).code }).toEqual({ status: 409, keys: ['error'], code: 'tenant_busy' });
    expect(await stateOf('globex')).toEqual(before);
    const dry = await del('/v1/admin/tenants/globex?dry_run=true&delete_objects=true&purge_jobs=true');
    expect({ status: dry.status, body: dry.body }).toEqual({
      status: 200,
      body: {
        tenant_id: 'globex',
        bucket: bucketOf('globex'),
        dry_run: true,
        delete_objects: true,
        purge_jobs: true,
        busy: true,
        tenant_scenes: { deleted: 1, band_objects: 1 },
        objects: { bucket_exists: true, deleted: 2, bytes: 75 },
        // The queued job is never purged: only finished rows are.
        jobs: { purged: 1, kept: 1, unfinished: 1 },
      },
    });
    expect(await stateOf('globex')).toEqual(before);
  });

  it('a tenant nobody has seen, whose bucket does not exist: 200 with zeros', async () => {
    const reply = await del('/v1/admin/tenants/initech?delete_objects=true&purge_jobs=true');
    expect({ status: reply.status, body: reply.body }).toEqual({
      status: 200,
      body: {
        tenant_id: 'initech',
        bucket: bucketOf('initech'),
        dry_run: false,
        delete_objects: true,
        purge_jobs: true,
        busy: false,
        tenant_scenes: { deleted: 0, band_objects: 0 },
        objects: { bucket_exists: false, deleted: 0, bytes: 0 },
        jobs: { purged: 0, kept: 0, unfinished: 0 },
      },
    });
  });

  it('admin keys only: 401 without a key, 403 for a tenant key (its own tenant too); nothing removed', async () => {
    const before = await stateOf('acme');
    expect(await del('/v1/admin/tenants/acme?delete_objects=true', {})).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    for (const path of ['/v1/admin/tenants/acme?delete_objects=true', '/v1/admin/tenants/NOT_A_TENANT?bogus=1']) {
      expect(await del(path, { authorization: `Bearer ${tenantKey}` })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    }
    expect(await stateOf('acme')).toEqual(before);
  });

  it.each([
    { name: 'an upper-case tenant id', path: '/v1/admin/tenants/Acme', code: 'invalid_tenant_id', field: 'tenant_id' },
    { name: 'a tenant id with an underscore', path: '/v1/admin/tenants/ac_me', code: 'invalid_tenant_id', field: 'tenant_id' },
    { name: 'NUL in the tenant id', path: '/v1/admin/tenants/acme%00', code: 'invalid_tenant_id', field: 'tenant_id' },
    { name: 'a tenant id that makes a bucket name over 63 characters', path: `/v1/admin/tenants/${'a'.repeat(64 - PREFIX.length)}`, code: 'invalid_tenant_id', field: 'tenant_id' },
    { name: 'the tenant id whose bucket is the global bucket', path: '/v1/admin/tenants/global?delete_objects=true', code: 'invalid_tenant_id', field: 'tenant_id' },
    { name: 'dry_run not true or false', path: '/v1/admin/tenants/acme?dry_run=yes&delete_objects=true', code: 'invalid_payload', field: 'dry_run' },
    { name: 'an unknown query parameter', path: '/v1/admin/tenants/acme?delete_bucket=true', code: 'invalid_payload', field: 'delete_bucket' },
    { name: 'options sent as a JSON body (they would be ignored)', path: '/v1/admin/tenants/acme', code: 'invalid_payload', field: undefined, json: { dry_run: true, delete_objects: true } },
  ])('$name: 400 $code, nothing removed anywhere', async ({ path, code, field, json }: { path: string; code: string; field: string | undefined; json?: unknown }) => {
    const before = { acme: await stateOf('acme'), global: await globalState() };
    const reply = await api.request('DELETE', path, { headers: admin, json });
    expect({ status: reply.status, keys: Object.keys(reply.body), code: (reply.body.error as { code: string }).code, field: (reply.body.error as { field?: string }).field }).toEqual({ status: 400, keys: ['error'], code, field });
    expect({ acme: await stateOf('acme'), global: await globalState() }).toEqual(before);
  });
});

describe('an API without S3', () => {
  let bare: TestApi;
  beforeAll(async () => {
    bare = await startTestApi({ env: { TENANT_BUCKET_PREFIX: PREFIX } });
  });
  afterAll(async () => {
    await bare?.close();
  });

  it('delete_objects=true is 503 service_unavailable (dry run too); the rows alone can go', async () => {
    for (const path of ['/v1/admin/tenants/acme?delete_objects=true', '/v1/admin/tenants/acme?delete_objects=true&dry_run=true']) {
      const reply = await bare.request('DELETE', path);
      expect({ path, status: reply.status, code: (reply.body.error as { code: string }).code }).toEqual({ path, status: 503, code: 'service_unavailable' });
    }
    await upsertTenantScene(bare.db, { tenantId: 'acme', sceneId: testProductName(0), bucket: bucketOf('acme'), bands: { B04: 'k' } });
    const rows = await bare.request('DELETE', '/v1/admin/tenants/acme');
    expect({ status: rows.status, scenes: rows.body.tenant_scenes, objects: rows.body.objects }).toEqual({ status: 200, scenes: { deleted: 1, band_objects: 1 }, objects: null });
  });
});
