/**
 * Issue 4, item 5 — the worker's Prometheus `/metrics`, on real services (Postgres, Redis, s3rver,
 * cdse-sim; no mocks). A real worker process (`apps/worker/dist/main.js`) runs one job that
 * downloads two bands (one 429 absorbed on the way) and one job of another tenant that reuses
 * them; its `/metrics` must then report exactly that: the jobs by status and cache_status, their
 * duration histogram, the upstream bytes and files the sim served, the bytes delivered to tenants
 * (= the jobs' bytes_copied), the 429, and the scrape-time gauges (queue depth by state, upstream
 * slots in use and their limit) next to the default process metrics.
 */
import { readFileSync } from 'node:fs';
import { findBandFile, parseProductName, resolveBand } from '@scenecache/core';
import { WORKER_HTTP_PATHS } from '../src/health-server.js';
import { startPipelineHarness, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';
import { freePort, metricValue, parseMetricSamples } from '@scenecache/testing';

const SCENE = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const BANDS = ['B04', 'B03'];

describe('worker /metrics', () => {
  let h: PipelineHarness;
  let worker: SpawnedWorker;
  let port: number;

  beforeAll(async () => {
    // A budget, so the API exports scenecache_global_cache_budget_bytes too.
    h = await startPipelineHarness({ env: { GLOBAL_CACHE_MAX_BYTES: String(10 ** 12) } });
    port = await freePort();
    worker = h.spawnWorker({ WORKER_METRICS_PORT: String(port) });
    await worker.waitForLog((l) => l.msg === 'health endpoint listening', 30_000);
  }, 60_000);

  afterAll(async () => {
    await h?.close();
  }, 60_000);

  it('has every labelled series at 0 from the start, so the first failure shows in increase()', async () => {
    const samples = parseMetricSamples(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    const series = (name: string) => samples.filter((s) => s.name === name).map((s) => ({ labels: s.labels, value: s.value }));
    expect(series('scenecache_jobs_total')).toEqual(
      expect.arrayContaining([
        { labels: { status: 'completed', cache_status: 'reused' }, value: 0 },
        { labels: { status: 'completed', cache_status: 'downloaded' }, value: 0 },
        { labels: { status: 'failed', cache_status: 'none' }, value: 0 },
      ]),
    );
    expect(series('scenecache_jobs_total')).toHaveLength(3);
    expect(series('scenecache_lock_waits_total').map((s) => [s.labels.reason, s.value]).sort()).toEqual([['band', 0], ['scene', 0], ['upstream-budget', 0], ['upstream-slot', 0]]);
    for (const cacheStatus of ['reused', 'downloaded']) expect(metricValue(samples, 'scenecache_job_duration_seconds_count', { cache_status: cacheStatus })).toBe(0);
  });

  it('reports a download job and a reuse job exactly', async () => {
    const level = parseProductName(SCENE).level;
    const files = await h.sim.productFiles(SCENE);
    const bandFiles = BANDS.map((b) => findBandFile(files, resolveBand(level, b))!);
    // One 429 on the first band file: absorbed by the client's backoff, but counted.
    h.sim.addFault({ kind: 'status429', retryAfterSeconds: 0, count: 1, product: SCENE, file: resolveBand(level, 'B04').fileSuffix });

    const first = await h.enqueue({ tenant_id: 'metrics-a', scene_id: SCENE, bands: BANDS });
    expect(first.status).toBe(202);
    const [downloaded] = await h.waitForJobs([first.body.job_id!]);
    const second = await h.enqueue({ tenant_id: 'metrics-b', scene_id: SCENE, bands: BANDS });
    expect(second.status).toBe(202);
    const [reused] = await h.waitForJobs([second.body.job_id!]);
    expect([downloaded!.status, downloaded!.cache_status]).toEqual(['completed', 'downloaded']);
    expect([reused!.status, reused!.cache_status]).toEqual(['completed', 'reused']);

    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const samples = parseMetricSamples(text);
    const v = (name: string, labels: Record<string, string> = {}) => metricValue(samples, name, labels);

    // Jobs by status and cache_status; no failure.
    expect(v('scenecache_jobs_total', { status: 'completed', cache_status: 'downloaded' })).toBe(1);
    expect(v('scenecache_jobs_total', { status: 'completed', cache_status: 'reused' })).toBe(1);
    expect(v('scenecache_jobs_total', { status: 'failed', cache_status: 'none' })).toBe(0);

    // Duration histogram: one observation per cache_status, its sum the job's duration_ms.
    for (const row of [downloaded!, reused!]) {
      const cs = { cache_status: row.cache_status! };
      expect(v('scenecache_job_duration_seconds_count', cs)).toBe(1);
      expect(v('scenecache_job_duration_seconds_sum', cs)).toBeCloseTo(row.duration_ms! / 1000, 3);
      expect(v('scenecache_job_duration_seconds_bucket', { ...cs, le: '+Inf' })).toBe(1);
    }

    // Upstream: exactly the bytes and files the sim served, and the manifest's sizes.
    const sim = h.sim.counters();
    const manifestBytes = bandFiles.reduce((sum, f) => sum + f.size, 0);
    expect(sim.totals.bytes).toBe(manifestBytes);
    expect(v('scenecache_upstream_bytes_total')).toBe(sim.totals.bytes);
    expect(v('scenecache_upstream_bytes_total')).toBe(Number(downloaded!.bytes_downloaded));
    expect(v('scenecache_upstream_files_total')).toBe(BANDS.length);
    expect(sim.faultsApplied.status429).toBe(1);
    expect(v('scenecache_upstream_rate_limited_total')).toBe(1);

    // Delivered to tenants: the sum of the jobs' bytes_copied (both tenants got every band).
    expect(v('scenecache_delivered_bytes_total')).toBe(Number(downloaded!.bytes_copied) + Number(reused!.bytes_copied));
    expect(v('scenecache_delivered_bytes_total')).toBe(2 * manifestBytes);

    // One job at a time: nobody waited.
    expect(samples.filter((s) => s.name === 'scenecache_lock_waits_total').map((s) => s.value)).toEqual([0, 0, 0, 0]);

    // Scrape-time gauges: the queue is drained, no slot is held, the limit is the setting.
    for (const state of ['waiting', 'delayed', 'prioritized', 'active']) expect(v('scenecache_queue_jobs', { state })).toBe(0);
    expect(v('scenecache_upstream_slots_in_use')).toBe(0);
    expect(v('scenecache_upstream_slots_limit')).toBe(h.settings.upstreamConcurrency);

    // Default process metrics are there; the help texts are too.
    expect(v('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(text).toContain('# TYPE scenecache_jobs_total counter');
    expect(text).toContain('# TYPE scenecache_job_duration_seconds histogram');
    expect(text).toContain('# TYPE scenecache_queue_jobs gauge');

    // The probes still answer next to it.
    expect((await fetch(`http://127.0.0.1:${port}${WORKER_HTTP_PATHS.liveness}`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}${WORKER_HTTP_PATHS.readiness}`)).status).toBe(200);
  }, 90_000);

  it('shows queued jobs in the queue-depth gauge', async () => {
    // Jobs the worker cannot pick up yet: delayed by hand in the queue the worker reads.
    await h.queue.add('probe', { tenant_id: 'metrics-c', scene_id: SCENE, bands: BANDS, enqueued_at: new Date().toISOString() }, { delay: 60_000, jobId: 'metrics-probe' });
    const samples = parseMetricSamples(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    expect(metricValue(samples, 'scenecache_queue_jobs', { state: 'delayed' })).toBe(1);
    await h.queue.remove('metrics-probe');
  }, 30_000);

  it('exports every metric the Grafana dashboard and the README name (worker or API)', async () => {
    const declared = async (url: string) => new Set([...(await (await fetch(url)).text()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const exported = new Set([...(await declared(`http://127.0.0.1:${port}/metrics`)), ...(await declared(`${h.apiUrl}/metrics`))]);
    const base = (name: string) => name.replace(/_(bucket|count|sum)$/, '');
    const namesIn = (text: string) => new Set([...text.matchAll(/\bscenecache_[a-z_]+/g)].map((m) => base(m[0])));

    const dashboard = readFileSync(new URL('../../../docs/grafana/scenecache-dashboard.json', import.meta.url), 'utf8');
    const exprs = (JSON.parse(dashboard) as { panels: { targets?: { expr: string }[] }[] }).panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const queried = namesIn(exprs.join('\n'));
    expect(queried.size).toBeGreaterThanOrEqual(10);
    expect([...queried].filter((n) => !exported.has(n))).toEqual([]);

    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Metrics'));
    const documented = namesIn(section.slice(0, section.indexOf('\n## ', 4) === -1 ? undefined : section.indexOf('\n## ', 4)));
    expect([...exported].filter((n) => n.startsWith('scenecache_') && !documented.has(n))).toEqual([]);
    expect([...documented].filter((n) => !exported.has(n))).toEqual([]);
  }, 30_000);
});
