/**
 * The worker's Kubernetes probes (health-server.ts) on real services: liveness (`/healthz`) and
 * readiness (`/readyz`) mean different things, and a probe that mixes them up either restarts the
 * whole fleet during a Redis outage or keeps a dead worker around for ever.
 *
 * It proves that
 * - a spawned `apps/worker/dist/main.js` whose Redis goes away (a TCP proxy taken down) turns not
 *   ready (503, `checks.redis: fail`) but stays live (200) and keeps running; once Redis is back it
 *   is ready again, the same process;
 * - a worker whose Redis goes silent (blackholed: connections accepted, never answered) past
 *   `DEPENDENCY_LIVENESS_TIMEOUT_MS` turns not live (503, `checks.redis: fail`) and gives up the
 *   advisory locks of the download it was running, while the process lives on; once Redis answers
 *   again it is live and ready again and the job completes;
 * - a worker whose BullMQ job loop has stopped while no shutdown was asked for fails liveness
 *   (503, `checks.job_loop: fail`), so Kubernetes restarts it; the same stopped loop during a
 *   shutdown keeps liveness at 200 and readiness says `shutting_down`;
 * - unknown paths answer 404, and `/metrics` is 404 when no metrics source is given;
 * - two workers started with the defaults on one machine both start (the second moves to the next
 *   free port and says so), while a port set on purpose stays strict: a taken one fails the start.
 */
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { resolveBand, SCENE_DOWNLOAD_QUEUE } from '@scenecache/core';
import { heldAdvisoryLocks, startTcpProxy, until, type TcpProxy } from '@scenecache/testing';
import { startHealthServer, WORKER_HTTP_PATHS, workerProbes, type ProbeReply } from '../src/health-server.js';
import { startPipelineHarness, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';

const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379';

/** `GET path`: status and JSON body. */
async function get(port: number, path: string): Promise<{ status: number; body: ProbeReply & { error?: { code: string } } }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as ProbeReply & { error?: { code: string } } };
}

/** A pipeline harness and one spawned worker that reaches Redis through a TCP proxy the test can cut. */
interface ProxiedWorker {
  h: PipelineHarness;
  redisProxy: TcpProxy;
  worker: SpawnedWorker;
  /** The worker's health port. */
  port: number;
  close(): Promise<void>;
}

async function startProxiedWorker(harness: Parameters<typeof startPipelineHarness>[0], env: Record<string, string> = {}): Promise<ProxiedWorker> {
  const h = await startPipelineHarness(harness);
  const target = new URL(h.env.REDIS_URL!);
  const redisProxy = await startTcpProxy({ host: target.hostname, port: target.port === '' ? 6379 : Number(target.port) });
  const worker = h.spawnWorker({ REDIS_URL: redisProxy.rewrite(h.env.REDIS_URL!), ...env });
  const listening = await worker.waitForLog((l) => l.msg === 'health endpoint listening', 30_000);
  return {
    h,
    redisProxy,
    worker,
    port: listening.healthPort as number,
    async close() {
      await redisProxy.up();
      await worker.kill('SIGTERM');
      await h.close();
      await redisProxy.close();
    },
  };
}

describe('worker probes: liveness and readiness', () => {
  describe('a spawned worker whose Redis goes away', () => {
    let pw: ProxiedWorker | undefined;
    let redisProxy: TcpProxy;
    let worker: SpawnedWorker;
    let port: number;

    beforeAll(async () => {
      pw = await startProxiedWorker({});
      ({ redisProxy, worker, port } = pw);
    });
    afterAll(async () => {
      await pw?.close();
    });

    it('is not ready but stays live during the outage, and ready again after it', async () => {
      await until('the worker to be ready', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 200, 10_000);
      expect(await get(port, WORKER_HTTP_PATHS.readiness)).toEqual({ status: 200, body: { status: 'ok', checks: { redis: 'ok', postgres: 'ok', job_loop: 'ok' } } });
      expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 200, body: { status: 'ok', checks: { job_loop: 'ok', redis: 'ok', postgres: 'ok' } } });

      await redisProxy.down();
      await until('readiness to fail', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 503, 10_000);
      expect(await get(port, WORKER_HTTP_PATHS.readiness)).toMatchObject({ status: 503, body: { status: 'failing', checks: { redis: 'fail' } } });
      // Restarting the worker would not bring Redis back: liveness stays 200, whatever the outage's length.
      for (let i = 0; i < 5; i++) {
        expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 200, body: { status: 'ok', checks: { job_loop: 'ok', redis: 'ok', postgres: 'ok' } } });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }

      await redisProxy.up();
      await until('readiness to come back', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 200, 15_000);
      expect(await get(port, WORKER_HTTP_PATHS.liveness)).toMatchObject({ status: 200 });
      // The same process, never restarted nor shutting down.
      expect(worker.child.exitCode).toBeNull();
      expect(worker.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('shutting down'))).toEqual([]);
    });
  });

  describe('a spawned worker whose Redis goes silent past DEPENDENCY_LIVENESS_TIMEOUT_MS', () => {
    const LIVENESS_TIMEOUT_MS = 4_000;
    const PRODUCT = 'S2A_MSIL2A_20230625T234621_N0509_R073_T01WCP_20230626T022157';
    let pw: ProxiedWorker | undefined;
    let h: PipelineHarness;
    let redisProxy: TcpProxy;
    let worker: SpawnedWorker;
    let port: number;

    beforeAll(async () => {
      // Slow streams: the job holds its scene lock, band lock and upstream slot for ~27 s, far past
      // the liveness bound (a stream that ended first released its locks itself: the flake of issue 18).
      pw = await startProxiedWorker({ simOptions: { bytesPerSecond: 10_000 } }, { DEPENDENCY_LIVENESS_TIMEOUT_MS: String(LIVENESS_TIMEOUT_MS), REDIS_COMMAND_TIMEOUT_MS: '1000', JOB_LOCK_DURATION_MS: '30000' });
      ({ h, redisProxy, worker, port } = pw);
    });
    afterAll(async () => {
      await pw?.close();
    });

    it('turns not live and gives up its advisory locks, lives on, and is live, ready and done once Redis answers', async () => {
      const { body } = await h.enqueue({ tenant_id: 'silent-redis', scene_id: PRODUCT, bands: ['B02'] });
      await until('the download to hold its locks', async () => ((await heldAdvisoryLocks(h.db)).length >= 3 ? true : undefined), 20_000);
      // ... and to be streaming: between taking its locks and the first byte the job still talks to
      // Redis (quarantine check, fair-share charge, CDSE token), and a command timing out there hands
      // the job back itself, locks and all, before the liveness bound (the flake of issue 18).
      await until('the stream to start', () => h.sim.downloadsOf(PRODUCT, resolveBand('L2A', 'B02').fileSuffix).bytes > 0, 20_000);

      redisProxy.blackhole();
      const silentAt = Date.now();
      await until('readiness to fail', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 503, 10_000);
      // Live until the bound, then not live: Kubernetes would restart it.
      expect((await get(port, WORKER_HTTP_PATHS.liveness)).status).toBe(200);
      await until('liveness to fail', async () => (await get(port, WORKER_HTTP_PATHS.liveness)).status === 503, LIVENESS_TIMEOUT_MS + 10_000);
      // Counted from the last answered probe (probes run every 2 s), so up to 2 s before the silence.
      expect(Date.now() - silentAt).toBeGreaterThanOrEqual(LIVENESS_TIMEOUT_MS - 2_000);
      expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 503, body: { status: 'failing', checks: { job_loop: 'ok', redis: 'fail', postgres: 'ok' } } });
      // A stuck process holds no advisory lock: the download's locks were given up.
      await until('the advisory locks to be given up', async () => ((await heldAdvisoryLocks(h.db)).length === 0 ? true : undefined), 5_000);
      // The log line follows the release (Postgres may see the sessions end before the line is read from the pipe).
      const gaveUp = await worker.waitForLog((l) => l.msg === "gave up this worker's advisory locks", 5_000);
      expect({ dependency: gaveUp.dependency, leasesGivenUp: gaveUp.leasesGivenUp }).toEqual({ dependency: 'redis', leasesGivenUp: 1 });
      expect(worker.child.exitCode).toBeNull();

      await redisProxy.up();
      await until('liveness to come back', async () => (await get(port, WORKER_HTTP_PATHS.liveness)).status === 200, 30_000);
      await until('readiness to come back', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 200, 30_000);
      const [row] = await h.waitForJobs([body.job_id!], 90_000);
      expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B02'] });
      expect(h.completedDownloads(PRODUCT, 'B02')).toBe(1);
      expect(worker.child.exitCode).toBeNull();
      expect(worker.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('shutting down'))).toEqual([]);
    });
  });

  describe('a worker whose job loop stopped', () => {
    let connection: Redis;
    let worker: Worker;
    let server: Awaited<ReturnType<typeof startHealthServer>>['server'];
    let port: number;
    let shuttingDown = false;

    beforeAll(async () => {
      connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
      // A real BullMQ worker on a queue of its own (no job ever arrives).
      worker = new Worker(SCENE_DOWNLOAD_QUEUE, () => Promise.resolve(), { connection, prefix: `test-${randomUUID()}` });
      worker.on('error', () => undefined);
      await worker.waitUntilReady();
      ({ server } = await startHealthServer(0, workerProbes({ shuttingDown: () => shuttingDown, worker, redis: connection }), '127.0.0.1'));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      await new Promise((resolve) => server?.close(resolve));
      await worker?.close();
      connection?.disconnect();
    });

    it('fails liveness when the loop ends without a shutdown; passes it when a shutdown ended it', async () => {
      await until('the worker to be ready', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 200, 10_000);
      expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 200, body: { status: 'ok', checks: { job_loop: 'ok' } } });

      // The loop ends (as when BullMQ's run() gives up) while nobody asked the process to stop.
      await worker.close();
      expect(worker.isRunning()).toBe(false);
      expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 503, body: { status: 'failing', checks: { job_loop: 'fail' } } });
      expect(await get(port, WORKER_HTTP_PATHS.readiness)).toEqual({ status: 503, body: { status: 'failing', checks: { redis: 'ok', job_loop: 'fail' } } });

      // During a shutdown a finished loop is the expected end of the drain.
      shuttingDown = true;
      expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 200, body: { status: 'ok', checks: { job_loop: 'ok' } } });
      expect(await get(port, WORKER_HTTP_PATHS.readiness)).toMatchObject({ status: 503, body: { status: 'shutting_down' } });
    });

    it('answers 404 to unknown paths, and to /metrics without a metrics source', async () => {
      for (const path of ['/', '/health', WORKER_HTTP_PATHS.metrics]) {
        expect(await get(port, path)).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
      }
    });
  });
});

describe('the health port of several workers on one machine', () => {
  let h: PipelineHarness;
  beforeAll(async () => {
    h = await startPipelineHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('with WORKER_METRICS_PORT unset, a second worker moves to the next free port; set, a taken port fails the start', async () => {
    // '' = unset (the default port, 9464, or the next free one after it).
    const first = h.spawnWorker({ WORKER_METRICS_PORT: '' });
    const firstPort = (await first.waitForLog((l) => l.msg === 'health endpoint listening', 30_000)).healthPort as number;
    const second = h.spawnWorker({ WORKER_METRICS_PORT: '' });
    const secondPort = (await second.waitForLog((l) => l.msg === 'health endpoint listening', 30_000)).healthPort as number;
    expect(firstPort).toBeGreaterThanOrEqual(9464);
    expect(secondPort).toBeGreaterThan(firstPort);
    expect(second.logs.find((l) => l.level === 40 && l.healthPort === secondPort && l.defaultPort === 9464)).toBeDefined();
    for (const port of [firstPort, secondPort]) expect((await get(port, WORKER_HTTP_PATHS.liveness)).status).toBe(200);

    // A port set on purpose is that port or nothing.
    const strict = h.spawnWorker({ WORKER_METRICS_PORT: String(firstPort) });
    const exit = await strict.exited;
    expect(exit.code).not.toBe(0);
    expect(strict.logs.some((l) => l.msg === 'health endpoint listening')).toBe(false);
    expect(first.child.exitCode).toBeNull();
    await h.killSpawnedWorkers();
  });
});
