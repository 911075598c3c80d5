/**
 * Issue 5 — every metric and label the alert rules (`deploy/prometheus/alerts.yml`) select is one
 * the code really exports. Real processes' registries on real services: the API (`startTestApi`:
 * its own database, Redis, a readiness check against a closed port so `/readyz` really answers
 * 503) scraped over HTTP after real requests, and a worker's `WorkerMetrics` with its real
 * scrape-time sources (the BullMQ queue in Redis, the upstream slots in Postgres' `pg_locks`),
 * after recording one of each event it counts.
 *
 * For every selector: the metric is exported by the API or the worker (`up` is Prometheus' own;
 * histogram series `_bucket`/`_sum`/`_count` by their histogram); every label it matches on is a
 * label of that metric's samples (`job` and `instance` are added by Prometheus); an `=` value is
 * one a sample carries, and an `=~` regex matches one. Grouping labels (`by (…)`) are labels of a
 * metric the expression selects.
 */
import { AdvisoryLocks } from '@scenecache/db';
import { createLogger } from '@scenecache/core';
import { parseMetricSamples, type MetricSample } from '@scenecache/testing';
import { startTestApi, type TestApi } from '../../apps/api/test/helpers.js';
import { WorkerMetrics } from '../../apps/worker/src/worker-metrics.js';
import { allRules, analyzePromql, histogramBase, loadRuleGroups, type LabelMatcher, type Selector } from './alert-rules.js';

/** Labels Prometheus attaches to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance']);
const rules = allRules(loadRuleGroups());

/** A process's exposition: metric families declared (`# TYPE`) and samples. */
interface Exposition {
  declared: Map<string, string>;
  samples: MetricSample[];
}

function readExposition(text: string): Exposition {
  const declared = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const));
  return { declared, samples: parseMetricSamples(text) };
}

let api: TestApi;
let locks: AdvisoryLocks;
let exported: Exposition;

beforeAll(async () => {
  api = await startTestApi({
    // A real failing dependency (nothing listens on port 1): /readyz answers 503, as in an outage.
    checks: { s3: (signal) => fetch('http://127.0.0.1:1/', { signal }) },
    // A cache budget, so the API exports it (scenecache_global_cache_budget_bytes is absent without one).
    env: { GLOBAL_CACHE_MAX_BYTES: '5000000000000' },
  });
  // Requests whose answers the rules select on: a probe, a failing probe, a /v1 route.
  expect((await api.request('GET', '/healthz')).status).toBe(200);
  expect((await api.request('GET', '/readyz')).status).toBe(503);
  expect((await api.request('GET', '/v1/fleet')).status).toBe(200);
  const apiExposition = readExposition(await (await fetch(`${api.baseUrl}/metrics`)).text());

  locks = new AdvisoryLocks({ connectionString: api.databaseUrl!, maxConnections: 2 });
  const worker = new WorkerMetrics({
    queue: api.queue,
    upstreamSlotsInUse: () => locks.upstreamSlotsInUse(api.settings.upstreamConcurrency),
    upstreamSlotsLimit: api.settings.upstreamConcurrency,
    logger: createLogger('alerts-test', 'silent'),
  });
  // One of each event the worker counts, through its recording methods (labelled series appear
  // on first use).
  worker.jobCompleted({ cache_status: 'downloaded', duration_ms: 1_500, bytes_copied: 100 });
  worker.jobCompleted({ cache_status: 'reused', duration_ms: 20, bytes_copied: 100 });
  worker.jobFailed();
  worker.lockWait('scene');
  worker.lockWait('upstream-slot');
  worker.lockWait('upstream-budget');
  worker.rateLimited();
  worker.upstreamFile(100);
  const workerExposition = readExposition(await worker.scrape());

  exported = {
    declared: new Map([...apiExposition.declared, ...workerExposition.declared]),
    samples: [...apiExposition.samples, ...workerExposition.samples],
  };
}, 60_000);

afterAll(async () => {
  await locks?.close();
  await api?.close();
});

/** Samples of the series `name` (a histogram's `_bucket`/`_sum`/`_count` are series of their own). */
function samplesOf(name: string): MetricSample[] {
  return exported.samples.filter((s) => s.name === name);
}

function isExported(name: string): boolean {
  if (exported.declared.has(name)) return true;
  const base = histogramBase(name);
  return base !== name && exported.declared.get(base) === 'histogram';
}

/** Why `matcher` cannot select anything on `name`, or undefined when it can. */
function matcherProblem(name: string, matcher: LabelMatcher): string | undefined {
  if (TARGET_LABELS.has(matcher.label)) return undefined;
  const samples = samplesOf(name);
  const values = samples.map((s) => s.labels[matcher.label]).filter((v): v is string => v !== undefined);
  if (values.length === 0) return `${name} has no label ${matcher.label} (labels: ${[...new Set(samples.flatMap((s) => Object.keys(s.labels)))].join(', ')})`;
  if (matcher.op === '=' && !values.includes(matcher.value)) return `${name}{${matcher.label}="${matcher.value}"} matches no sample (values: ${[...new Set(values)].join(', ')})`;
  if (matcher.op === '=~' && !values.some((v) => new RegExp(`^(?:${matcher.value})$`).test(v))) return `${name}{${matcher.label}=~"${matcher.value}"} matches no sample`;
  return undefined;
}

describe('the alert rules select metrics the code exports', () => {
  it('the API and the worker exposition include every scenecache metric of the README', () => {
    for (const name of [
      'scenecache_jobs_total',
      'scenecache_job_duration_seconds',
      'scenecache_upstream_bytes_total',
      'scenecache_upstream_files_total',
      'scenecache_delivered_bytes_total',
      'scenecache_lock_waits_total',
      'scenecache_upstream_rate_limited_total',
      'scenecache_upstream_slots_in_use',
      'scenecache_upstream_slots_limit',
      'scenecache_upstream_window_bytes',
      'scenecache_upstream_budget_bytes',
      'scenecache_queue_jobs',
      'scenecache_jobs_enqueued_total',
      'scenecache_http_requests_total',
      'scenecache_http_request_duration_seconds',
      'scenecache_global_cache_bytes',
      'scenecache_global_cache_budget_bytes',
      'scenecache_cache_evictions_total',
      'scenecache_cache_expiries_total',
      'scenecache_cache_invalid_removed_total',
      'scenecache_cache_removed_bytes_total',
      'scenecache_cache_orphans_removed_total',
      'process_resident_memory_bytes',
    ]) {
      expect([name, exported.declared.has(name)]).toEqual([name, true]);
    }
    // The gauges read at scrape time have samples (Redis and Postgres answered); the queue gauge
    // comes from both processes.
    expect(samplesOf('scenecache_queue_jobs').map((s) => s.labels.state).sort()).toEqual(['active', 'active', 'delayed', 'delayed', 'prioritized', 'prioritized', 'waiting', 'waiting']);
    expect(samplesOf('scenecache_upstream_slots_in_use')).toEqual([{ name: 'scenecache_upstream_slots_in_use', labels: {}, value: 0 }]);
    // The transfer budget gauges come from the API (the window read from Postgres: none yet).
    expect(samplesOf('scenecache_upstream_window_bytes')).toEqual([{ name: 'scenecache_upstream_window_bytes', labels: {}, value: 0 }]);
    expect(samplesOf('scenecache_upstream_budget_bytes')).toEqual([{ name: 'scenecache_upstream_budget_bytes', labels: {}, value: api.settings.upstreamMonthlyBytes }]);
    // The global cache gauges come from the API (nothing cached yet; the budget as set).
    expect(samplesOf('scenecache_global_cache_bytes')).toEqual([{ name: 'scenecache_global_cache_bytes', labels: {}, value: 0 }]);
    expect(samplesOf('scenecache_global_cache_budget_bytes')).toEqual([{ name: 'scenecache_global_cache_budget_bytes', labels: {}, value: 5e12 }]);
  });

  const cases = rules.flatMap((rule) => analyzePromql(rule.expr).selectors.map((s) => [rule.alert, s.metric, s] as const));

  it('the rules select metrics at all', () => {
    expect(cases.length).toBeGreaterThan(20);
  });

  it.each(cases)('%s: %s', (_alert, metric, selector: Selector) => {
    if (metric === 'up') {
      // Prometheus' own series per target: only target labels.
      expect(selector.matchers.every((m) => TARGET_LABELS.has(m.label))).toBe(true);
      return;
    }
    expect([metric, isExported(metric)]).toEqual([metric, true]);
    expect(selector.matchers.map((m) => matcherProblem(metric, m)).filter(Boolean)).toEqual([]);
  });

  it.each(rules.map((r) => [r.alert, r.expr] as const))('%s: grouping labels exist on the metrics it selects', (_alert, expr) => {
    const shape = analyzePromql(expr);
    const labels = new Set([...TARGET_LABELS, ...shape.selectors.flatMap((s) => samplesOf(s.metric).flatMap((x) => Object.keys(x.labels)))]);
    expect(shape.groupingLabels.filter((l) => !labels.has(l))).toEqual([]);
  });

  it('a selector on a metric or label the code does not export is caught', () => {
    expect(isExported('scenecache_jobs_failed_total')).toBe(false);
    expect(isExported('scenecache_http_request_duration_seconds_bucket')).toBe(true);
    expect(isExported('scenecache_jobs_total_bucket')).toBe(false);
    expect(matcherProblem('scenecache_jobs_total', { label: 'state', op: '=', value: 'failed' })).toMatch(/has no label state/);
    expect(matcherProblem('scenecache_jobs_total', { label: 'status', op: '=', value: 'error' })).toMatch(/matches no sample/);
    expect(matcherProblem('scenecache_http_requests_total', { label: 'route', op: '=', value: '/ready' })).toMatch(/matches no sample/);
    expect(matcherProblem('scenecache_http_requests_total', { label: 'status_code', op: '=~', value: '5..' })).toBeUndefined();
  });
});
