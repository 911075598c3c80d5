// The scenecache dashboard. Reads only the public API (same origin, relative URLs, so the page also
// works behind a path prefix), every 5 s while the tab is visible:
//   GET v1/cache/stats                              totals, per day → cards, chart, cache_status split
//   GET v1/fleet                                    queue depth, upstream slots in use, transfer budget
//   GET v1/downloads?limit=20                       latest jobs
//   GET v1/cache/scenes?order=most_reused&limit=10  most reused products (admin keys only: 403 otherwise)
//   GET v1/cache/usage                              global cache storage against its budget (admin keys only: 403 otherwise)
// Auth: a 401 shows a key form; the key is kept in sessionStorage (this tab only) and sent as
// `Authorization: Bearer`. Data from the API is only ever written with textContent.
import { formatBytes, formatClock, formatCount, formatDuration, formatInstant, formatRatio, formatShare } from './format.js';

/** Refresh period: `?refresh=<seconds>` in the page URL (1…3600, e.g. 30 for a wall screen), else 5 s. */
const REFRESH_MS = (() => {
  const seconds = Number(new URLSearchParams(location.search).get('refresh'));
  return Number.isInteger(seconds) && seconds >= 1 && seconds <= 3600 ? seconds * 1000 : 5_000;
})();
const KEY_STORAGE = 'scenecache.apiKey';
const JOBS_LIMIT = 20;
const SCENES_LIMIT = 10;
/** Most days (the latest with finished jobs) on the chart. */
const CHART_DAYS = 30;

const ENDPOINTS = {
  stats: 'v1/cache/stats',
  fleet: 'v1/fleet',
  jobs: `v1/downloads?limit=${JOBS_LIMIT}`,
  scenes: `v1/cache/scenes?order=most_reused&limit=${SCENES_LIMIT}`,
  usage: 'v1/cache/usage',
};

/** Endpoints that need an admin key: a 403 shows a note in their panel, not an error. */
const ADMIN_ONLY = new Set(['scenes', 'usage']);

/** Share of the transfer budget from which its gauge turns amber (the ScenecacheUpstreamBudgetHigh alert's threshold). */
const BUDGET_HIGH_RATIO = 0.9;
/** Share of the cache budget from which its gauge turns amber: eviction brings the cache back to 90 % of it. */
const STORAGE_HIGH_RATIO = 0.9;

const JOB_STATUSES = new Set(['queued', 'active', 'completed', 'failed', 'cancelled']);
const CACHE_STATUSES = new Set(['reused', 'downloaded']);

const $ = (selector) => document.querySelector(selector);
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

/** An API reply other than 2xx. */
class ApiError extends Error {
  constructor(path, status, code, message) {
    super(message);
    this.path = path;
    this.status = status;
    this.code = code;
  }
}

// ---- the API key (sessionStorage may be unavailable, e.g. storage disabled: then no key is kept)

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

function storeKey(key) {
  try {
    if (key === null) sessionStorage.removeItem(KEY_STORAGE);
    else sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // nothing to do: the key lives only as long as the request
  }
}

async function getJson(path, key) {
  const headers = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(path, { headers, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(path, 0, 'network_error', `the API did not answer (${err instanceof Error ? err.message : String(err)})`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON (e.g. a proxy's error page)
  }
  if (!res.ok) {
    const error = body && typeof body === 'object' && body.error ? body.error : {};
    throw new ApiError(path, res.status, String(error.code ?? `http_${res.status}`), String(error.message ?? res.statusText));
  }
  return body;
}

// ---- rendering helpers

/** Show a figure: `text` for the eye, the raw value in `data-value` for scripts and tests. */
function setFigure(testId, value, text) {
  const el = byTestId(testId);
  el.textContent = text;
  if (value === null || value === undefined) delete el.dataset.value;
  else el.dataset.value = String(value);
}

/**
 * Give each cell of `rows` its column's header text as `data-label`: on narrow screens (CSS, ≤ 600 px)
 * a row is shown as a block of "label value" lines, so no column hides off-screen.
 */
function labelCells(table, rows) {
  const labels = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const row of rows) [...row.children].forEach((td, i) => (td.dataset.label = labels[i] ?? ''));
  return rows;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function badgeCell(value, known, classPrefix) {
  const td = document.createElement('td');
  if (value === null || value === undefined) {
    td.textContent = '—';
    return td;
  }
  const badge = document.createElement('span');
  badge.className = known.has(value) ? `badge ${classPrefix}-${value}` : 'badge';
  badge.textContent = value;
  td.append(badge);
  return td;
}

function setWidth(el, fraction) {
  el.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
}

// ---- panels

let chart = null;

function renderStats(stats) {
  const t = stats.totals;
  setFigure('total-requests', t.requests, formatCount(t.requests));
  setFigure('total-hit-ratio', t.hit_ratio, formatRatio(t.hit_ratio));
  setFigure('total-reused', t.reused, formatCount(t.reused));
  setFigure('total-downloaded', t.downloaded, formatCount(t.downloaded));
  setFigure('total-bytes-downloaded', t.bytes_downloaded, formatBytes(t.bytes_downloaded));
  setFigure('total-bytes-delivered', t.bytes_delivered, formatBytes(t.bytes_delivered));
  setFigure('total-bytes-saved', t.bytes_saved, formatBytes(t.bytes_saved));

  // Completed jobs by cache_status, one definition with the cards: shares of completed jobs
  // (t.requests), so reused's share is the hit ratio.
  for (const [name, n] of [['reused', t.reused], ['downloaded', t.downloaded]]) {
    setFigure(`status-${name}`, n, formatCount(n));
    byTestId(`status-${name}-pct`).textContent = formatShare(n, t.requests);
    setWidth($(`#seg-${name}`), t.requests > 0 ? n / t.requests : 0);
  }
  // Failed and cancelled jobs have no cache_status: their shares are of all finished jobs.
  const finished = t.requests + t.failed + (t.cancelled ?? 0);
  setFigure('status-failed', t.failed, formatCount(t.failed));
  byTestId('status-failed-pct').textContent = formatShare(t.failed, finished);
  setFigure('status-cancelled', t.cancelled ?? 0, formatCount(t.cancelled ?? 0));
  byTestId('status-cancelled-pct').textContent = formatShare(t.cancelled ?? 0, finished);

  renderChart(stats.per_day.slice(-CHART_DAYS));
}

function renderChart(days) {
  const canvas = byTestId('per-day-chart');
  byTestId('per-day-empty').hidden = days.length > 0;
  canvas.parentElement.hidden = days.length === 0;
  canvas.dataset.days = days.map((d) => d.day).join(',');
  const labels = days.map((d) => d.day);
  const saved = days.map((d) => d.bytes_saved);
  const ratios = days.map((d) => (d.hit_ratio === null ? null : Math.round(d.hit_ratio * 1000) / 10));
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets[0].data = saved;
    chart.data.datasets[1].data = ratios;
    chart.update('none');
    return;
  }
  chart = new window.Chart(canvas, {
    type: 'bar',
    data: {
      labels,
      datasets: [
        { type: 'bar', label: 'Bytes saved', data: saved, yAxisID: 'bytes', backgroundColor: 'rgba(47, 158, 110, 0.55)', borderRadius: 3, order: 2 },
        {
          type: 'line',
          label: 'Hit ratio',
          data: ratios,
          yAxisID: 'ratio',
          borderColor: '#3b6fd8',
          backgroundColor: '#3b6fd8',
          pointRadius: 3,
          tension: 0,
          spanGaps: false,
          order: 1,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      scales: {
        bytes: { position: 'left', beginAtZero: true, title: { display: true, text: 'bytes saved' }, ticks: { precision: 0, callback: (v) => formatBytes(Number(v)) } },
        ratio: { position: 'right', min: 0, max: 100, title: { display: true, text: 'hit ratio' }, ticks: { callback: (v) => `${v}%` }, grid: { drawOnChartArea: false } },
      },
      plugins: {
        legend: { position: 'top', align: 'end' },
        tooltip: {
          callbacks: {
            label: (ctx) => (ctx.dataset.yAxisID === 'bytes' ? `Bytes saved: ${formatBytes(ctx.parsed.y)}` : `Hit ratio: ${ctx.parsed.y === null ? '—' : `${ctx.parsed.y}%`}`),
          },
        },
      },
    },
  });
}

function renderFleet(fleet) {
  const { in_use: inUse, limit } = fleet.upstream_slots;
  setFigure('slots-in-use', inUse, `${formatCount(inUse)} / ${formatCount(limit)}`);
  byTestId('slots-in-use').dataset.limit = String(limit);
  const fill = $('#slots-fill');
  setWidth(fill, limit > 0 ? inUse / limit : 0);
  fill.classList.toggle('full', inUse >= limit);
  renderBudget(fleet.upstream_budget);
  for (const state of ['waiting', 'prioritized', 'delayed', 'active', 'backlog']) {
    const n = fleet.queue[state];
    setFigure(`queue-${state}`, n, formatCount(n));
  }
  // Jobs not finished yet, next to the cache_status split (which counts finished jobs only).
  const queued = fleet.queue.waiting + fleet.queue.prioritized + fleet.queue.delayed;
  setFigure('progress-queued', queued, formatCount(queued));
  setFigure('progress-active', fleet.queue.active, formatCount(fleet.queue.active));
}

/** The CDSE transfer budget: bytes started in the last 30 days out of the budget, and when the oldest leaves the window. */
function renderBudget(budget) {
  const { window_bytes: used, budget_bytes: total, used_ratio: ratio, frees_at: freesAt } = budget;
  setFigure('upstream-budget', used, `${formatBytes(used)} / ${formatBytes(total)}`);
  byTestId('upstream-budget').dataset.budget = String(total);
  setFigure('upstream-budget-pct', ratio, formatRatio(ratio));
  setFigure('upstream-budget-frees-at', freesAt, formatInstant(freesAt));
  const fill = $('#budget-fill');
  setWidth(fill, ratio);
  fill.classList.toggle('full', ratio >= 1);
  fill.classList.toggle('high', ratio >= BUDGET_HIGH_RATIO && ratio < 1);
}

function renderJobs(page) {
  const body = byTestId('jobs-body');
  const rows = page.items.map((job) => {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'job-row';
    tr.dataset.jobId = job.job_id;
    const scene = cell(job.scene_id, 'scene');
    scene.title = `${job.scene_id} · bands ${job.bands.join(', ')} · job ${job.job_id}`;
    const error = cell(job.error ? job.error.code : '', 'error-code');
    if (job.error) error.title = job.error.message;
    tr.append(
      cell(formatInstant(job.enqueued_at)),
      cell(job.tenant_id),
      scene,
      badgeCell(job.status, JOB_STATUSES, 'status'),
      badgeCell(job.cache_status, CACHE_STATUSES, 'cache'),
      cell(formatBytes(job.bytes_downloaded), 'num'),
      cell(formatBytes(job.bytes_copied), 'num'),
      cell(formatDuration(job.duration_ms), 'num'),
      error,
    );
    return tr;
  });
  body.replaceChildren(...labelCells(byTestId('jobs-table'), rows));
  byTestId('jobs-empty').hidden = rows.length > 0;
}

function renderScenes(result) {
  const note = byTestId('scenes-admin-note');
  const wrap = $('#scenes-wrap');
  const empty = byTestId('scenes-empty');
  if (result === 'forbidden') {
    note.hidden = false;
    wrap.hidden = true;
    empty.hidden = true;
    byTestId('scenes-body').replaceChildren();
    return;
  }
  note.hidden = true;
  wrap.hidden = false;
  const rows = result.items.map((scene) => {
    const tr = document.createElement('tr');
    tr.dataset.testid = 'scene-row';
    tr.dataset.sceneId = scene.scene_id;
    const name = cell(scene.scene_id, 'scene');
    name.title = `${scene.scene_id} · ${scene.bands.join(', ')}`;
    const reuses = cell(formatCount(scene.download_count), 'num');
    reuses.dataset.testid = 'scene-reuses';
    tr.append(
      name,
      cell(scene.level),
      cell(scene.tile),
      cell(scene.sensing_date),
      cell(formatCount(scene.bands.length), 'num'),
      cell(formatBytes(scene.total_bytes), 'num'),
      reuses,
      cell(formatInstant(scene.last_accessed_at)),
    );
    return tr;
  });
  byTestId('scenes-body').replaceChildren(...labelCells(byTestId('scenes-table'), rows));
  empty.hidden = rows.length > 0;
}

/**
 * The global cache's storage: registered bytes out of the budget (GLOBAL_CACHE_MAX_BYTES; the gauge
 * turns amber from 90 %, red above the budget), products, objects, invalid ones, the oldest last
 * use and the expiry setting. `forbidden` (a tenant key): a note instead.
 */
function renderUsage(result) {
  const note = byTestId('storage-admin-note');
  const figures = $('#storage-figures');
  if (result === 'forbidden') {
    note.hidden = false;
    figures.hidden = true;
    return;
  }
  note.hidden = true;
  figures.hidden = false;
  const { bytes, budget_bytes: budget, used_ratio: ratio } = result;
  const hasBudget = budget !== null;
  setFigure('storage-bytes', bytes, hasBudget ? `${formatBytes(bytes)} / ${formatBytes(budget)}` : formatBytes(bytes));
  const shown = byTestId('storage-bytes');
  if (hasBudget) shown.dataset.budget = String(budget);
  else delete shown.dataset.budget;
  byTestId('storage-budget-label').textContent = hasBudget ? 'of the budget' : '(no budget set)';
  if (hasBudget) setFigure('storage-budget-pct', ratio, formatRatio(ratio));
  else setFigure('storage-budget-pct', null, '');
  const fill = $('#storage-fill');
  setWidth(fill, hasBudget ? ratio : 0);
  fill.classList.toggle('full', hasBudget && ratio > 1);
  fill.classList.toggle('high', hasBudget && ratio >= STORAGE_HIGH_RATIO && ratio <= 1);
  setFigure('storage-products', result.products, formatCount(result.products));
  setFigure('storage-objects', result.objects, formatCount(result.objects));
  setFigure('storage-invalid', result.invalid_products, formatCount(result.invalid_products));
  setFigure('storage-invalid-bytes', result.invalid_bytes, formatBytes(result.invalid_bytes));
  setFigure('storage-oldest-access', result.oldest_access_at, formatInstant(result.oldest_access_at));
  const ttl = result.unused_ttl_days;
  setFigure('storage-ttl', ttl, ttl === null ? 'never' : `after ${formatCount(ttl)} days`);
}

/** Blank every figure (another key may see other figures: never show one key's data under another). */
function clearFigures() {
  for (const el of document.querySelectorAll('main .figure, main table.figures td:not(.pct)')) {
    el.textContent = '–';
    delete el.dataset.value;
    delete el.dataset.limit;
    delete el.dataset.budget;
  }
  for (const el of document.querySelectorAll('.pct')) {
    el.textContent = '';
    delete el.dataset.value;
  }
  for (const el of document.querySelectorAll('.seg, .gauge-fill')) {
    setWidth(el, 0);
    el.classList.remove('full', 'high');
  }
  byTestId('jobs-body').replaceChildren();
  byTestId('scenes-body').replaceChildren();
  byTestId('scenes-admin-note').hidden = true;
  $('#scenes-wrap').hidden = false;
  byTestId('storage-admin-note').hidden = true;
  $('#storage-figures').hidden = false;
  if (chart) {
    chart.destroy();
    chart = null;
  }
  delete byTestId('per-day-chart').dataset.days;
  const updated = byTestId('last-updated');
  updated.textContent = 'loading…';
  delete updated.dataset.at;
  showErrors([]);
}

// ---- state, auth and the refresh loop

let needsKey = false;
let generation = 0;
let timer;
let running = null;
let rerun = false;

function showErrors(lines, lastGood) {
  const banner = byTestId('error');
  if (lines.length === 0) {
    banner.hidden = true;
    banner.textContent = '';
    return;
  }
  const head = lastGood ? `Could not refresh; showing the figures of ${formatClock(lastGood)}.` : 'Could not load the figures.';
  banner.textContent = [head, ...lines].join('\n');
  banner.hidden = false;
}

function showKeyInfo() {
  byTestId('key-info').hidden = storedKey() === null;
}

function askForKey(message) {
  needsKey = true;
  clearTimeout(timer);
  byTestId('auth-message').textContent = message;
  byTestId('auth').hidden = false;
  $('#content').hidden = true;
  byTestId('last-updated').textContent = 'API key needed';
  byTestId('key-input').focus();
}

function keyChanged() {
  generation += 1;
  needsKey = false;
  byTestId('auth').hidden = true;
  $('#content').hidden = false;
  clearFigures();
  showKeyInfo();
  void refreshNow();
}

async function refreshOnce() {
  const gen = generation;
  const key = storedKey();
  const names = Object.keys(ENDPOINTS);
  const results = await Promise.allSettled(names.map((name) => getJson(ENDPOINTS[name], key)));
  if (gen !== generation) return; // the key changed meanwhile: these figures are someone else's
  const outcome = Object.fromEntries(names.map((name, i) => [name, results[i]]));

  const unauthorized = results.find((r) => r.status === 'rejected' && r.reason instanceof ApiError && r.reason.status === 401);
  if (unauthorized) {
    if (key !== null) {
      storeKey(null);
      showKeyInfo();
      clearFigures();
      askForKey(`The API key was refused (${unauthorized.reason.message}). Enter another key.`);
    } else {
      clearFigures();
      askForKey('This API requires a key. It is kept in this tab only (sessionStorage) and sent as Authorization: Bearer.');
    }
    return;
  }

  const errors = [];
  const render = (name, fn) => {
    const r = outcome[name];
    if (r.status === 'fulfilled') {
      fn(r.value);
      return;
    }
    if (ADMIN_ONLY.has(name) && r.reason instanceof ApiError && r.reason.status === 403) {
      fn('forbidden');
      return;
    }
    const e = r.reason;
    errors.push(e instanceof ApiError ? `GET /${e.path} → ${e.status === 0 ? 'no answer' : e.status} ${e.code}: ${e.message}` : `GET ${ENDPOINTS[name]}: ${String(e)}`);
  };
  render('stats', renderStats);
  render('fleet', renderFleet);
  render('jobs', renderJobs);
  render('scenes', renderScenes);
  render('usage', renderUsage);

  const updated = byTestId('last-updated');
  const lastGood = updated.dataset.at ? new Date(updated.dataset.at) : null;
  if (errors.length === 0) {
    const now = new Date();
    updated.textContent = `updated ${formatClock(now)}`;
    updated.dataset.at = now.toISOString();
    updated.dataset.refreshes = String(Number(updated.dataset.refreshes ?? 0) + 1);
  }
  showErrors(errors, lastGood);
}

function schedule() {
  clearTimeout(timer);
  if (needsKey || document.visibilityState !== 'visible') return;
  timer = setTimeout(() => void refreshNow(), REFRESH_MS);
}

/** Refresh now (or right after the refresh in flight), then every REFRESH_MS. */
async function refreshNow() {
  if (running) {
    rerun = true;
    return running;
  }
  clearTimeout(timer);
  running = (async () => {
    do {
      rerun = false;
      try {
        await refreshOnce();
      } catch (err) {
        // A rendering bug must not stop the loop; show it like an API error.
        showErrors([`dashboard error: ${err instanceof Error ? err.message : String(err)}`], null);
      }
    } while (rerun);
  })();
  try {
    await running;
  } finally {
    running = null;
    schedule();
  }
}

byTestId('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = byTestId('key-input');
  const key = input.value.trim();
  if (key === '') return;
  input.value = '';
  storeKey(key);
  keyChanged();
});

byTestId('forget-key').addEventListener('click', (event) => {
  event.preventDefault();
  storeKey(null);
  keyChanged();
});

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') void refreshNow();
  else clearTimeout(timer);
});

$('#refresh-period').textContent = String(REFRESH_MS / 1000);
showKeyInfo();
void refreshNow();
