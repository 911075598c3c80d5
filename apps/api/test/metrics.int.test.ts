/**
 * Issue 4, item 5 — the API's Prometheus `GET /metrics` on real Postgres and Redis: the text
 * exposition format, jobs enqueued (single and batch; an idempotent repeat counts nothing), the
 * queue depth by state read from Redis at scrape time, and HTTP requests by route and status.
 * Issue 11 — the CDSE transfer window (bytes started in the last 30 days, read from Postgres at
 * scrape time) and its budget (UPSTREAM_MONTHLY_BYTES); NaN, not a failed scrape, when Postgres
 * does not answer.
 * Issue 15 — the global cache's registered bytes (read from Postgres at scrape time) and its budget
 * (GLOBAL_CACHE_MAX_BYTES, exported only when set); the maintenance counters the API's own runs
 * count, at 0 from the start (cache-lifecycle.int.test.ts counts a run).
 */
import { CACHE_MAINTENANCE_COUNTERS } from '@scenecache/core';
import { createDb, registerBands } from '@scenecache/db';
import { insertUpstreamTransfers, metricValue, parseMetricSamples, type MetricSample } from '@scenecache/testing';
import { CLOSED_REDIS_URL, L1C, L2A, startTestApi, type TestApi } from './helpers.js';

const DAY_MS = 86_400_000;

describe('API /metrics', () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.close();
  });

  async function scrape(): Promise<{ contentType: string | null; text: string; samples: MetricSample[] }> {
    const res = await fetch(`${api.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    return { contentType: res.headers.get('content-type'), text, samples: parseMetricSamples(text) };
  }

  it('is the Prometheus text format, with default metrics and an empty queue', async () => {
    const { contentType, text, samples } = await scrape();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8/);
    expect(text).toContain('# TYPE scenecache_jobs_enqueued_total counter');
    expect(text).toContain('# TYPE scenecache_queue_jobs gauge');
    expect(metricValue(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(metricValue(samples, 'scenecache_jobs_enqueued_total')).toBe(0);
    for (const state of ['waiting', 'delayed', 'prioritized', 'active']) expect(metricValue(samples, 'scenecache_queue_jobs', { state })).toBe(0);
    expect(text).toContain('# TYPE scenecache_upstream_window_bytes gauge');
    expect(text).toContain('# TYPE scenecache_upstream_budget_bytes gauge');
    expect(metricValue(samples, 'scenecache_upstream_window_bytes')).toBe(0);
    expect(metricValue(samples, 'scenecache_upstream_budget_bytes')).toBe(12e12);
    // The global cache: nothing registered, no budget set (so no budget gauge), no maintenance run yet.
    expect(text).toContain('# TYPE scenecache_global_cache_bytes gauge');
    expect(metricValue(samples, 'scenecache_global_cache_bytes')).toBe(0);
    expect(text).not.toContain('scenecache_global_cache_budget_bytes');
    for (const counter of Object.values(CACHE_MAINTENANCE_COUNTERS)) {
      expect(text).toContain(`# TYPE ${counter.name} counter`);
      expect([counter.name, metricValue(samples, counter.name)]).toEqual([counter.name, 0]);
    }
  });

  it('counts enqueued jobs and shows them in the queue depth', async () => {
    const single = await api.request('POST', '/v1/downloads', { json: { tenant_id: 'm1', scene_id: L2A, bands: ['B04'] }, headers: { 'idempotency-key': 'metrics-1' } });
    expect(single.status).toBe(202);
    // The same key again: the same job, nothing new enqueued.
    const repeat = await api.request('POST', '/v1/downloads', { json: { tenant_id: 'm1', scene_id: L2A, bands: ['B04'] }, headers: { 'idempotency-key': 'metrics-1' } });
    expect(repeat.status).toBe(200);
    const prioritized = await api.request('POST', '/v1/downloads', { json: { tenant_id: 'm1', scene_id: L1C, bands: ['B02'], priority: 5 } });
    expect(prioritized.status).toBe(202);
    const batch = await api.request('POST', '/v1/downloads/batch', {
      json: { jobs: [{ tenant_id: 'm2', scene_id: L2A }, { tenant_id: 'm3', scene_id: L1C, bands: ['B08'] }] },
    });
    expect(batch.status).toBe(202);

    const { samples } = await scrape();
    expect(metricValue(samples, 'scenecache_jobs_enqueued_total')).toBe(4);
    // No worker runs: three jobs wait, one is prioritized.
    expect(metricValue(samples, 'scenecache_queue_jobs', { state: 'waiting' })).toBe(3);
    expect(metricValue(samples, 'scenecache_queue_jobs', { state: 'prioritized' })).toBe(1);
    expect(metricValue(samples, 'scenecache_queue_jobs', { state: 'delayed' })).toBe(0);
    expect(metricValue(samples, 'scenecache_queue_jobs', { state: 'active' })).toBe(0);

    // Requests by route pattern and status, with their durations.
    const post = { method: 'POST', route: '/v1/downloads' };
    expect(metricValue(samples, 'scenecache_http_requests_total', { ...post, status_code: '202' })).toBe(2);
    expect(metricValue(samples, 'scenecache_http_requests_total', { ...post, status_code: '200' })).toBe(1);
    expect(metricValue(samples, 'scenecache_http_requests_total', { method: 'POST', route: '/v1/downloads/batch', status_code: '202' })).toBe(1);
    expect(metricValue(samples, 'scenecache_http_request_duration_seconds_count', { ...post, status_code: '202' })).toBe(2);
    expect(metricValue(samples, 'scenecache_http_request_duration_seconds_sum', { ...post, status_code: '202' })).toBeGreaterThan(0);
    // The first scrape was counted too.
    expect(metricValue(samples, 'scenecache_http_requests_total', { method: 'GET', route: '/metrics', status_code: '200' })).toBe(1);
  });

  it('labels unknown paths "unmatched" and bad input by its status, and counts no enqueue for it', async () => {
    expect((await api.request('GET', '/no/such/path')).status).toBe(404);
    expect((await api.request('POST', '/v1/downloads', { json: { tenant_id: 'm1', scene_id: 'not-a-product' } })).status).toBe(400);
    const { samples } = await scrape();
    expect(metricValue(samples, 'scenecache_http_requests_total', { method: 'GET', route: 'unmatched', status_code: '404' })).toBe(1);
    expect(metricValue(samples, 'scenecache_http_requests_total', { method: 'POST', route: '/v1/downloads', status_code: '400' })).toBe(1);
    expect(metricValue(samples, 'scenecache_jobs_enqueued_total')).toBe(4);
  });

  it('reads the bytes the global cache registers at every scrape, valid and invalid rows', async () => {
    const band = (key: string, size: number) => ({ key, size, sha3_256: '0'.repeat(64), etag: 'e', safe_path: key, registered_at: '2026-12-01T00:00:00.000Z' });
    await registerBands(api.db, { sceneId: L2A, storageBucket: 'g', storagePath: 'p/l2a', sensingDate: '2024-03-24', level: 'L2A', tile: '32TNS', mission: 'S2B', cdseProductId: null, bands: { B04: band('p/l2a/B04', 130_000_123), B08: band('p/l2a/B08', 5) } });
    expect(metricValue((await scrape()).samples, 'scenecache_global_cache_bytes')).toBe(130_000_128);
    await registerBands(api.db, { sceneId: L1C, storageBucket: 'g', storagePath: 'p/l1c', sensingDate: '2024-03-24', level: 'L1C', tile: '32TNS', mission: 'S2A', cdseProductId: null, bands: { B02: band('p/l1c/B02', 1_000) } });
    await api.db.updateTable('global_scene_cache').set({ is_valid: false }).where('scene_id', '=', L1C).execute();
    expect(metricValue((await scrape()).samples, 'scenecache_global_cache_bytes')).toBe(130_001_128);
    await api.db.deleteFrom('global_scene_cache').execute();
  });

  it('reads the transfer window from Postgres at every scrape: the last 30 days only', async () => {
    const t0 = Date.now();
    await insertUpstreamTransfers(api.db, [
      { bytes: 7_000_000_000_000, startedAt: new Date(t0 - 30 * DAY_MS - 60_000) },
      { bytes: 2_500_000_000_000, startedAt: new Date(t0 - 20 * DAY_MS) },
      { bytes: 135_500_000, startedAt: new Date(t0 - 60_000) },
    ]);
    expect(metricValue((await scrape()).samples, 'scenecache_upstream_window_bytes')).toBe(2_500_135_500_000);
    await insertUpstreamTransfers(api.db, [{ bytes: 31_000_000, startedAt: new Date(t0) }]);
    const { samples } = await scrape();
    expect(metricValue(samples, 'scenecache_upstream_window_bytes')).toBe(2_500_166_500_000);
    expect(metricValue(samples, 'scenecache_upstream_budget_bytes')).toBe(12e12);
    await api.db.deleteFrom('upstream_transfers').execute();
  });

  it('answers without the queue depth, instead of hanging, while Redis has never been reachable', async () => {
    const offline = await startTestApi({ redisUrl: CLOSED_REDIS_URL });
    try {
      const res = await fetch(`${offline.baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      const samples = parseMetricSamples(await res.text());
      expect(samples.filter((s) => s.name === 'scenecache_queue_jobs')).toEqual([]);
      expect(metricValue(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    } finally {
      await offline.close();
    }
  });

  it('exports the configured UPSTREAM_MONTHLY_BYTES and GLOBAL_CACHE_MAX_BYTES, and NaN for the window and the cache bytes while Postgres does not answer', async () => {
    const offline = await startTestApi({
      db: createDb('postgres://root@127.0.0.1:1/scenecache', { max: 2, connectionTimeoutMillis: 1_000 }),
      env: { UPSTREAM_MONTHLY_BYTES: '5000000000000', GLOBAL_CACHE_MAX_BYTES: '2000000000000' },
    });
    try {
      const res = await fetch(`${offline.baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      const samples = parseMetricSamples(await res.text());
      expect(metricValue(samples, 'scenecache_upstream_budget_bytes')).toBe(5e12);
      expect(metricValue(samples, 'scenecache_upstream_window_bytes')).toBeNaN();
      // The cache budget is a setting, exported as set; the registered bytes are unknown: NaN.
      expect(metricValue(samples, 'scenecache_global_cache_budget_bytes')).toBe(2e12);
      expect(metricValue(samples, 'scenecache_global_cache_bytes')).toBeNaN();
      // Redis answers: the queue gauge is unaffected.
      expect(metricValue(samples, 'scenecache_queue_jobs', { state: 'waiting' })).toBe(0);
    } finally {
      await offline.close();
    }
  });
});
