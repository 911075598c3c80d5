/**
 * `npm run demo` — the whole system end to end on one machine.
 *
 * Starts what is not configured (cdse-sim, embedded S3, a fresh database), the API and two worker
 * processes; enqueues through the HTTP API (with the typed client, @scenecache/client) a burst of
 * 8 tenants × 6 real Sentinel-2 products with overlapping band sets; shows progress; prints a
 * table per job and a summary; checks the invariants (each band downloaded once, every job
 * finished, every tenant object byte-identical to upstream) and exits non-zero when one is broken.
 *
 * Flags: `--json FILE` writes `{summary, jobs}`; `--workers N` (2); `--size-scale X` (1 = real
 * sizes; e.g. 0.01 for a quick run); `--timeout-s N` (900); `--screenshot FILE` saves a PNG of
 * the dashboard page (`/`) once every job has finished, in headless Chromium (Debian's `chromium`),
 * before the API stops (how `docs/dashboard.png` is made).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { createS3Client, ObjectStore } from '@scenecache/storage';
import { findBandFile, loadSettings, numberOption, parseCommandLine, parseProductName, resolveBand, runCommand, UsageError, type SafeFile } from '@scenecache/core';
import { createDb, findScene } from '@scenecache/db';
import { isFinalStatus, ScenecacheApiError, ScenecacheClient } from '@scenecache/client';
import { demoRequests, distinctPairs, type DemoRequest } from './demo-plan.js';
import { REPO_ROOT, startDemoEnvironment } from './demo-environment.js';
import { fmtMB, jobTable, verifyTenantObjects, type DemoSummary, type JobView } from './demo-report.js';

const USAGE = `usage: npm run demo [-- options]
Runs the whole system on this machine (cdse-sim, a fresh demo database, embedded S3, the API and
workers), enqueues 48 jobs of 8 tenants through the API, and checks the invariants.
  --workers N        worker processes (1-16, default 2)
  --size-scale X     simulator file sizes x X (0.0001-1, default 1 = real sizes)
  --timeout-s N      give up after N seconds (10-86400, default 900)
  --json FILE        write {summary, jobs} to FILE
  --screenshot FILE  save a PNG of the dashboard once every job has finished (needs chromium)
Environment: DATABASE_URL (default: the demo's own scenecache_demo database, recreated each run),
CDSE_USERNAME/CDSE_PASSWORD (default: the simulator), S3_ENDPOINT (default: embedded s3rver),
SCENECACHE_API_KEY or ADMIN_API_KEY (the API then enforces keys and the demo sends it).
Exit codes: 0 every invariant holds, 1 one is broken or the run failed, 2 bad usage or settings.`;

const OPTIONS = { json: { type: 'string' }, workers: { type: 'string' }, 'size-scale': { type: 'string' }, 'timeout-s': { type: 'string' }, screenshot: { type: 'string' } } as const;

const t0 = Date.now();
const log = (line: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}`);

/** Enqueue every request through the client (`POST /v1/downloads`); the jobs' ids, in order. */
async function enqueue(client: ScenecacheClient, requests: readonly DemoRequest[]): Promise<string[]> {
  return Promise.all(
    requests.map(async (r) => {
      try {
        return (await client.enqueue(r)).job_id;
      } catch (err) {
        if (err instanceof ScenecacheApiError) throw new Error(`enqueue ${r.tenant_id} ${r.scene_id} → ${err.status} ${err.code}: ${err.message}`);
        throw err;
      }
    }),
  );
}

/** The demo's jobs (`ids`) as `GET /v1/downloads` lists them, every page. */
async function fetchJobs(client: ScenecacheClient, ids: ReadonlySet<string>): Promise<JobView[]> {
  const jobs: JobView[] = [];
  for await (const job of client.listAll({ limit: 500 })) if (ids.has(job.job_id)) jobs.push(job);
  return jobs;
}

async function main(): Promise<number> {
  const line = parseCommandLine(process.argv.slice(2), { usage: USAGE, options: OPTIONS });
  const args = { json: line.values.json as string | undefined, screenshot: line.values.screenshot as string | undefined };
  const workers = numberOption(line, 'workers', 1, 16) ?? 2;
  if (!Number.isInteger(workers)) throw new UsageError('--workers must be a whole number');
  const sizeScale = numberOption(line, 'size-scale', 0.0001, 1) ?? 1;
  const timeoutS = numberOption(line, 'timeout-s', 10, 86_400) ?? 900;
  const requests = demoRequests(resolve(REPO_ROOT, 'fixtures/cdse/sentinel2_products.tsv'));
  const pairs = distinctPairs(requests);
  log(`scenecache demo: ${requests.length} jobs (${new Set(requests.map((r) => r.tenant_id)).size} tenants × ${new Set(requests.map((r) => r.scene_id)).size} products), ${pairs.size} distinct (product, band) pairs`);

  const envr = await startDemoEnvironment({ workers, sizeScale, log });
  const settings = loadSettings(envr.env);
  const store = new ObjectStore(createS3Client(settings));
  const db = createDb(settings.databaseUrl, { max: 2 });
  // Every API call of the demo goes through the typed client (@scenecache/client).
  const client = new ScenecacheClient({ baseUrl: envr.apiUrl, apiKey: envr.apiKey });
  try {
    const ids = await enqueue(client, requests);
    const idSet = new Set(ids);
    log(`enqueued ${ids.length} jobs through POST /v1/downloads (@scenecache/client)`);

    let jobs: JobView[] = [];
    const deadline = Date.now() + timeoutS * 1000;
    let last = '';
    for (;;) {
      jobs = await fetchJobs(client, idSet);
      const count = (s: JobView['status']) => jobs.filter((j) => j.status === s).length;
      const done = jobs.filter((j) => isFinalStatus(j.status)).length;
      const sim = envr.sim?.counters();
      const line =
        `jobs ${done}/${ids.length} done (reused ${jobs.filter((j) => j.cache_status === 'reused').length}, downloaded ${jobs.filter((j) => j.cache_status === 'downloaded').length}, failed ${count('failed')}) · active ${count('active')} · queued ${count('queued')}` +
        (sim ? ` · upstream ${sim.totals.completed} files ${fmtMB(sim.totals.bytes)}, ${sim.currentConcurrentDownloads} now, peak ${sim.peakConcurrentDownloads}` : '');
      if (line !== last) log(line);
      last = line;
      if (done === ids.length || Date.now() > deadline) break;
      await sleep(1000);
    }
    const wallMs = Date.now() - t0;

    console.log(`\n${jobTable(jobs)}\n`);

    // Upstream truth: the simulator's manifest (or, against real CDSE, the verified cache rows).
    const simFiles = new Map<string, Promise<SafeFile[]>>();
    const expected = async (sceneId: string, band: string): Promise<string | undefined> => {
      if (envr.sim) {
        if (!simFiles.has(sceneId)) simFiles.set(sceneId, envr.sim.productFiles(sceneId));
        return findBandFile(await simFiles.get(sceneId)!, resolveBand(parseProductName(sceneId).level, band))?.sha3_256;
      }
      return (await findScene(db, sceneId))?.bands[band]?.sha3_256;
    };
    const completed = jobs.filter((j) => j.status === 'completed');
    log('verifying every tenant object against upstream (SHA3-256 of the bytes)…');
    let lastShown = 0;
    const mismatches = await verifyTenantObjects(store, completed, expected, (done, total, bytes) => {
      if (done === total || Date.now() - lastShown > 2000) {
        lastShown = Date.now();
        log(`verified ${done}/${total} tenant objects (${fmtMB(bytes)})`);
      }
    });

    const sim = envr.sim?.counters();
    const perFile = sim ? Object.entries(sim.files).filter(([, c]) => c.completed > 0) : [];
    const downloadedTwice = perFile.filter(([, c]) => c.completed > 1).map(([k, c]) => `${k} ×${c.completed}`);
    const jobDownloads = jobs.reduce((n, j) => n + j.bands_downloaded.length, 0);
    const summary: DemoSummary = {
      jobs: jobs.length,
      completed: completed.length,
      failed: jobs.filter((j) => j.status === 'failed').length,
      reused: jobs.filter((j) => j.cache_status === 'reused').length,
      downloaded: jobs.filter((j) => j.cache_status === 'downloaded').length,
      upstream_file_downloads: sim ? sim.totals.completed : jobDownloads,
      distinct_pairs: pairs.size,
      upstream_bytes: sim ? sim.totals.bytes : jobs.reduce((n, j) => n + j.bytes_downloaded, 0),
      delivered_bytes: completed.reduce((n, j) => n + j.bytes_copied, 0),
      wall_ms: wallMs,
    };

    const broken: string[] = [];
    if (jobs.length !== ids.length || summary.completed + summary.failed !== ids.length) broken.push(`${ids.length - summary.completed - summary.failed} job(s) not finished`);
    if (summary.failed > 0) broken.push(`${summary.failed} job(s) failed: ${jobs.filter((j) => j.error).map((j) => `${j.tenant_id}/${j.scene_id}: ${j.error!.code}`).join('; ')}`);
    if (downloadedTwice.length > 0) broken.push(`band files downloaded more than once: ${downloadedTwice.join(', ')}`);
    if (envr.freshCache ? summary.upstream_file_downloads !== pairs.size : summary.upstream_file_downloads > pairs.size) {
      broken.push(`upstream file downloads ${summary.upstream_file_downloads} ≠ distinct pairs ${pairs.size}`);
    }
    if (sim && jobDownloads !== sim.totals.completed) broken.push(`jobs report ${jobDownloads} band downloads, upstream served ${sim.totals.completed}`);
    if (sim && sim.peakConcurrentDownloads > settings.upstreamConcurrency) broken.push(`peak upstream concurrency ${sim.peakConcurrentDownloads} > ${settings.upstreamConcurrency}`);
    broken.push(...mismatches);

    const saved = summary.delivered_bytes - summary.upstream_bytes;
    console.log(
      [
        '',
        'summary',
        `  jobs                     ${summary.jobs} (completed ${summary.completed}, failed ${summary.failed})`,
        `  cache_status             reused ${summary.reused}, downloaded ${summary.downloaded}`,
        `  upstream file downloads  ${summary.upstream_file_downloads}  vs distinct (product, band) pairs ${summary.distinct_pairs}${sim ? `  (peak ${sim.peakConcurrentDownloads} concurrent, cap ${settings.upstreamConcurrency})` : ''}`,
        `  upstream bytes           ${fmtMB(summary.upstream_bytes)}  vs delivered to tenants ${fmtMB(summary.delivered_bytes)}  (saved ${fmtMB(saved)}, ${(summary.delivered_bytes / Math.max(1, summary.upstream_bytes)).toFixed(2)}× fan-out)`,
        `  tenant objects verified  ${completed.reduce((n, j) => n + Object.keys(j.objects ?? {}).length, 0)} byte-identical to upstream${mismatches.length ? ` — ${mismatches.length} MISMATCH(ES)` : ''}`,
        `  wall time                ${(wallMs / 1000).toFixed(1)} s`,
        broken.length === 0 ? '  invariants               all hold' : `  INVARIANTS BROKEN:\n${broken.map((b) => `    - ${b}`).join('\n')}`,
      ].join('\n'),
    );
    if (args.json) {
      writeFileSync(args.json, JSON.stringify({ summary, invariants_broken: broken, jobs }, null, 2));
      log(`wrote ${args.json}`);
    }
    if (args.screenshot) {
      // The API's screenshot tool, in its own process (playwright-core is a dev dependency of the repo).
      const out = resolve(args.screenshot);
      const cli = resolve(REPO_ROOT, 'apps/api/dist/dashboard/dashboard-screenshot.cli.js');
      try {
        await promisify(execFile)(process.execPath, [cli, '--url', envr.apiUrl, '--out', out], { timeout: 60_000, env: { ...process.env, ...(envr.apiKey === undefined ? {} : { API_KEY: envr.apiKey }) } });
        log(`wrote the dashboard screenshot ${out}`);
      } catch (err) {
        const stderr = (err as { stderr?: string }).stderr?.trim();
        broken.push(`dashboard screenshot failed: ${stderr || (err instanceof Error ? err.message : String(err))}`);
        console.error(`dashboard screenshot failed: ${stderr ?? String(err)}`);
      }
    }
    return broken.length === 0 ? 0 : 1;
  } finally {
    await db.destroy();
    log('stopping the API, the workers and the simulator…');
    await envr.stop();
  }
}

runCommand('scenecache demo', main);
