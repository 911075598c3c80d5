/**
 * The worker's Kubernetes probes (health-server.ts) on real services: liveness (`/healthz`) and
 * readiness (`/readyz`) mean different things, and a probe that mixes them up either restarts the
 * whole fleet during a Redis outage or keeps a dead worker around for ever.
 *
 * It proves that
 * - a spawned `apps/worker/dist/main.js` whose Redis goes away (a TCP proxy taken down) turns not
 *   ready (503, `checks.redis: fail`) but stays live (200) and keeps running; once Redis is back it
 *   is ready again, the same process;
 * - a worker whose BullMQ job loop has stopped while no shutdown was asked for fails liveness
 *   (503, `checks.job_loop: fail`), so Kubernetes restarts it; the same stopped loop during a
 *   shutdown keeps liveness at 200 and readiness says `shutting_down`;
 * - unknown paths answer 404, and `/metrics` is 404 when no metrics source is given.
 */
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { SCENE_DOWNLOAD_QUEUE } from '@scenecache/core';
import { startTcpProxy, until, type TcpProxy } from '@scenecache/testing';
import { startHealthServer, WORKER_HTTP_PATHS, workerProbes, type ProbeReply } from '../src/health-server.js';
import { startPipelineHarness, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';

const REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379';

/** `GET path`: status and JSON body. */
async function get(port: number, path: string): Promise<{ status: number; body: ProbeReply & { error?: { code: string } } }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as ProbeReply & { error?: { code: string } } };
}

describe('worker probes: liveness and readiness', () => {
  describe('a spawned worker whose Redis goes away', () => {
    let h: PipelineHarness;
    let redisProxy: TcpProxy;
    let worker: SpawnedWorker;
    let port: number;

    beforeAll(async () => {
      h = await startPipelineHarness();
      const target = new URL(h.env.REDIS_URL!);
      redisProxy = await startTcpProxy({ host: target.hostname, port: target.port === '' ? 6379 : Number(target.port) });
      worker = h.spawnWorker({ REDIS_URL: redisProxy.rewrite(h.env.REDIS_URL!) });
      const listening = await worker.waitForLog((l) => l.msg === 'health endpoint listening', 30_000);
      port = listening.healthPort as number;
    });
    afterAll(async () => {
      await redisProxy?.up();
      await worker?.kill('SIGTERM');
      await h?.close();
      await redisProxy?.close();
    });

    it('is not ready but stays live during the outage, and ready again after it', async () => {
      await until('the worker to be ready', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 200, 10_000);
      expect(await get(port, WORKER_HTTP_PATHS.readiness)).toEqual({ status: 200, body: { status: 'ok', checks: { redis: 'ok', job_loop: 'ok' } } });
      expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 200, body: { status: 'ok', checks: { job_loop: 'ok' } } });

      await redisProxy.down();
      await until('readiness to fail', async () => (await get(port, WORKER_HTTP_PATHS.readiness)).status === 503, 10_000);
      expect(await get(port, WORKER_HTTP_PATHS.readiness)).toMatchObject({ status: 503, body: { status: 'failing', checks: { redis: 'fail' } } });
      // Restarting the worker would not bring Redis back: liveness stays 200, whatever the outage's length.
      for (let i = 0; i < 5; i++) {
        expect(await get(port, WORKER_HTTP_PATHS.liveness)).toEqual({ status: 200, body: { status: 'ok', checks: { job_loop: 'ok' } } });
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
