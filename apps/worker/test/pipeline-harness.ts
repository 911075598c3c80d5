/**
 * The whole pipeline for one test file, on real services: its own database (cloned from the
 * migrated template), its own buckets on s3rver (or S3_ENDPOINT), its own BullMQ prefix on the
 * local Redis, cdse-sim (small files), the real API (buildApp) to enqueue through HTTP, and
 * workers either in this process or as spawned `apps/worker/dist/main.js` processes.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { startCdseSim, type CdseSim, type CdseSimOptions } from '@scenecache/cdse-sim';
import { createLogger, findBandFile, loadSettings, parseProductName, resolveBand, type SafeFile, type Settings } from '@scenecache/core';
import { findJobById, type DownloadJobRow } from '@scenecache/db';
import { captureJsonLogs, createTestDatabase, killProcessGroup, spawnProcessGroup, startTestS3, type SpawnedWorker, type TestS3 } from '@scenecache/testing';
import { buildApp } from '../../api/src/app.js';
import { createDownloadQueue, createProducerRedis } from '../../api/src/download-queue.js';
import { startWorkerRuntime, type WorkerRuntime } from '../src/worker-runtime.js';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export type { LogLine, SpawnedWorker } from '@scenecache/testing';

export interface PipelineHarness {
  settings: Settings;
  /** Settings as environment variables, for spawned workers. */
  env: Record<string, string>;
  db: Awaited<ReturnType<typeof createTestDatabase>>['db'];
  dbUrl: string;
  s3: TestS3;
  sim: CdseSim;
  app: FastifyInstance;
  queue: ReturnType<typeof createDownloadQueue>;
  /** POST /v1/downloads; returns status and body. */
  enqueue(body: Record<string, unknown>): Promise<{ status: number; body: { job_id?: string; error?: { code: string; field?: string } } }>;
  startWorker(concurrency?: number): Promise<WorkerRuntime>;
  /** Spawn `apps/worker/dist/main.js` with the harness settings plus `env`; its stdout is captured as JSON lines (and copied to `$TEST_WORKER_LOG_DIR/worker-<pid>.log` when that is set). */
  spawnWorker(env?: Record<string, string>): SpawnedWorker;
  /** SIGKILL every spawned worker still running (with its process group) and wait for the exits — between tests, so an idle worker does not take the next test's job. */
  killSpawnedWorkers(): Promise<void>;
  /** The API's base URL (`http://127.0.0.1:<port>`). */
  apiUrl: string;
  /** The manifest entry (path, size, SHA3-256) of `band` of `scene`, as the sim serves it. @throws when the product has no such band. */
  upstreamFile(scene: string, band: string): Promise<SafeFile>;
  /** Complete downloads of `band` of `scene` the sim has served. */
  completedDownloads(scene: string, band: string): number;
  /** Poll download_jobs until every id is completed or failed. */
  waitForJobs(ids: readonly string[], timeoutMs?: number): Promise<DownloadJobRow[]>;
  close(): Promise<void>;
}

/** SIGKILL a spawned process's group and wait for its exit (at once when it has exited). */
async function killAndWait(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  killProcessGroup(c, 'SIGKILL');
  await exited;
}

export async function startPipelineHarness(options: { simOptions?: Partial<CdseSimOptions>; env?: Record<string, string> } = {}): Promise<PipelineHarness> {
  const tdb = await createTestDatabase();
  const s3 = await startTestS3();
  const sim = await startCdseSim({ sizeScale: 0.002, logLevel: 'silent', ...options.simOptions });
  const env: Record<string, string> = {
    DATABASE_URL: tdb.url,
    REDIS_URL,
    QUEUE_PREFIX: `test-${randomUUID()}`,
    ...s3.env,
    GLOBAL_BUCKET: s3.uniqueBucket('global'),
    TENANT_BUCKET_PREFIX: `t${randomUUID().slice(0, 8)}-`,
    CDSE_TOKEN_URL: sim.urls.tokenUrl,
    CDSE_CATALOGUE_URL: sim.urls.catalogueUrl,
    CDSE_DOWNLOAD_URL: sim.urls.downloadUrl,
    CDSE_USERNAME: sim.credentials.username,
    CDSE_PASSWORD: sim.credentials.password,
    UPSTREAM_CONCURRENCY: '4',
    WORKER_CONCURRENCY: '4',
    WORKER_METRICS_PORT: '0',
    WAITER_FALLBACK_DELAY_MS: '5000',
    // A killed worker's jobs come back within ~5 s, and retries wait 100 ms, 200 ms, …
    JOB_LOCK_DURATION_MS: '4000',
    JOB_STALLED_INTERVAL_MS: '1000',
    JOB_BACKOFF_MS: '100',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // The API these start is a local one for the run: no keys.
    AUTH_MODE: 'open',
    ...options.env,
  };
  const settings = loadSettings(env);
  const logger = createLogger('test', settings.logLevel);
  const redis = createProducerRedis(settings.redisUrl, logger);
  const queue = createDownloadQueue(redis, settings.queuePrefix, logger);
  const app = buildApp({ settings, db: tdb.db, queue, redis, logger, store: s3.store });
  const apiUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  const runtimes: WorkerRuntime[] = [];
  const children: ChildProcess[] = [];

  return {
    settings,
    env,
    db: tdb.db,
    dbUrl: tdb.url,
    s3,
    sim,
    app,
    queue,
    async enqueue(body) {
      const res = await fetch(`${apiUrl}/v1/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { job_id?: string; error?: { code: string; field?: string } } };
    },
    async startWorker(concurrency) {
      const rt = await startWorkerRuntime(settings, createLogger('worker', settings.logLevel), concurrency ? { concurrency } : {});
      runtimes.push(rt);
      return rt;
    },
    apiUrl,
    spawnWorker(extra = {}) {
      const child = spawnProcessGroup(process.execPath, [resolve(REPO, 'apps/worker/dist/main.js')], {
        env: { ...process.env, ...env, LOG_LEVEL: 'info', ...extra },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      // TEST_WORKER_LOG_DIR keeps every spawned worker's log for a failure's post-mortem.
      const logDir = process.env.TEST_WORKER_LOG_DIR;
      if (logDir) {
        mkdirSync(logDir, { recursive: true });
        child.stdout!.pipe(createWriteStream(join(logDir, `worker-${child.pid}.log`)).on('error', (err) => process.stderr.write(`TEST_WORKER_LOG_DIR: ${err.message}\n`)));
      }
      return captureJsonLogs(child);
    },
    async killSpawnedWorkers() {
      await Promise.all(children.splice(0).map((c) => killAndWait(c)));
    },
    async upstreamFile(scene, band) {
      const file = findBandFile(await sim.productFiles(scene), resolveBand(parseProductName(scene).level, band));
      if (!file) throw new Error(`the sim has no ${band} in ${scene}`);
      return file;
    },
    completedDownloads(scene, band) {
      return sim.downloadsOf(scene, resolveBand(parseProductName(scene).level, band).fileSuffix).completed;
    },
    async waitForJobs(ids, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rows = await Promise.all(ids.map((id) => findJobById(tdb.db, id)));
        // Ended in the table *and* in BullMQ: a worker writes the row before BullMQ moves the job
        // to completed, and a worker killed in between leaves it active — stalled, and run again.
        if (rows.every((r) => r && (r.status === 'completed' || r.status === 'failed'))) {
          const states = await Promise.all(ids.map((id) => queue.getJobState(id)));
          if (states.every((state) => state === 'completed' || state === 'failed' || state === 'unknown')) return rows as DownloadJobRow[];
        }
        if (Date.now() > deadline) {
          const pending = rows.filter((r) => !r || (r.status !== 'completed' && r.status !== 'failed')).length;
          throw new Error(`${pending} of ${ids.length} jobs not finished after ${timeoutMs} ms`);
        }
        await sleep(50);
      }
    },
    async close() {
      await Promise.all(children.map((c) => killAndWait(c)));
      for (const rt of runtimes) await rt.close();
      await app.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      redis.disconnect();
      await sim.close();
      await s3.close();
      await tdb.drop();
    },
  };
}
