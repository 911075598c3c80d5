/**
 * Scenario `history` (issue 14): the API's reads on a year of job history. A fresh database is
 * seeded by plain SQL (db `seedHistory`) with up to `BENCH_HISTORY_JOBS` (10,000,000) finished jobs
 * over 365 days and 500 tenants — or as many as this machine seeds within `BENCH_HISTORY_SEED_S`
 * (600 s): the figures name the size reached. Then the API (buildApp, on that database) answers
 * every dashboard and client read 30 times each:
 * stats all-time, last 30 days, one tenant; the latest 20 jobs; one tenant's jobs page after page
 * with the cursor; the cached scenes; and the dashboard's refresh (its four reads at once).
 *
 * Same-run baselines: the statistics computed from the raw job rows (the views of migration 0002,
 * run on the same database), which is what the API did before the rollups. Goals: p95 < 100 ms for
 * each read, the dashboard's refresh p95 < 250 ms. Quick: 50,000 jobs, 5 samples.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { buildApp, createDownloadQueue, createProducerRedis } from '@scenecache/api';
import { createLogger, loadSettings } from '@scenecache/core';
import { createDb, dropDatabase, migrateToLatest, seedHistory } from '@scenecache/db';
import { roundTo, summarize } from '../measure/sample-stats.js';
import type { BenchContext, Figure, Scenario, ScenarioResult } from '../scenario.js';

const TARGET_JOBS = Number(process.env.BENCH_HISTORY_JOBS ?? 10_000_000);
const SEED_BUDGET_MS = Number(process.env.BENCH_HISTORY_SEED_S ?? 600) * 1000;
const DAYS = 365;
const TENANTS = 500;
const CHUNK = 250_000;
const READ_GOAL_MS = 100;
const REFRESH_GOAL_MS = 250;

/** The per-day aggregate of raw rows, as migration 0002's view computed it (the baseline). */
function rawStatsSql(where: string): string {
  return `SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, count(*) FILTER (WHERE status = 'completed') AS requests,
      count(*) FILTER (WHERE status = 'completed' AND cache_status = 'reused') AS reused, count(*) FILTER (WHERE status = 'failed') AS failed,
      COALESCE(sum(bytes_downloaded) FILTER (WHERE status = 'completed'), 0) AS bytes_downloaded, COALESCE(sum(bytes_copied) FILTER (WHERE status = 'completed'), 0) AS bytes_delivered
    FROM download_jobs WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL ${where} GROUP BY 1 ORDER BY 1`;
}

async function timed(samples: number, fn: () => Promise<unknown>): Promise<number[]> {
  await fn(); // warm
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

export const scenario: Scenario = {
  id: 'history',
  title: 'a year of job history: API and dashboard reads vs the raw-row aggregates',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const base = loadSettings(process.env);
    const dbUrl = base.databaseUrl.replace(/\/[^/?]*(\?|$)/, `/scenecache_bench_history_${randomUUID().slice(0, 8)}$1`);
    await migrateToLatest(dbUrl);
    const db = createDb(dbUrl, { max: 6 });
    const settings = loadSettings({ ...process.env, DATABASE_URL: dbUrl, QUEUE_PREFIX: `bench-history-${randomUUID().slice(0, 8)}`, AUTH_MODE: 'open', LOG_LEVEL: 'silent' });
    const logger = createLogger('bench-history', 'silent');
    const redis = createProducerRedis(settings.redisUrl, logger);
    const queue = createDownloadQueue(redis, settings.queuePrefix, logger);
    const app = buildApp({ settings, db, queue, redis, logger });
    try {
      // Seed in chunks until the target or the time budget.
      const target = ctx.quick ? 50_000 : TARGET_JOBS;
      const seedStart = performance.now();
      let seeded = 0;
      while (seeded < target && performance.now() - seedStart < SEED_BUDGET_MS) {
        const n = Math.min(CHUNK, target - seeded);
        await seedHistory(db, { jobs: n, days: DAYS, tenants: TENANTS, chunk: n, seed: (seeded / target) * 0.9 });
        seeded += n;
        ctx.log(`history: ${seeded.toLocaleString('en-US')} / ${target.toLocaleString('en-US')} jobs seeded (${Math.round(seeded / ((performance.now() - seedStart) / 1000))} rows/s)`);
      }
      const seedSeconds = (performance.now() - seedStart) / 1000;
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      const get = async (path: string): Promise<Record<string, unknown>> => {
        const res = await fetch(`${url}${path}`);
        if (res.status !== 200) throw new Error(`${path} → ${res.status} ${await res.text()}`);
        return (await res.json()) as Record<string, unknown>;
      };
      const samples = ctx.quick ? 5 : 30;
      const since = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
      const busy = (await sql<{ tenant_id: string }>`SELECT tenant_id FROM job_tenant_totals ORDER BY requests DESC, tenant_id LIMIT 1`.execute(db)).rows[0]!.tenant_id;
      const reads: Array<{ name: string; path: string; raw?: string }> = [
        { name: 'stats, all time', path: '/v1/cache/stats', raw: rawStatsSql('') },
        { name: 'stats, last 30 days', path: `/v1/cache/stats?since=${since}`, raw: rawStatsSql(`AND finished_at >= '${since}'`) },
        { name: `stats, one tenant (the busiest, ${busy})`, path: `/v1/cache/stats?tenant_id=${busy}`, raw: rawStatsSql(`AND tenant_id = '${busy}'`) },
        { name: 'latest 20 jobs', path: '/v1/downloads?limit=20' },
        { name: 'cached scenes (most reused)', path: '/v1/cache/scenes?order=most_reused&limit=10' },
      ];
      const figures: Figure[] = [];
      const details: Record<string, unknown> = { jobs_seeded: seeded, target_jobs: target, days: DAYS, tenants: TENANTS, seed_seconds: roundTo(seedSeconds, 1), samples };
      for (const read of reads) {
        const api = summarize(await timed(samples, () => get(read.path)));
        const raw = read.raw === undefined ? undefined : summarize(await timed(Math.min(samples, ctx.quick ? 3 : 5), () => sql.raw(read.raw!).execute(db)));
        ctx.log(`history: ${read.name}: p50 ${roundTo(api.p50)} ms, p95 ${roundTo(api.p95)} ms${raw ? ` (raw rows: p50 ${roundTo(raw.p50)} ms)` : ''}`);
        figures.push({
          name: `${read.name}: p95 of ${samples} (${seeded.toLocaleString('en-US')} jobs)`,
          value: roundTo(api.p95),
          unit: 'ms',
          ...(raw ? { baseline: { name: 'the same figures from the raw job rows (0002 views), p50', value: roundTo(raw.p50) }, ratio: roundTo(api.p95 / raw.p50, 4) } : {}),
          goal: `< ${READ_GOAL_MS} ms`,
          met: api.p95 < READ_GOAL_MS,
          note: `p50 ${roundTo(api.p50)} ms, max ${roundTo(api.max)} ms`,
        });
        details[read.name] = { api, raw };
      }
      // One tenant's jobs, page after page (50 a page, 10 pages).
      const pageTimes: number[] = [];
      for (let round = 0; round < (ctx.quick ? 1 : 3); round++) {
        let cursor: string | null = null;
        for (let page = 0; page < 10; page++) {
          const t0 = performance.now();
          const body = await get(`/v1/downloads?tenant_id=${busy}&limit=50${cursor ? `&cursor=${cursor}` : ''}`);
          pageTimes.push(performance.now() - t0);
          cursor = body.next_cursor as string | null;
          if (cursor === null) break;
        }
      }
      const pages = summarize(pageTimes);
      figures.push({ name: `one tenant's jobs, page after page with the cursor (50 a page): p95 of ${pages.n}`, value: roundTo(pages.p95), unit: 'ms', goal: `< ${READ_GOAL_MS} ms`, met: pages.p95 < READ_GOAL_MS, note: `p50 ${roundTo(pages.p50)} ms` });
      // The dashboard's refresh: its four reads at once (apps/api/public/dashboard.js).
      const refresh = summarize(
        await timed(samples, () => Promise.all([get('/v1/cache/stats'), get('/v1/fleet'), get('/v1/downloads?limit=20'), get('/v1/cache/scenes?order=most_reused&limit=10')])),
      );
      figures.push({ name: `the dashboard's refresh (stats, fleet, latest jobs, scenes at once): p95 of ${samples}`, value: roundTo(refresh.p95), unit: 'ms', goal: `< ${REFRESH_GOAL_MS} ms`, met: refresh.p95 < REFRESH_GOAL_MS, note: `p50 ${roundTo(refresh.p50)} ms` });
      details.pages = pages;
      details.refresh = refresh;
      return { id: 'history', title: scenario.title, figures, details };
    } finally {
      await app.close();
      await queue.close();
      redis.disconnect();
      await db.destroy();
      await dropDatabase(dbUrl);
    }
  },
};
