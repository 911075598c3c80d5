/**
 * Graceful shutdown of a worker process (issue 3, failure 6), on real services: spawned
 * `apps/worker/dist/main.js` processes, Postgres, Redis, s3rver and a cdse-sim whose band streams
 * are slowed per file, so a SIGTERM lands in the middle of a download.
 *
 * It proves that
 * - on SIGTERM the worker's readiness (`/readyz` on WORKER_METRICS_PORT) turns 503 at once, while
 *   the download is still running, and its liveness (`/healthz`) answers 200 all through the
 *   drain until the process is gone (Kubernetes takes the pod out of rotation without killing
 *   it early);
 * - a download that fits in SHUTDOWN_TIMEOUT_MS finishes: the job is completed by that worker and
 *   the process exits 0 within the deadline;
 * - a download that does not fit is cancelled at 80 % of the deadline (not before) and the job is
 *   handed back to the queue (not failed, no attempt spent); the process exits 0 within the
 *   deadline; a second worker completes the job, serving from the cache the band the first one had
 *   stored and registered (bands stream at once and are registered one by one) and downloading the
 *   interrupted band once to completion;
 * - a second signal forces the exit at once, long before the deadline; the job, its lock left to
 *   expire, is still completed by another worker, and no advisory lock survives the process.
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { findBandFile, parseProductName, resolveBand } from '@scenecache/core';
import { findJobById, findScene } from '@scenecache/db';
import { freePort, until } from '@scenecache/testing';
import { WORKER_HTTP_PATHS } from '../src/health-server.js';
import { startPipelineHarness, type LogLine, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';

// A different real product per test (fixtures/cdse/sentinel2_products.tsv).
const P_FINISH = 'S2A_MSIL1C_20170413T104021_N0204_R008_T31SCA_20170413T104021';
const P_HAND_BACK = 'S2A_MSIL2A_20170827T105651_N0205_R094_T31WFN_20170827T105652';
const P_FORCED = 'S2A_MSIL1C_20171012T112111_N0205_R037_T29SQC_20171012T112713';

/**
 * `GET path` on a worker's health port: the HTTP status, `refused` when nothing listens, `reset`
 * when the connection was closed without an answer (a probe in flight as the process exits), or
 * the error's code for anything else (a timeout), which no assertion here accepts.
 */
async function probe(port: number, path: string): Promise<number | string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5_000) });
    await res.arrayBuffer();
    return res.status;
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    if (code === 'ECONNREFUSED') return 'refused';
    return code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'reset' : code;
  }
}
const readyz = (port: number) => probe(port, WORKER_HTTP_PATHS.readiness);
const healthz = (port: number) => probe(port, WORKER_HTTP_PATHS.liveness);

/** One liveness probe: its answer and when it was sent (ms since the epoch). */
interface Probe {
  status: number | string;
  sentAt: number;
}

/** Both ways a probe sees a process that is gone: nothing listens, or the socket closed under it. */
const GONE = ['refused', 'reset'];

/** Poll `/healthz` every 50 ms until the answer is not 200; resolves with every probe, in order. */
async function livenessUntilGone(port: number): Promise<Probe[]> {
  const seen: Probe[] = [];
  for (;;) {
    const sentAt = Date.now();
    const status = await healthz(port);
    seen.push({ status, sentAt });
    if (status !== 200) return seen;
    await sleep(50);
  }
}

/**
 * Liveness held until the job's end and then the process was gone: every probe but the last
 * answered 200, at least `minLive` of them were sent before `jobEndedAt` (ms, from the worker's
 * log), and the last saw the process gone (refused or reset: a probe in flight at the exit sees
 * either, both mean the same).
 */
function expectLiveUntilThenGone(seen: readonly Probe[], jobEndedAt: number, minLive: number): void {
  expect(GONE).toContain(seen.at(-1)!.status);
  expect(seen.slice(0, -1).map((p) => p.status)).toEqual(seen.slice(0, -1).map(() => 200));
  expect(seen.filter((p) => p.status === 200 && p.sentAt <= jobEndedAt).length).toBeGreaterThanOrEqual(minLive);
}

/** SIGTERM `worker`, then poll `/readyz` until it fails; resolves with the time of the signal and the readiness status. */
async function terminate(worker: SpawnedWorker, port: number): Promise<{ signalledAt: number; readiness: number | string }> {
  const signalledAt = Date.now();
  worker.child.kill('SIGTERM');
  let readiness = await readyz(port);
  while (readiness === 200 && Date.now() - signalledAt < 5_000) readiness = await readyz(port);
  return { signalledAt, readiness };
}

/** Index of the first log line with message `msg` (-1 when none). */
function logIndex(logs: readonly LogLine[], msg: string): number {
  return logs.findIndex((l) => l.msg === msg);
}

/** When the first log line with message `msg` was written (pino's ISO `time`, ms since the epoch). @throws when there is none. */
function logTime(logs: readonly LogLine[], msg: string): number {
  const line = logs[logIndex(logs, msg)];
  if (!line) throw new Error(`no log line '${msg}'`);
  return Date.parse(line.time as string);
}

describe('graceful shutdown of a worker process', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  /** `bands` of `product` as the sim names them: suffix for `downloadsOf`, key for `completedBy`. */
  async function bandFile(product: string, band: string): Promise<{ suffix: string; key: string }> {
    const b = resolveBand(parseProductName(product).level, band);
    const file = findBandFile(await h.sim.productFiles(product), b)!;
    return { suffix: b.fileSuffix, key: `${product}/${file.path}` };
  }

  async function enqueue(tenant: string, product: string, bands: string[]): Promise<string> {
    const res = await h.enqueue({ tenant_id: tenant, scene_id: product, bands });
    expect(res.status).toBe(202);
    return res.body.job_id!;
  }

  /** Spawn a worker with its health endpoint on a port of ours; resolves once it is live and ready. */
  async function spawnHealthyWorker(env: Record<string, string>): Promise<{ worker: SpawnedWorker; port: number }> {
    const port = await freePort();
    const worker = h.spawnWorker({ WORKER_METRICS_PORT: String(port), ...env });
    await worker.waitForLog((l) => l.msg === 'health endpoint listening', 30_000);
    await until('the worker to be ready', async () => (await readyz(port)) === 200, 10_000);
    expect(await healthz(port)).toBe(200);
    return { worker, port };
  }

  const workerIdOf = (w: SpawnedWorker): string => `${hostname()}:${w.pid}`;
  const userAgentOf = (w: SpawnedWorker): string => `scenecache-worker (${workerIdOf(w)})`;

  it('SIGTERM during a download that fits in the deadline: not ready at once but live until exit, the job completes, exit 0 in time', async () => {
    const deadlineMs = 15_000;
    const b04 = await bandFile(P_FINISH, 'B04');
    // ~270 kB at 100 kB/s: the download takes ~2.7 s, far less than the deadline.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 100_000, product: P_FINISH, file: b04.suffix, count: 1 });
    const { worker, port } = await spawnHealthyWorker({ SHUTDOWN_TIMEOUT_MS: String(deadlineMs) });
    const id = await enqueue('grace-finish', P_FINISH, ['B04']);
    await until('the band download to start', () => h.sim.downloadsOf(P_FINISH, b04.suffix).bytes > 0, 20_000);

    const { signalledAt, readiness } = await terminate(worker, port);
    // Readiness failed first: 503 while the band is still streaming; liveness still answers 200.
    expect(readiness).toBe(503);
    const liveness = livenessUntilGone(port);
    expect(h.sim.downloadsOf(P_FINISH, b04.suffix)).toMatchObject({ started: 1, completed: 0 });
    expect((await findJobById(h.db, id))?.status).toBe('active');

    const exit = await worker.exited;
    const elapsed = Date.now() - signalledAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeLessThan(deadlineMs);
    // Live all through the drain (many 200s before the job completed: the download took seconds), then gone with the process.
    expectLiveUntilThenGone(await liveness, logTime(worker.logs, 'job completed'), 3);

    const row = await findJobById(h.db, id);
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', worker_id: workerIdOf(worker), attempts: 1, error_code: null });
    expect(await (await h.queue.getJob(id))?.getState()).toBe('completed');
    expect(h.sim.downloadsOf(P_FINISH, b04.suffix)).toMatchObject({ started: 1, completed: 1 });
    // In order: shutdown began, the running job finished, then the process closed its resources.
    const { logs } = worker;
    expect(logIndex(logs, 'shutting down')).toBeGreaterThanOrEqual(0);
    expect(logIndex(logs, 'job completed')).toBeGreaterThan(logIndex(logs, 'shutting down'));
    expect(logIndex(logs, 'shutdown complete')).toBeGreaterThan(logIndex(logs, 'job completed'));
    expect(logIndex(logs, 'shutdown deadline near: cancelling running jobs')).toBe(-1);
    expect(await healthz(port)).toBe('refused');
    expect(await readyz(port)).toBe('refused');
  });

  it('SIGTERM during a download that cannot finish in time: handed back before the deadline, completed by another worker', async () => {
    // Jobs still running at 80 % of the deadline are cancelled: 4 s in, leaving 1 s to hand back and close.
    const deadlineMs = 5_000;
    const b02 = await bandFile(P_HAND_BACK, 'B02');
    const b04 = await bandFile(P_HAND_BACK, 'B04');
    // B02 streams at full speed and is stored; B04 (~237 kB at 20 kB/s, ~12 s) cannot finish in 5 s.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 20_000, product: P_HAND_BACK, file: b04.suffix, count: 1 });
    const { worker, port } = await spawnHealthyWorker({ SHUTDOWN_TIMEOUT_MS: String(deadlineMs) });
    const id = await enqueue('grace-handback', P_HAND_BACK, ['B02', 'B04']);
    await until('the slow band download to start', () => h.sim.downloadsOf(P_HAND_BACK, b04.suffix).bytes > 0, 20_000);
    expect(h.sim.downloadsOf(P_HAND_BACK, b02.suffix)).toMatchObject({ started: 1, completed: 1 });

    const { signalledAt, readiness } = await terminate(worker, port);
    expect(readiness).toBe(503);
    const liveness = livenessUntilGone(port);

    const exit = await worker.exited;
    const elapsed = Date.now() - signalledAt;
    // Exit 0: the shutdown completed by itself (close-with-grace's timeout would exit 1).
    expect(exit).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeLessThan(deadlineMs);
    // Live through the drain until the job was handed back, gone with the process.
    const { logs } = worker;
    expectLiveUntilThenGone(await liveness, logTime(logs, 'job cancelled; handing it back'), 3);
    const cancelAt = logIndex(logs, 'shutdown deadline near: cancelling running jobs');
    expect(cancelAt).toBeGreaterThan(logIndex(logs, 'shutting down'));
    // Not before 80 % of the deadline (pino's ISO `time`; a timer never fires early, 5 ms for clock rounding).
    expect(logTime(logs, 'shutdown deadline near: cancelling running jobs') - logTime(logs, 'shutting down')).toBeGreaterThanOrEqual(deadlineMs * 0.8 - 5);
    expect(logIndex(logs, 'job cancelled; handing it back')).toBeGreaterThan(cancelAt);
    expect(logIndex(logs, 'could not hand the job back')).toBe(-1);
    expect(logs.filter((l) => l.msg === 'job failed' || l.msg === 'job attempt failed; will retry')).toEqual([]);
    expect(logIndex(logs, 'shutdown complete')).toBeGreaterThan(cancelAt);

    // Handed back: waiting in the queue again, no attempt spent, no failure recorded.
    const job = (await h.queue.getJob(id))!;
    expect(['delayed', 'waiting', 'prioritized']).toContain(await job.getState());
    expect(job.attemptsMade).toBe(0);
    expect(job.failedReason ?? '').toBe('');
    const handedBack = await findJobById(h.db, id);
    expect(handedBack?.status).not.toBe('failed');
    expect(handedBack?.error_code).toBeNull();
    expect(h.sim.downloadsOf(P_HAND_BACK, b04.suffix)).toMatchObject({ started: 1, completed: 0 });
    // B02, stored while B04 streamed, is registered already (by this job), B04 is not.
    const cached = await findScene(h.db, P_HAND_BACK);
    expect(Object.keys(cached!.bands)).toEqual(['B02']);
    expect(cached!.bands.B02!.job_id).toBe(id);

    const second = h.spawnWorker();
    const [row] = await h.waitForJobs([id], 30_000);
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', worker_id: workerIdOf(second), attempts: 1, error_code: null });
    // The interrupted band was downloaded to completion exactly once, by the second worker; the
    // band the first worker had registered was not downloaded again.
    expect(h.sim.downloadsOf(P_HAND_BACK, b04.suffix)).toMatchObject({ started: 2, completed: 1 });
    expect(h.sim.counters().completedBy[b04.key]).toEqual({ [userAgentOf(second)]: 1 });
    expect(h.sim.downloadsOf(P_HAND_BACK, b02.suffix)).toMatchObject({ started: 1, completed: 1 });
    expect(h.sim.counters().completedBy[b02.key]).toEqual({ [userAgentOf(worker)]: 1 });
    await second.kill();
  });

  it('a second signal forces the exit at once; the job is not lost', async () => {
    const deadlineMs = 20_000;
    const b08 = await bandFile(P_FORCED, 'B08');
    // ~271 kB at 20 kB/s: ~13 s, so the graceful shutdown would wait for it.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 20_000, product: P_FORCED, file: b08.suffix, count: 1 });
    const { worker } = await spawnHealthyWorker({ SHUTDOWN_TIMEOUT_MS: String(deadlineMs) });
    const id = await enqueue('grace-forced', P_FORCED, ['B08']);
    await until('the band download to start', () => h.sim.downloadsOf(P_FORCED, b08.suffix).bytes > 0, 20_000);

    const signalledAt = Date.now();
    worker.child.kill('SIGTERM');
    await worker.waitForLog((l) => l.msg === 'shutting down', 5_000);
    // Still draining: the job is running and the process is alive.
    await sleep(300);
    expect(worker.child.exitCode).toBeNull();
    worker.child.kill('SIGINT');
    const exit = await worker.exited;
    const elapsed = Date.now() - signalledAt;
    expect(exit).toEqual({ code: 1, signal: null });
    expect(elapsed).toBeLessThan(3_000);
    expect(worker.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('second SIGINT'))).toBe(true);
    expect(logIndex(worker.logs, 'shutdown complete')).toBe(-1);

    // The dead process's session and its advisory locks are gone.
    await until(
      'the advisory locks of the killed worker to go',
      async () => {
        const res = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()`.execute(h.db);
        return res.rows[0]!.n === 0;
      },
      5_000,
    );

    // Its BullMQ lock expires (JOB_LOCK_DURATION_MS 4 s), the stalled check hands the job to another worker.
    const second = h.spawnWorker();
    const [row] = await h.waitForJobs([id], 30_000);
    // attempts 1: a stall (the killed worker) is not a failed attempt.
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', worker_id: workerIdOf(second), attempts: 1, error_code: null });
    expect(h.sim.downloadsOf(P_FORCED, b08.suffix)).toMatchObject({ started: 2, completed: 1 });
    expect(h.sim.counters().completedBy[b08.key]).toEqual({ [userAgentOf(second)]: 1 });
    await second.kill();
  });
});
