/**
 * Baseline process for the throughput scenario: a bare BullMQ Worker whose processor does nothing,
 * with the real worker's queue options (concurrency, lock duration, stalled interval, max stalled
 * count) — the rate BullMQ itself allows on this Redis, per process.
 *
 * Environment: `REDIS_URL`, `NOOP_QUEUE` (queue name), `NOOP_PREFIX` (BullMQ prefix),
 * `NOOP_CONCURRENCY` (jobs at once), and the scenecache settings (`JOB_LOCK_DURATION_MS`, …).
 * Logs JSON lines on stdout: `{"msg":"worker started"}` once the worker is connected. SIGTERM
 * closes the worker and exits 0.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { loadSettings } from '@scenecache/core';

const settings = loadSettings(process.env);
const queueName = process.env.NOOP_QUEUE ?? 'noop';
const prefix = process.env.NOOP_PREFIX ?? 'bench-noop';
const concurrency = Number(process.env.NOOP_CONCURRENCY ?? settings.workerConcurrency);
const connection = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
const worker = new Worker(queueName, () => Promise.resolve({ ok: true }), {
  connection,
  prefix,
  concurrency,
  lockDuration: settings.jobLockDurationMs,
  stalledInterval: settings.jobStalledIntervalMs,
  maxStalledCount: 3,
});
worker.on('error', (err) => console.log(JSON.stringify({ level: 50, msg: 'worker error', err: String(err) })));
await worker.waitUntilReady();
console.log(JSON.stringify({ level: 30, msg: 'worker started', pid: process.pid, concurrency }));
process.once('SIGTERM', () => {
  void worker.close().finally(() => {
    connection.disconnect();
    process.exit(0);
  });
});
