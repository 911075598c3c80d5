/**
 * One scenario's world, on the machine's real services: a fresh migrated database
 * (`scenecache_bench_<random>`, dropped at close), its own buckets on an in-process s3rver (or
 * `S3_ENDPOINT`), its own BullMQ prefix on the local Redis, cdse-sim in this process, the real API
 * (`buildApp`) on a free port, and worker processes spawned from `apps/worker/dist/main.js`
 * (several may run; each is followed through its pino JSON log).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp, createDownloadQueue, createProducerRedis } from '@scenecache/api';
import { startCdseSim, type CdseSim, type CdseSimOptions } from '@scenecache/cdse-sim';
import { createLogger, loadSettings, type Settings } from '@scenecache/core';
import { createDb, dropDatabase, migrateToLatest, type DB } from '@scenecache/db';
import { captureJsonLogs, spawnProcessGroup, startTestS3, type SpawnedWorker, type TestS3 } from '@scenecache/testing';
import type { Kysely } from 'kysely';

/** The repository root (bench/dist → ../..). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Most jobs `POST /v1/downloads/batch` takes at once. */
const BATCH_LIMIT = 100;

/** A download request, as `POST /v1/downloads` takes it. */
export interface DownloadRequest {
  tenant_id: string;
  scene_id: string;
  bands?: string[];
  priority?: number;
}

/** Options of {@link startBenchEnvironment}. */
export interface BenchEnvironmentOptions {
  /** cdse-sim options. @defaultValue `{ sizeScale: 0.01, logLevel: 'silent' }` */
  sim?: Partial<CdseSimOptions>;
  /** More settings (environment variables) for the API and every worker. */
  env?: Record<string, string>;
}

/** What {@link startBenchEnvironment} started. */
export interface BenchEnvironment {
  readonly settings: Settings;
  /** The settings as environment variables (what spawned workers get). */
  readonly env: Readonly<Record<string, string>>;
  readonly db: Kysely<DB>;
  readonly s3: TestS3;
  readonly sim: CdseSim;
  readonly app: FastifyInstance;
  /** `http://127.0.0.1:<port>` */
  readonly apiUrl: string;
  /** Spawn `n` worker processes (settings + `env`) and wait until each logged "worker started". */
  spawnWorkers(n: number, env?: Record<string, string>): Promise<SpawnedWorker[]>;
  /** SIGTERM every spawned worker and wait for the exits (SIGKILL after 10 s). */
  stopWorkers(): Promise<void>;
  /** Enqueue through the API (batches of 100). @returns the job ids, in order. @throws on any non-2xx answer. */
  enqueue(requests: readonly DownloadRequest[]): Promise<string[]>;
  close(): Promise<void>;
}

/** Start a scenario's world (see the module comment). Close it with `close()`, also on failure. */
export async function startBenchEnvironment(options: BenchEnvironmentOptions = {}): Promise<BenchEnvironment> {
  const base = loadSettings(process.env);
  const dbUrl = base.databaseUrl.replace(/\/[^/?]*(\?|$)/, `/scenecache_bench_${randomUUID().slice(0, 8)}$1`);
  await migrateToLatest(dbUrl);
  const s3 = await startTestS3();
  const sim = await startCdseSim({ sizeScale: 0.01, logLevel: 'silent', ...options.sim });
  const env: Record<string, string> = {
    DATABASE_URL: dbUrl,
    REDIS_URL: base.redisUrl,
    QUEUE_PREFIX: `bench-${randomUUID().slice(0, 8)}`,
    ...s3.env,
    GLOBAL_BUCKET: s3.uniqueBucket('global'),
    TENANT_BUCKET_PREFIX: `b${randomUUID().slice(0, 6)}-`,
    CDSE_TOKEN_URL: sim.urls.tokenUrl,
    CDSE_CATALOGUE_URL: sim.urls.catalogueUrl,
    CDSE_DOWNLOAD_URL: sim.urls.downloadUrl,
    CDSE_USERNAME: sim.credentials.username,
    CDSE_PASSWORD: sim.credentials.password,
    WORKER_METRICS_PORT: '0',
    LOG_LEVEL: process.env.BENCH_WORKER_LOG_LEVEL ?? 'info',
    // The API these start is a local one for the run: no keys.
    AUTH_MODE: 'open',
    ...options.env,
  };
  const settings = loadSettings(env);
  const logger = createLogger('bench-api', 'warn');
  const db = createDb(dbUrl);
  const redis = createProducerRedis(settings.redisUrl, logger);
  const queue = createDownloadQueue(redis, settings.queuePrefix, logger);
  const app = buildApp({ settings, db, queue, redis, logger, store: s3.store });
  const apiUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  const workers: SpawnedWorker[] = [];

  const stopWorkers = async (): Promise<void> => {
    // BENCH_WORKER_LOGS=<dir>: every worker's pino lines (level BENCH_WORKER_LOG_LEVEL, default info),
    // one file per process, for reading a run's timeline.
    const logDir = process.env.BENCH_WORKER_LOGS;
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      for (const w of workers) writeFileSync(resolve(logDir, `worker-${w.pid}.jsonl`), w.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
    }
    await Promise.all(
      workers.splice(0).map(async (w) => {
        const timer = setTimeout(() => void w.kill('SIGKILL'), 10_000);
        await w.kill('SIGTERM');
        clearTimeout(timer);
      }),
    );
  };

  return {
    settings,
    env,
    db,
    s3,
    sim,
    app,
    apiUrl,
    async spawnWorkers(n, extra = {}) {
      const started = Array.from({ length: n }, () => {
        const child = spawnProcessGroup(process.execPath, [resolve(REPO_ROOT, 'apps/worker/dist/main.js')], {
          env: { ...process.env, ...env, ...extra },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const worker = captureJsonLogs(child);
        workers.push(worker);
        return worker;
      });
      await Promise.all(started.map((w) => w.waitForLog((l) => l.msg === 'worker started', 30_000)));
      return started;
    },
    stopWorkers,
    async enqueue(requests) {
      const ids: string[] = [];
      for (let i = 0; i < requests.length; i += BATCH_LIMIT) {
        const jobs = requests.slice(i, i + BATCH_LIMIT);
        const res = await fetch(`${apiUrl}/v1/downloads/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jobs }) });
        const body = (await res.json()) as { jobs?: Array<{ job_id: string }> };
        if (!res.ok || !body.jobs) throw new Error(`enqueue: HTTP ${res.status} ${JSON.stringify(body)}`);
        ids.push(...body.jobs.map((j) => j.job_id));
      }
      return ids;
    },
    async close() {
      await stopWorkers();
      await app.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      redis.disconnect();
      await db.destroy();
      await sim.close();
      await s3.close();
      await dropDatabase(dbUrl);
    },
  };
}
