/**
 * The dashboard at `/` in real headless Chromium (Debian's `chromium`, driven by playwright-core)
 * against the API on real Postgres and Redis, with data seeded through the real repositories, a
 * real upstream-slot advisory lock, dated `upstream_transfers` rows (the CDSE transfer budget) and
 * jobs enqueued through the API. The page must show exactly
 * what the API returns (the test fetches the same endpoints and compares), refresh on its own,
 * keep its last good figures through a Redis outage, and ask for a key when auth is on (a tenant
 * key sees its tenant only and gets the "needs an admin key" note for the most reused products and
 * the storage panel). The storage panel shows `GET /v1/cache/usage`: registered bytes against
 * GLOBAL_CACHE_MAX_BYTES, products, objects, the oldest last use.
 * Any page error, failed request or unexpected HTTP error fails the test. Screenshots go to
 * `.ci/out/` (a CI artifact).
 */
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import {
  AdvisoryLocks,
  createApiKey,
  recordCacheHit,
  registerBands,
  type CachedBand,
  type SceneLease,
} from '@scenecache/db';
import { insertFinishedJob, insertUpstreamTransfers, startTcpProxy, type TcpProxy } from '@scenecache/testing';
import { DASHBOARD_CSP } from '../src/dashboard/dashboard.routes.js';
import { launchChromium, waitForDashboardRefresh } from '../src/dashboard/dashboard-browser.js';
import { L1C, L2A, startTestApi, TEST_REDIS_URL, type TestApi } from './helpers.js';

/** `.ci/out/` of the repository (apps/api/test → ../../..). */
const CI_OUT = fileURLToPath(new URL('../../../.ci/out/', import.meta.url));
const L2A_OTHER = 'S2B_MSIL2A_20241123T224759_N0511_R101_T03VUL_20241123T230829';
const ADMIN_API_KEY = 'dashboard-admin-key-0123456789';
/** GLOBAL_CACHE_MAX_BYTES of the open-mode API: 1 GB (the seeded scenes register 509 MB). */
const CACHE_BUDGET = 1e9;

const D1 = '2025-03-10';
const D2 = '2025-03-11';
// (2025-03-12: no finished job)
const D4 = '2025-03-13';

type Json = Record<string, unknown>;
type Outcome = { cache_status: 'reused' | 'downloaded'; bytes: number } | 'failed';

/** A job taken through the repositories to its end on `day`; enqueued a minute before it finished. */
async function finishedJob(api: TestApi, tenantId: string, day: string, minute: number, outcome: Outcome): Promise<string> {
  const finishedAt = new Date(`${day}T10:${String(minute).padStart(2, '0')}:00Z`);
  return insertFinishedJob(api.db, {
    tenantId,
    sceneId: L2A,
    finishedAt,
    enqueuedAt: new Date(finishedAt.getTime() - 60_000),
    outcome: outcome === 'failed' ? 'failed' : { cache_status: outcome.cache_status, bytes_downloaded: outcome.cache_status === 'downloaded' ? outcome.bytes : 0, bytes_copied: outcome.bytes },
    durationMs: 1_000 + minute,
    errorMessage: 'CDSE answered 502',
  });
}

const TENANTS = ['acme', 'globex', 'initech'];

const DAY_MS = 86_400_000;

/**
 * Upstream transfers dated from `t0` (ms): 3 TB started 20 days before, 1.5 TB 2 days before, and
 * 7 TB 40 days before (out of the 30-day window). Window 4.5 TB of the default 12 TB budget
 * (37.5 %); the window frees its oldest 3 TB 10 days after `t0`.
 */
async function seedTransfers(api: TestApi, t0: number): Promise<void> {
  await insertUpstreamTransfers(api.db, [
    { bytes: 7e12, startedAt: new Date(t0 - 40 * DAY_MS), tenantId: 'acme' },
    { bytes: 3e12, startedAt: new Date(t0 - 20 * DAY_MS), tenantId: 'globex' },
    { bytes: 1.5e12, startedAt: new Date(t0 - 2 * DAY_MS), tenantId: 'initech' },
  ]);
}

/**
 * 24 finished jobs on three days (a gap on the third): D1 1 downloaded (3 GB) + 5 reused (3 GB
 * each) + 1 failed; D2 2 downloaded (1 GB) + 6 reused (1 GB); D4 1 downloaded (200 MB) + 7 reused
 * (200 MB) + 1 failed. Totals: 22 requests, 18 reused, 4 downloaded, 2 failed, hit ratio 81.8%,
 * 5.20 GB downloaded, 27.6 GB delivered, 22.4 GB saved. Tenants take turns.
 */
async function seedJobs(api: TestApi): Promise<void> {
  const plan: Array<[string, Outcome[]]> = [
    [D1, [{ cache_status: 'downloaded', bytes: 3e9 }, ...Array<Outcome>(5).fill({ cache_status: 'reused', bytes: 3e9 }), 'failed']],
    [D2, [...Array<Outcome>(2).fill({ cache_status: 'downloaded', bytes: 1e9 }), ...Array<Outcome>(6).fill({ cache_status: 'reused', bytes: 1e9 })]],
    [D4, [{ cache_status: 'downloaded', bytes: 2e8 }, ...Array<Outcome>(7).fill({ cache_status: 'reused', bytes: 2e8 }), 'failed']],
  ];
  let n = 0;
  for (const [day, outcomes] of plan) {
    for (const [minute, outcome] of outcomes.entries()) await finishedJob(api, TENANTS[n++ % TENANTS.length]!, day, minute, outcome);
  }
}

function band(sceneId: string, id: string, size: number): CachedBand {
  return { key: `${sceneId}/${id}.jp2`, size, sha3_256: '0'.repeat(64), etag: '"e"', safe_path: `IMG_DATA/${id}.jp2`, registered_at: '2026-11-01T00:00:00.000Z' };
}

/** Cached scenes: L2A reused 5 times, L1C twice, L2A_OTHER never. */
async function seedScenes(api: TestApi): Promise<void> {
  const scenes: Array<[string, 'L1C' | 'L2A', string, string, Record<string, number>, number]> = [
    [L2A, 'L2A', '32TNS', '2024-03-24', { B04: 130e6, B08: 128e6 }, 5],
    [L1C, 'L1C', '32TNS', '2024-03-24', { B02: 120e6 }, 2],
    [L2A_OTHER, 'L2A', '03VUL', '2024-11-23', { B04: 131e6 }, 0],
  ];
  for (const [sceneId, level, tile, sensingDate, sizes, hits] of scenes) {
    await registerBands(api.db, {
      sceneId,
      storageBucket: 'scenecache-global',
      storagePath: `${sceneId}/`,
      sensingDate,
      level,
      tile,
      mission: sceneId.slice(0, 3),
      cdseProductId: null,
      bands: Object.fromEntries(Object.entries(sizes).map(([id, size]) => [id, band(sceneId, id, size)])),
    });
    for (let i = 0; i < hits; i++) await recordCacheHit(api.db, sceneId);
  }
}

/** What went wrong in the page: errors, failed requests, HTTP errors the test did not expect. */
class PageProblems {
  readonly problems: string[] = [];
  /** HTTP error statuses currently expected, by `METHOD path` regex. */
  allowed: Array<{ status: number; path: RegExp }> = [];

  constructor(page: Page) {
    page.on('pageerror', (err) => this.problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => this.problems.push(`request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText ?? ''}`));
    page.on('response', (res) => {
      if (res.status() >= 400 && !this.isAllowed(res.status(), res.url())) this.problems.push(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
    });
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'warning') return;
      // Chromium logs every HTTP error of a fetch ("Failed to load resource: … status of 401"):
      // those the test expects are not problems.
      const status = /status of (\d{3})/.exec(msg.text());
      if (status && this.isAllowed(Number(status[1]), msg.location().url)) return;
      this.problems.push(`console ${msg.type()}: ${msg.text()} (${msg.location().url})`);
    });
  }

  private isAllowed(status: number, url: string): boolean {
    const path = new URL(url).pathname + new URL(url).search;
    return this.allowed.some((a) => a.status === status && a.path.test(path));
  }
}

/** A JSON-able value computed in the page (a string expression: tests compile without the DOM library). */
async function inPage<T>(page: Page, expression: string): Promise<T> {
  return page.evaluate<T>(expression);
}

async function text(page: Page, testId: string): Promise<string | null> {
  return page.getByTestId(testId).textContent();
}

async function value(page: Page, testId: string): Promise<string | null> {
  return page.getByTestId(testId).getAttribute('data-value');
}

const rowIds = (page: Page, row: 'job-row' | 'scene-row', attribute: 'jobId' | 'sceneId') =>
  inPage<string[]>(page, `[...document.querySelectorAll('[data-testid="${row}"]')].map((r) => r.dataset.${attribute})`);

/** The chart's labels and data as Chart.js holds them, and how many canvas pixels are painted. */
interface ChartState {
  labels: string[];
  saved: number[];
  ratio: Array<number | null>;
  daysAttribute: string;
  paintedPixels: number;
}

const chartState = (page: Page) =>
  inPage<ChartState>(
    page,
    `(() => {
      const canvas = document.querySelector('[data-testid="per-day-chart"]');
      const chart = window.Chart.getChart(canvas);
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
      return { labels: chart.data.labels, saved: chart.data.datasets[0].data, ratio: chart.data.datasets[1].data, daysAttribute: canvas.dataset.days, paintedPixels: painted };
    })()`,
  );

/** The refresh period the open-mode test asks for (`?refresh=1`, seconds; the page's default is 5 s). */
const REFRESH_MS = 1_000;

/** Page script: pretend the tab became hidden or visible (as the browser does when switching tabs). */
const SET_VISIBILITY = (state: 'hidden' | 'visible') =>
  `Object.defineProperty(document, 'visibilityState', { value: '${state}', configurable: true }); document.dispatchEvent(new Event('visibilitychange'));`;

let browser: Browser;

beforeAll(async () => {
  // No skip: CI installs Debian's chromium (.ci/run); a missing browser is a failure with a clear message.
  browser = await launchChromium();
  mkdirSync(CI_OUT, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
});

describe('the dashboard in open dev mode', () => {
  let proxy: TcpProxy;
  let api: TestApi;
  let locks: AdvisoryLocks;
  const leases: SceneLease[] = [];
  /** When the transfers were dated from (ms). */
  const transfersT0 = Date.now();

  beforeAll(async () => {
    // Redis through a proxy, so the test can take it away from the API.
    const redisTarget = new URL(TEST_REDIS_URL);
    proxy = await startTcpProxy({ host: redisTarget.hostname, port: Number(redisTarget.port || 6379) });
    api = await startTestApi({ redisUrl: proxy.rewrite(TEST_REDIS_URL), env: { GLOBAL_CACHE_MAX_BYTES: String(CACHE_BUDGET), CACHE_UNUSED_TTL_DAYS: '60' } });
    await api.queue.waitUntilReady();
    await seedJobs(api);
    await seedScenes(api);
    await seedTransfers(api, transfersT0);
    // Two jobs enqueued through the API: queued rows, waiting in the queue (no worker runs).
    for (const tenant of ['acme', 'globex']) {
      expect((await api.request('POST', '/v1/downloads', { json: { tenant_id: tenant, scene_id: L1C, bands: ['B02'] } })).status).toBe(202);
    }
    // One upstream slot held, the way a downloading worker holds it.
    locks = new AdvisoryLocks({ connectionString: api.databaseUrl!, maxConnections: 4 });
    const lease = (await locks.tryAcquireScene(L2A_OTHER))!;
    leases.push(lease);
    expect(await lease.tryAcquireUpstreamSlot(4)).toEqual(expect.any(Number));
  });
  afterAll(async () => {
    await Promise.all(leases.map((l) => l.release()));
    await locks?.close();
    await proxy?.up();
    await api?.close();
    await proxy?.close();
  });

  it('serves the page and its assets with the CSP, hidden from the OpenAPI document', async () => {
    const page = await fetch(`${api.baseUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    expect(await page.text()).toContain('data-testid="per-day-chart"');
    for (const [path, type] of [['/dashboard/dashboard.js', /javascript/], ['/dashboard/format.js', /javascript/], ['/dashboard/dashboard.css', /text\/css/], ['/dashboard/vendor/chart.umd.js', /javascript/]] as const) {
      const res = await fetch(`${api.baseUrl}${path}`);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect(res.headers.get('content-type')).toMatch(type);
    }
    // Only the files that exist; index.html only at `/`; unknown paths keep the API's JSON 404.
    for (const path of ['/dashboard/index.html', '/dashboard/../package.json', '/dashboard/vendor/chart.js', '/nothing-here']) {
      const res = await fetch(`${api.baseUrl}${path}`);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
    const doc = (await (await fetch(`${api.baseUrl}/docs/json`)).json()) as { paths: Json };
    expect(Object.keys(doc.paths).filter((p) => p === '/' || p.startsWith('/dashboard'))).toEqual([]);
  });

  it('shows the figures the API returns, refreshes on its own, and keeps them through an outage', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = new PageProblems(page);
    try {
      await page.goto(`${api.baseUrl}/?refresh=${REFRESH_MS / 1000}`);
      let refreshes = await waitForDashboardRefresh(page);
      expect(await page.locator('#refresh-period').textContent()).toBe('1');

      const stats = (await api.request('GET', '/v1/cache/stats')).body as { totals: Json; per_day: Array<Json & { day: string }> };
      const fleet = (await api.request('GET', '/v1/fleet')).body as {
        queue: Record<string, number>;
        upstream_slots: { in_use: number; limit: number };
        upstream_budget: { window_bytes: number; budget_bytes: number; used_ratio: number; frees_at: string | null };
      };
      const jobs = (await api.request('GET', '/v1/downloads?limit=20')).body as { items: Array<{ job_id: string }> };
      const scenes = (await api.request('GET', '/v1/cache/scenes?order=most_reused&limit=10')).body as { items: Array<{ scene_id: string; download_count: number }> };

      // Cards: the raw figure equals the API's, the text is its human form.
      expect(stats.totals).toMatchObject({ requests: 22, reused: 18, downloaded: 4, failed: 2, bytes_downloaded: 5.2e9, bytes_delivered: 27.6e9, bytes_saved: 22.4e9 });
      const cards: Array<[string, string, string]> = [
        ['total-requests', 'requests', '22'],
        ['total-hit-ratio', 'hit_ratio', '81.8%'],
        ['total-reused', 'reused', '18'],
        ['total-downloaded', 'downloaded', '4'],
        ['total-bytes-downloaded', 'bytes_downloaded', '5.20 GB'],
        ['total-bytes-delivered', 'bytes_delivered', '27.6 GB'],
        ['total-bytes-saved', 'bytes_saved', '22.4 GB'],
      ];
      for (const [testId, field, shown] of cards) {
        expect({ testId, value: await value(page, testId), text: await text(page, testId) }).toEqual({ testId, value: String(stats.totals[field]), text: shown });
      }
      // Completed jobs by cache_status: one definition with the cards — reused's share of the
      // completed jobs is the hit ratio, to the same digit; failed is a share of all finished.
      for (const status of ['reused', 'downloaded', 'failed']) expect(await value(page, `status-${status}`)).toBe(String(stats.totals[status]));
      expect(await text(page, 'status-reused-pct')).toBe(await text(page, 'total-hit-ratio'));
      expect(await text(page, 'status-reused-pct')).toBe('81.8%'); // 18 of 22 completed
      expect(await text(page, 'status-downloaded-pct')).toBe('18.2%'); // 4 of 22 completed
      expect(await text(page, 'status-failed-pct')).toBe('8.3%'); // 2 of 24 finished
      expect(parseFloat(await inPage<string>(page, `document.querySelector('#seg-reused').style.width`))).toBeCloseTo((18 / 22) * 100, 2);

      // Fleet: the held slot and the two queued jobs.
      expect(fleet.upstream_slots).toEqual({ in_use: 1, limit: 4 });
      expect(await text(page, 'slots-in-use')).toBe('1 / 4');
      expect(fleet.queue).toMatchObject({ waiting: 2, backlog: 2 });
      for (const state of ['waiting', 'prioritized', 'delayed', 'active', 'backlog']) {
        expect({ state, shown: await value(page, `queue-${state}`) }).toEqual({ state, shown: String(fleet.queue[state]) });
      }
      expect(await value(page, 'progress-queued')).toBe(String(fleet.queue.waiting! + fleet.queue.prioritized! + fleet.queue.delayed!));
      expect(await value(page, 'progress-active')).toBe(String(fleet.queue.active));

      // The CDSE transfer budget, next to the slots: the window's bytes of the budget, the share,
      // and when the oldest transfer in the window leaves it.
      const freesAt = new Date(transfersT0 + 10 * DAY_MS).toISOString();
      expect(fleet.upstream_budget).toEqual({ window_bytes: 4.5e12, budget_bytes: 12e12, used_ratio: 0.375, frees_at: freesAt });
      expect(await text(page, 'upstream-budget')).toBe('4.50 TB / 12.0 TB');
      expect(await value(page, 'upstream-budget')).toBe('4500000000000');
      expect(await page.getByTestId('upstream-budget').getAttribute('data-budget')).toBe('12000000000000');
      expect(await text(page, 'upstream-budget-pct')).toBe('37.5%');
      expect(await value(page, 'upstream-budget-pct')).toBe('0.375');
      expect(await text(page, 'upstream-budget-frees-at')).toBe(freesAt.slice(0, 19).replace('T', ' '));
      expect(await value(page, 'upstream-budget-frees-at')).toBe(freesAt);
      expect(await inPage<string>(page, `document.querySelector('#budget-fill').style.width`)).toBe('37.5%');

      // Latest jobs: the API's first page, in its order (the two queued jobs first).
      expect(jobs.items).toHaveLength(20);
      expect(await rowIds(page, 'job-row', 'jobId')).toEqual(jobs.items.map((j) => j.job_id));
      const firstRow = page.getByTestId('job-row').first();
      expect(await firstRow.textContent()).toContain('queued');

      // Most reused products: the API's order and counts.
      expect(scenes.items.map((s) => s.scene_id)).toEqual([L2A, L1C, L2A_OTHER]);
      expect(await rowIds(page, 'scene-row', 'sceneId')).toEqual(scenes.items.map((s) => s.scene_id));
      expect(await page.getByTestId('scene-reuses').allTextContents()).toEqual(scenes.items.map((s) => String(s.download_count)));
      expect(await page.getByTestId('scenes-admin-note').isHidden()).toBe(true);

      // Storage: the global cache's registered bytes of the budget, products, objects, oldest last use.
      const usage = (await api.request('GET', '/v1/cache/usage')).body as Json & { oldest_access_at: string };
      expect(usage).toMatchObject({ bytes: 509e6, objects: 4, products: 3, invalid_products: 0, invalid_bytes: 0, budget_bytes: CACHE_BUDGET, used_ratio: 0.509, unused_ttl_days: 60 });
      expect(await text(page, 'storage-bytes')).toBe('509 MB / 1.00 GB');
      expect(await value(page, 'storage-bytes')).toBe('509000000');
      expect(await page.getByTestId('storage-bytes').getAttribute('data-budget')).toBe(String(CACHE_BUDGET));
      expect(await text(page, 'storage-budget-label')).toBe('of the budget');
      expect(await text(page, 'storage-budget-pct')).toBe('50.9%');
      expect(await inPage<string>(page, `document.querySelector('#storage-fill').style.width`)).toBe('50.9%');
      expect(await inPage<string>(page, `document.querySelector('#storage-fill').className`)).toBe('gauge-fill');
      expect([await text(page, 'storage-products'), await text(page, 'storage-objects'), await text(page, 'storage-invalid'), await text(page, 'storage-invalid-bytes')]).toEqual(['3', '4', '0', '0 B']);
      expect(await value(page, 'storage-oldest-access')).toBe(usage.oldest_access_at);
      expect(await text(page, 'storage-oldest-access')).toBe(usage.oldest_access_at.slice(0, 19).replace('T', ' '));
      expect(await text(page, 'storage-ttl')).toBe('after 60 days');
      expect(await page.getByTestId('storage-admin-note').isHidden()).toBe(true);

      // The chart: one bar and one point per day the API reports, painted on the canvas.
      const chart = await chartState(page);
      expect(stats.per_day.map((d) => d.day)).toEqual([D1, D2, D4]);
      expect(chart.labels).toEqual([D1, D2, D4]);
      expect(chart.daysAttribute).toBe([D1, D2, D4].join(','));
      expect(chart.saved).toEqual(stats.per_day.map((d) => d.bytes_saved));
      expect(chart.ratio).toEqual([83.3, 75, 87.5]);
      expect(chart.paintedPixels).toBeGreaterThan(1_000);
      expect(await page.getByTestId('error').isHidden()).toBe(true);

      await page.screenshot({ path: `${CI_OUT}dashboard.png`, fullPage: true });

      // Auto-refresh: a second slot taken shows up without reloading.
      const second = (await locks.tryAcquireScene(L1C))!;
      leases.push(second);
      expect(await second.tryAcquireUpstreamSlot(4)).toEqual(expect.any(Number));
      await page.getByTestId('slots-in-use').filter({ hasText: '2 / 4' }).waitFor({ timeout: 20_000 });
      refreshes = await waitForDashboardRefresh(page, refreshes);

      // Redis goes away: /v1/fleet answers 503; the page says so and keeps the last figures.
      problems.allowed = [{ status: 503, path: /^\/v1\/fleet$/ }];
      await proxy.down();
      const banner = page.getByTestId('error');
      await banner.waitFor({ state: 'visible', timeout: 20_000 });
      expect(await banner.textContent()).toMatch(/v1\/fleet → 503 service_unavailable/);
      expect(await text(page, 'slots-in-use')).toBe('2 / 4');
      expect(await text(page, 'upstream-budget')).toBe('4.50 TB / 12.0 TB');
      expect(await value(page, 'total-requests')).toBe('22');
      expect(await rowIds(page, 'job-row', 'jobId')).toEqual(jobs.items.map((j) => j.job_id));

      // Redis is back: the banner goes, refreshes complete again.
      await proxy.up();
      await banner.waitFor({ state: 'hidden', timeout: 20_000 });
      await waitForDashboardRefresh(page, refreshes);

      // A hidden tab does not poll; showing it again refreshes at once.
      await page.evaluate(SET_VISIBILITY('hidden'));
      const whileHidden = Number(await page.getByTestId('last-updated').getAttribute('data-refreshes'));
      await sleep(REFRESH_MS + 2_000);
      expect(Number(await page.getByTestId('last-updated').getAttribute('data-refreshes'))).toBe(whileHidden);
      await page.evaluate(SET_VISIBILITY('visible'));
      await waitForDashboardRefresh(page, whileHidden);
      expect(problems.problems).toEqual([]);
    } finally {
      await page.close();
    }
  });
  it('at 400 px wide: no sideways scroll anywhere, and every column of every row is on screen, labelled', async () => {
    const page = await browser.newPage({ viewport: { width: 400, height: 800 } });
    const problems = new PageProblems(page);
    try {
      await page.goto(`${api.baseUrl}/?refresh=${REFRESH_MS / 1000}`);
      await waitForDashboardRefresh(page);
      expect(await page.getByTestId('job-row').count()).toBeGreaterThan(0);
      expect(await page.getByTestId('scene-row').count()).toBeGreaterThan(0);
      expect(await inPage<number>(page, 'document.documentElement.scrollWidth')).toBeLessThanOrEqual(400);
      // No table scrolls sideways inside its panel either (a hidden scrollbar hid the columns).
      expect(await inPage<number[]>(page, `[...document.querySelectorAll('.table-wrap')].map((w) => w.scrollWidth - w.clientWidth)`)).toEqual([0, 0]);
      // Every cell of every row lies within the window, and says which column it is.
      const cells = await inPage<Array<{ table: string; label: string; header: string; left: number; right: number; width: number }>>(
        page,
        `[...document.querySelectorAll('table.list')].flatMap((table) => {
          const headers = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
          return [...table.querySelectorAll('tbody tr')].flatMap((tr) => [...tr.children].map((td, i) => {
            const r = td.getBoundingClientRect();
            return { table: table.dataset.testid, label: td.dataset.label, header: headers[i], left: Math.round(r.left), right: Math.round(r.right), width: Math.round(r.width) };
          }));
        })`,
      );
      expect(cells.length).toBeGreaterThan(17);
      expect(cells.filter((c) => c.left < 0 || c.right > 400 || c.width === 0)).toEqual([]);
      expect(cells.filter((c) => c.label !== c.header)).toEqual([]);
      expect(problems.problems).toEqual([]);
    } finally {
      await page.close();
    }
  });
});

describe('the dashboard with auth on', () => {
  let api: TestApi;
  let acmeKey: string;

  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY } });
    await seedJobs(api);
    await seedScenes(api);
    acmeKey = (await createApiKey(api.db, { tenantId: 'acme' })).secret;
  });
  afterAll(async () => {
    await api?.close();
  });

  it('asks for a key; a tenant key sees its tenant only; forget key; an admin key sees everything', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = new PageProblems(page);
    // Without a key every /v1 call is 401; a tenant key gets 403 for the cross-tenant scene list and the global cache's usage.
    problems.allowed = [
      { status: 401, path: /^\/v1\// },
      { status: 403, path: /^\/v1\/cache\/scenes\?/ },
      { status: 403, path: /^\/v1\/cache\/usage$/ },
    ];
    try {
      await page.goto(`${api.baseUrl}/`);
      await page.getByTestId('key-form').waitFor({ state: 'visible', timeout: 20_000 });
      expect(await page.locator('#refresh-period').textContent()).toBe('5'); // the default period
      expect(await page.locator('main').isHidden()).toBe(true);
      expect(await page.getByTestId('key-info').isHidden()).toBe(true);

      await page.getByTestId('key-input').fill(acmeKey);
      await page.getByTestId('key-submit').click();
      const refreshes = await waitForDashboardRefresh(page);
      expect(await page.getByTestId('auth').isHidden()).toBe(true);
      expect(await page.getByTestId('key-info').isVisible()).toBe(true);
      expect(await inPage<string | null>(page, `sessionStorage.getItem('scenecache.apiKey')`)).toBe(acmeKey);

      const asAcme = { authorization: `Bearer ${acmeKey}` };
      const stats = (await api.request('GET', '/v1/cache/stats', { headers: asAcme })).body as { totals: Json };
      const all = (await api.request('GET', '/v1/cache/stats', { headers: { authorization: `Bearer ${ADMIN_API_KEY}` } })).body as { totals: Json };
      expect(stats.totals.requests).not.toEqual(all.totals.requests);
      expect(await value(page, 'total-requests')).toBe(String(stats.totals.requests));
      expect(await value(page, 'total-bytes-saved')).toBe(String(stats.totals.bytes_saved));
      const jobs = (await api.request('GET', '/v1/downloads?limit=20', { headers: asAcme })).body as { items: Array<{ job_id: string; tenant_id: string }> };
      expect(jobs.items.length).toBeGreaterThan(0);
      expect(new Set(jobs.items.map((j) => j.tenant_id))).toEqual(new Set(['acme']));
      expect(await rowIds(page, 'job-row', 'jobId')).toEqual(jobs.items.map((j) => j.job_id));
      // Fleet figures are not tenant data: shown for any key.
      expect(await text(page, 'slots-in-use')).toBe('0 / 4');
      // No transfer in this database: nothing used, nothing to free.
      expect(await text(page, 'upstream-budget')).toBe('0 B / 12.0 TB');
      expect(await text(page, 'upstream-budget-pct')).toBe('0.0%');
      expect(await text(page, 'upstream-budget-frees-at')).toBe('—');
      expect(await value(page, 'upstream-budget-frees-at')).toBeNull();
      // The most reused products need an admin key: a note, not a broken panel.
      expect(await page.getByTestId('scenes-admin-note').isVisible()).toBe(true);
      expect(await page.getByTestId('scenes-table').isHidden()).toBe(true);
      // So does the global cache's storage.
      expect(await page.getByTestId('storage-admin-note').isVisible()).toBe(true);
      expect(await page.getByTestId('storage-bytes').isHidden()).toBe(true);
      expect(await value(page, 'storage-bytes')).toBeNull();
      expect(await page.getByTestId('error').isHidden()).toBe(true);
      await page.screenshot({ path: `${CI_OUT}dashboard-tenant-key.png`, fullPage: true });

      // Forget the key: figures gone, the form is back.
      await page.getByTestId('forget-key').click();
      await page.getByTestId('key-form').waitFor({ state: 'visible', timeout: 20_000 });
      expect(await inPage<string | null>(page, `sessionStorage.getItem('scenecache.apiKey')`)).toBeNull();
      expect(await value(page, 'total-requests')).toBeNull();
      expect(await page.getByTestId('job-row').count()).toBe(0);

      // A wrong key is refused and not kept.
      await page.getByTestId('key-input').fill('not-a-key');
      await page.getByTestId('key-submit').click();
      await page.getByTestId('auth-message').filter({ hasText: 'refused' }).waitFor({ timeout: 20_000 });
      expect(await inPage<string | null>(page, `sessionStorage.getItem('scenecache.apiKey')`)).toBeNull();

      // The admin key: every tenant, and the most reused products.
      await page.getByTestId('key-input').fill(ADMIN_API_KEY);
      await page.getByTestId('key-submit').click();
      await waitForDashboardRefresh(page, refreshes);
      expect(await value(page, 'total-requests')).toBe(String(all.totals.requests));
      expect(await page.getByTestId('scenes-admin-note').isHidden()).toBe(true);
      expect(await rowIds(page, 'scene-row', 'sceneId')).toEqual([L2A, L1C, L2A_OTHER]);
      // Storage, without a budget (GLOBAL_CACHE_MAX_BYTES unset): the bytes alone, an empty gauge.
      expect(await page.getByTestId('storage-admin-note').isHidden()).toBe(true);
      expect(await text(page, 'storage-bytes')).toBe('509 MB');
      expect(await page.getByTestId('storage-bytes').getAttribute('data-budget')).toBeNull();
      expect(await text(page, 'storage-budget-label')).toBe('(no budget set)');
      expect(await text(page, 'storage-budget-pct')).toBe('');
      expect(await inPage<string>(page, `document.querySelector('#storage-fill').style.width`)).toBe('0%');
      expect(await text(page, 'storage-products')).toBe('3');
      expect(await text(page, 'storage-ttl')).toBe('never');
      expect(problems.problems).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
