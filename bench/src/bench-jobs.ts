/**
 * Helpers the dedup and throughput scenarios share: distinct valid product names, the band sizes
 * a request costs, and waiting for many jobs with one aggregate query (not one query per job).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { findBandFile, parseProductName, resolveBand, type ProductLevel } from '@scenecache/core';
import type { CdseSim } from '@scenecache/cdse-sim';
import type { DB, DownloadJobRow } from '@scenecache/db';
import { REPO_ROOT } from './bench-environment.js';

/** The real product names of fixtures/cdse/sentinel2_products.tsv, by level. */
function realNames(): Record<ProductLevel, string[]> {
  const lines = readFileSync(resolve(REPO_ROOT, 'fixtures/cdse/sentinel2_products.tsv'), 'utf8').trim().split('\n').slice(1);
  const byLevel: Record<ProductLevel, string[]> = { L1C: [], L2A: [] };
  for (const name of new Set(lines.map((l) => l.split('\t')[0]!))) byLevel[parseProductName(name).level].push(name);
  return byLevel;
}

/** `YYYYMMDDTHHMMSS` (UTC) of `date`. */
function compactTime(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').slice(0, 15);
}

/**
 * `count` distinct valid Sentinel-2 product names, L1C and L2A alternating: real names (tile,
 * orbit, sensing time) whose product discriminator is replaced by a time unique to
 * (`setIndex`, index), so every set is fresh (nothing of it cached) and the same on every run.
 * cdse-sim serves any valid name. @throws RangeError when `setIndex` ≥ 1000 or `count` > 10 000.
 */
export function productSet(setIndex: number, count: number): string[] {
  if (setIndex >= 1000 || count > 10_000) throw new RangeError('productSet: setIndex < 1000 and count ≤ 10 000');
  const names = realNames();
  const base = Date.UTC(2026, 0, 1) + setIndex * 10_000_000;
  return Array.from({ length: count }, (_, i) => {
    const level: ProductLevel = i % 2 === 0 ? 'L1C' : 'L2A';
    const pool = names[level];
    const real = pool[Math.floor(i / 2) % pool.length]!;
    return real.replace(/_\d{8}T\d{6}$/, `_${compactTime(new Date(base + i * 1000))}`);
  });
}

/** Band file sizes (bytes) of a product as the sim serves it, by canonical band id. */
export async function bandSizes(sim: CdseSim, scene: string, bands: readonly string[]): Promise<Map<string, number>> {
  const level = parseProductName(scene).level;
  const files = await sim.productFiles(scene);
  const sizes = new Map<string, number>();
  for (const id of bands) {
    const band = resolveBand(level, id);
    const file = findBandFile(files, band);
    if (!file) throw new Error(`${scene} has no ${id} file`);
    sizes.set(band.id, file.size);
  }
  return sizes;
}

/** Counts of a set of jobs by `download_jobs.status`. */
export interface JobProgress {
  queued: number;
  active: number;
  completed: number;
  failed: number;
  /** Jobs cancelled (DELETE /v1/downloads/{id}): ended too. */
  cancelled: number;
}

/**
 * Poll `download_jobs` with one `GROUP BY status` query every `everyMs` until every job of `ids`
 * is `completed` or `failed` (a job retried after a failed attempt goes back to `queued`), calling
 * `onProgress` about every 5 s; then return the rows.
 * @throws Error after `timeoutMs`, saying how many jobs are unfinished.
 */
export async function waitForJobsDone(
  db: Kysely<DB>,
  ids: readonly string[],
  options: { timeoutMs: number; everyMs?: number; onProgress?: (p: JobProgress) => void },
): Promise<DownloadJobRow[]> {
  const deadline = Date.now() + options.timeoutMs;
  let nextReport = Date.now() + 5_000;
  for (;;) {
    const counts = await db
      .selectFrom('download_jobs')
      .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
      .where('id', 'in', [...ids])
      .groupBy('status')
      .execute();
    const p: JobProgress = { queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const c of counts) p[c.status] = Number(c.n);
    // Rows not written yet (the API writes them at enqueue, so none in practice) count as queued.
    p.queued += ids.length - (p.queued + p.active + p.completed + p.failed + p.cancelled);
    if (p.completed + p.failed + p.cancelled === ids.length) break;
    if (Date.now() > deadline) throw new Error(`${ids.length - p.completed - p.failed - p.cancelled} of ${ids.length} jobs not finished after ${options.timeoutMs} ms (${JSON.stringify(p)})`);
    if (options.onProgress && Date.now() >= nextReport) {
      options.onProgress(p);
      nextReport = Date.now() + 5_000;
    }
    await sleep(options.everyMs ?? 200);
  }
  return db.selectFrom('download_jobs').selectAll().where('id', 'in', [...ids]).execute();
}
