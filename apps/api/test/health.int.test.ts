import { createLogger } from '@scenecache/core';
import { startTestS3, type TestS3 } from '@scenecache/testing';
import { createS3Client, ObjectStore } from '@scenecache/storage';
import { CLOSED_REDIS_URL, L2A, startTestApi, type TestApi } from './helpers.js';

let s3: TestS3;
let bucket: string;

beforeAll(async () => {
  s3 = await startTestS3();
  bucket = s3.uniqueBucket('global');
  await s3.store.ensureBucket(bucket);
});
afterAll(async () => {
  await s3.close();
});

/** The readiness check main.ts wires: HeadObject of a probe key in the global bucket. */
function s3Check(store: ObjectStore) {
  return () => store.headObject(bucket, '.scenecache-readyz');
}

describe('with every dependency up', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ checks: { s3: s3Check(s3.store) } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('GET /healthz: 200 ok', async () => {
    const res = await api.request('GET', '/healthz');
    expect(res).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('GET /readyz: 200 with every check ok', async () => {
    const res = await api.request('GET', '/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'ok', s3: 'ok' } });
  });

  it('keeps a sane X-Request-Id and replaces a bad one', async () => {
    const kept = await api.request('GET', '/healthz', { headers: { 'x-request-id': 'trace-123' } });
    expect(kept.headers['x-request-id']).toBe('trace-123');
    const replaced = await api.request('GET', '/healthz', { headers: { 'x-request-id': 'x'.repeat(500) } });
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('fails readiness once shutdown started, and stays live', async () => {
    const other = await startTestApi();
    try {
      other.app.readiness.beginShutdown();
      const res = await other.request('GET', '/readyz');
      expect(res).toMatchObject({ status: 503, body: { status: 'shutting_down' } });
      expect((await other.request('GET', '/healthz')).status).toBe(200);
    } finally {
      await other.close();
    }
  });
});

describe('with S3 unreachable', () => {
  it('GET /readyz: 503 naming s3', async () => {
    const client = createS3Client({ ...s3.settings, s3Endpoint: 'http://127.0.0.1:1' });
    const api = await startTestApi({ checks: { s3: s3Check(new ObjectStore(client, { logger: createLogger('t', 'silent') })) } });
    try {
      const res = await api.request('GET', '/readyz');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ status: 'failing', checks: { postgres: 'ok', redis: 'ok', s3: 'fail' }, errors: { s3: expect.any(String) as string } });
      // Enqueueing does not need S3.
      expect((await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A } })).status).toBe(202);
    } finally {
      await api.close();
      client.destroy();
    }
  });
});

describe('with Redis unreachable', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ redisUrl: CLOSED_REDIS_URL, checks: { s3: s3Check(s3.store) } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('GET /readyz: 503 naming redis, quickly', async () => {
    const started = Date.now();
    const res = await api.request('GET', '/readyz');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ status: 'failing', checks: { postgres: 'ok', redis: 'fail', s3: 'ok' } });
  });

  it('POST /v1/downloads: 503 service_unavailable in under 5 s, and no row left behind', async () => {
    const started = Date.now();
    const res = await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A } });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
    expect(res.body).toEqual({ error: { code: 'service_unavailable', message: expect.stringContaining('Redis') as string } });
    expect(await api.rowCount()).toBe(0);
  });

  it('POST /v1/downloads/batch: 503, no rows left behind', async () => {
    const res = await api.request('POST', '/v1/downloads/batch', { json: { jobs: [{ tenant_id: 'acme', scene_id: L2A }, { tenant_id: 'globex', scene_id: L2A }] } });
    expect(res.status).toBe(503);
    expect(await api.rowCount()).toBe(0);
  });

  it('still answers 400 for bad input (validation needs no dependency)', async () => {
    const res = await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A, bands: ['B10'] } });
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'band_not_in_level', field: 'bands[0]' } } });
  });

  it('reads still work from Postgres', async () => {
    const res = await api.request('GET', '/v1/downloads?tenant_id=acme');
    expect(res).toMatchObject({ status: 200, body: { items: [], next_cursor: null } });
  });
});
