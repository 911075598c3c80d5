/**
 * Redis or Postgres goes away while the API and the workers run, then comes back (issue 3,
 * failure 5). Real services only: the machine's Postgres and Redis are never stopped (other tests
 * share them); instead the API and two spawned worker processes reach them through TCP proxies
 * (`startTcpProxy`) that the test takes down — every open connection reset, new ones refused —
 * and brings back up. The harness's own database handle stays direct, so the test can watch.
 *
 * It proves that
 * - the API answers 503 `service_unavailable` quickly (never a hang, never a 500) to
 *   `POST /v1/downloads` and `/readyz` while Redis or Postgres is down, leaves no row or job
 *   behind for a refused request, and serves 202 again once the dependency is back — the same
 *   app instance, no restart;
 * - workers reconnect and resume: a batch of slowed downloads rides out a Redis outage (shorter
 *   than the job lock: no download is even interrupted) and then a Postgres outage (which takes
 *   every scene lock with it: the downloads in flight abort and are retried); every accepted job
 *   ends `completed`, none is stuck, the worker processes stay up, and every band is downloaded
 *   to completion exactly once;
 * - a Redis outage longer than the job lock: the jobs' BullMQ locks expire, the workers cancel
 *   the downloads they can no longer own, the jobs come back through the stalled check and
 *   complete — still one complete download per band.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { sql, type Kysely } from 'kysely';
import { createLogger, findBandFile, parseProductName, resolveBand } from '@scenecache/core';
import { createDb, type DB } from '@scenecache/db';
import { startTcpProxy, type TcpProxy, until } from '@scenecache/testing';
import { buildApp } from '../../api/src/app.js';
import type { DownloadQueue } from '../../api/src/download-enqueue.js';
import { createDownloadQueue, createProducerRedis } from '../../api/src/download-queue.js';
import { startPipelineHarness, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';

/** Band streams of the sim run at this rate (bytes/s): a 10 m band (~270 kB here) takes ~2.7 s. */
const RATE = 100_000;

// A different real product per test (fixtures/cdse/sentinel2_products.tsv).
const API_PRODUCT = 'S2B_MSIL1C_20200101T235239_N0208_R130_T57KUR_20200102T010610';
const BATCH_PRODUCTS = [
  'S2A_MSIL1C_20180331T212521_N0206_R043_T07WFR_20180401T005612',
  'S2A_MSIL1C_20181004T175151_N0206_R141_T18XVM_20190219T160358',
  'S2A_MSIL1C_20190129T143751_N0207_R096_T20LLK_20190225T132350',
];
const BATCH_BANDS = ['B02', 'B03', 'B04'];
const BATCH_TENANTS = ['outage-a', 'outage-b', 'outage-c'];
const LONG_OUTAGE_PRODUCTS = [
  'S2A_MSIL2A_20180721T053721_N0212_R062_T43MDV_20201011T181419',
  'S2A_MSIL2A_20230625T234621_N0509_R073_T01WCP_20230626T022157',
];

interface Reply {
  status: number;
  body: { job_id?: string; status?: string; checks?: Record<string, string>; error?: { code: string; message: string } };
  retryAfter: string | null;
  ms: number;
}

/** One HTTP request, timed; a hang fails the test after 10 s instead of blocking it. */
async function request(baseUrl: string, method: string, path: string, json?: unknown): Promise<Reply> {
  const started = Date.now();
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: json === undefined ? {} : { 'content-type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Reply['body']), retryAfter: res.headers.get('retry-after'), ms: Date.now() - started };
}

const hostPort = (url: string, defaultPort: number) => {
  const u = new URL(url);
  return { host: u.hostname, port: u.port === '' ? defaultPort : Number(u.port) };
};

describe('Redis and Postgres go away and come back', () => {
  let h: PipelineHarness;
  let pgProxy: TcpProxy;
  let redisProxy: TcpProxy;
  /** The API on proxied connections (built as apps/api/src/main.ts builds it). */
  let api: { app: FastifyInstance; url: string; db: Kysely<DB>; redis: Redis; queue: DownloadQueue };
  let workers: SpawnedWorker[] = [];

  beforeAll(async () => {
    h = await startPipelineHarness({ simOptions: { bytesPerSecond: RATE } });
    pgProxy = await startTcpProxy(hostPort(h.dbUrl, 5432));
    redisProxy = await startTcpProxy(hostPort(h.env.REDIS_URL!, 6379));
    const logger = createLogger('api', 'silent');
    const db = createDb(pgProxy.rewrite(h.dbUrl), { max: 10, applicationName: 'scenecache-api', connectionTimeoutMillis: 3_000, logger });
    const redis = createProducerRedis(redisProxy.rewrite(h.env.REDIS_URL!), logger);
    const queue = createDownloadQueue(redis, h.settings.queuePrefix, logger);
    await queue.waitUntilReady();
    const app = buildApp({ settings: h.settings, db, queue, redis, logger });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    api = { app, url, db, redis, queue };
    // Two workers for the first two tests, with the production job lock (30 s).
    await spawnWorkers(2, { JOB_LOCK_DURATION_MS: '30000' });
  });
  afterAll(async () => {
    await Promise.all([pgProxy?.up(), redisProxy?.up()]);
    await api?.app.close();
    await api?.queue.close();
    api?.redis.disconnect();
    await api?.db.destroy();
    await h?.close();
    await Promise.all([pgProxy?.close(), redisProxy?.close()]);
  });

  /** Worker settings reaching Postgres (both pools) and Redis through the proxies. */
  function proxiedEnv(extra: Record<string, string> = {}): Record<string, string> {
    const dbUrl = pgProxy.rewrite(h.dbUrl);
    return { DATABASE_URL: dbUrl, LOCK_DATABASE_URL: dbUrl, REDIS_URL: redisProxy.rewrite(h.env.REDIS_URL!), ...extra };
  }

  /** Spawn `n` workers in place of the previous ones (killed first: a test that failed midway must not leave them taking the next test's jobs). */
  async function spawnWorkers(n: number, extra: Record<string, string> = {}): Promise<void> {
    await Promise.all(workers.map((w) => w.kill('SIGKILL')));
    workers = Array.from({ length: n }, () => h.spawnWorker(proxiedEnv(extra)));
    await Promise.all(workers.map((w) => w.waitForLog((l) => l.msg === 'worker started', 30_000)));
  }

  /** The workers are alive and never began a shutdown (an unhandled error makes close-with-grace shut down). */
  function expectWorkersAlive(): void {
    for (const w of workers) {
      expect({ pid: w.pid, exitCode: w.child.exitCode, signal: w.child.signalCode }).toEqual({ pid: w.pid, exitCode: null, signal: null });
      expect(w.logs.filter((l) => l.msg === 'shutting down after an error' || l.msg === 'shutting down')).toEqual([]);
    }
  }

  /** Every job completed in `download_jobs` and in BullMQ; nothing left waiting, delayed or active. */
  async function expectAllCompleted(ids: readonly string[], timeoutMs: number): Promise<void> {
    await h.waitForJobs(ids, timeoutMs);
    // A job whose BullMQ lock was lost may run once more after its row says completed: wait for
    // the queue to settle, then read the rows again.
    await until(
      'the queue to settle with every job completed',
      async () => {
        const c = await h.queue.getJobCounts('active', 'wait', 'delayed', 'prioritized', 'failed');
        if (c.active !== 0 || c.wait !== 0 || c.delayed !== 0 || c.prioritized !== 0 || c.failed !== 0) return false;
        const states = await Promise.all(ids.map(async (id) => (await h.queue.getJob(id))?.getState()));
        return states.every((state) => state === 'completed');
      },
      timeoutMs,
    );
    const rows = await h.waitForJobs(ids, 1_000);
    expect(rows.map((r) => ({ id: r.id, status: r.status, error: r.error_code }))).toEqual(ids.map((id) => ({ id, status: 'completed', error: null })));
  }

  async function expectNoAdvisoryLock(): Promise<void> {
    const res = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()`.execute(h.db);
    expect(res.rows[0]!.n).toBe(0);
  }

  it('the API answers 503 while Redis or Postgres is down, and 202 again once it is back, without restart', async () => {
    const accepted: string[] = [];
    let tenantNo = 0;
    const post = () => request(api.url, 'POST', '/v1/downloads', { tenant_id: `api-outage-${++tenantNo}`, scene_id: API_PRODUCT, bands: ['B8A'] });
    /** POST until a 202 (the dependency is back): every answer meanwhile is a quick 503. */
    const postUntilAccepted = async (): Promise<void> => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const res = await post();
        expect(res.ms).toBeLessThan(5_000);
        if (res.status === 202) {
          accepted.push(res.body.job_id!);
          return;
        }
        expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 503, code: 'service_unavailable' });
        if (Date.now() > deadline) throw new Error('the API did not accept a job within 15 s of the dependency coming back');
        await sleep(100);
      }
    };
    const readyz = () => request(api.url, 'GET', '/readyz');
    const untilReady = () => until('/readyz to answer 200', async () => (await readyz()).status === 200, 15_000);

    await postUntilAccepted();
    expect((await readyz()).status).toBe(200);

    // Redis goes away.
    await redisProxy.down();
    const noRedis = await post();
    expect(noRedis.ms).toBeLessThan(5_000);
    expect(noRedis).toMatchObject({ status: 503, body: { error: { code: 'service_unavailable', message: expect.stringContaining('Redis') as string } } });
    expect(noRedis.retryAfter).not.toBeNull();
    const notReadyRedis = await readyz();
    expect(notReadyRedis.ms).toBeLessThan(5_000);
    expect(notReadyRedis).toMatchObject({ status: 503, body: { status: 'failing', checks: { postgres: 'ok', redis: 'fail' } } });
    // Reads need Postgres only.
    expect((await request(api.url, 'GET', `/v1/downloads/${accepted[0]}`)).status).toBe(200);
    await sleep(1_000);
    await redisProxy.up();
    await postUntilAccepted();
    await untilReady();

    // Postgres goes away.
    await pgProxy.down();
    const noPostgres = await post();
    expect(noPostgres.ms).toBeLessThan(5_000);
    expect(noPostgres).toMatchObject({ status: 503, body: { error: { code: 'service_unavailable', message: expect.stringContaining('Postgres') as string } } });
    const notReadyPg = await readyz();
    expect(notReadyPg.ms).toBeLessThan(5_000);
    expect(notReadyPg).toMatchObject({ status: 503, body: { status: 'failing', checks: { postgres: 'fail', redis: 'ok' } } });
    const read = await request(api.url, 'GET', `/v1/downloads/${accepted[0]}`);
    expect({ status: read.status, code: read.body.error?.code }).toEqual({ status: 503, code: 'service_unavailable' });
    await sleep(1_000);
    await pgProxy.up();
    await postUntilAccepted();
    await untilReady();

    // A refused request left nothing behind: the only rows are the accepted jobs', and each completes.
    const rows = await h.db.selectFrom('download_jobs').select('id').where('tenant_id', 'like', 'api-outage-%').execute();
    expect(rows.map((r) => r.id).sort()).toEqual([...accepted].sort());
    expect(accepted).toHaveLength(3);
    await expectAllCompleted(accepted, 30_000);
    expectWorkersAlive();
  });

  it('workers ride out a Redis outage, then a Postgres outage: every accepted job completes, each band downloaded once', async () => {
    // The workers of beforeAll (job lock 30 s, the production default).
    const level = 'L1C';
    const files = new Map<string, { size: number; product: string; suffix: string }>();
    for (const product of BATCH_PRODUCTS) {
      expect(parseProductName(product).level).toBe(level);
      const served = await h.sim.productFiles(product);
      for (const id of BATCH_BANDS) {
        const band = resolveBand(level, id);
        const file = findBandFile(served, band)!;
        files.set(`${product}/${file.path}`, { size: file.size, product, suffix: band.fileSuffix });
      }
    }
    const ids: string[] = [];
    for (const product of BATCH_PRODUCTS) {
      for (const tenant of BATCH_TENANTS) {
        const res = await request(api.url, 'POST', '/v1/downloads', { tenant_id: tenant, scene_id: product, bands: BATCH_BANDS });
        expect(res.status).toBe(202);
        ids.push(res.body.job_id!);
      }
    }
    const streamsOf = (key: string) => h.sim.counters().files[key] ?? { started: 0, completed: 0, bytes: 0, ranged: 0 };
    // Streams in flight (how many depends on how the first jobs plan their bursts: up to the cap of
    // 4, several bands of one product at once).
    const streamsInFlight = () => [...files.keys()].filter((k) => streamsOf(k).started > streamsOf(k).completed);
    const inFlightAtRedisCut = await until('band streams in flight', () => {
      const now = streamsInFlight();
      return now.length > 0 ? now : undefined;
    }, 20_000);

    // Redis away for 3 s (less than the job lock): the downloads go on, BullMQ's and the workers'
    // commands wait for the connection, and nothing is interrupted.
    await redisProxy.down();
    await sleep(3_000);
    await redisProxy.up();
    await until('downloads to resume after Redis came back', () => [...files.keys()].filter((k) => streamsOf(k).completed > 0).length >= BATCH_PRODUCTS.length + 1, 30_000);
    // The streams in flight at the cut ran to their end, once.
    await until('the streams in flight at the cut to end', () => inFlightAtRedisCut.every((k) => streamsOf(k).completed > 0), 30_000);
    expect(inFlightAtRedisCut.map((k) => ({ k, started: streamsOf(k).started, completed: streamsOf(k).completed }))).toEqual(inFlightAtRedisCut.map((k) => ({ k, started: 1, completed: 1 })));

    // Postgres away for 3 s. It takes the scene locks with it: each in-flight download aborts (its
    // upload too) and is retried once Postgres is back, from the start. A stream the sim had
    // already finished but whose upload the worker then aborted would legitimately be downloaded
    // to completion twice; so the cut is timed for a quiet moment — no stream within 700 ms of its
    // end, none finished in the last 700 ms (and thus none about to start) — which makes the
    // count exact: each band completes once, and starts twice iff it was in flight at the cut.
    const quietMs = 700;
    let lastCompletions = -1;
    let lastCompletionAt = Date.now();
    let inFlightAtCut: Set<string> | undefined;
    const quietDeadline = Date.now() + 30_000;
    while (inFlightAtCut === undefined) {
      if (Date.now() > quietDeadline) throw new Error('no quiet moment to cut Postgres within 30 s');
      const snap = h.sim.counters();
      const completions = [...files.keys()].reduce((n, k) => n + (snap.files[k]?.completed ?? 0), 0);
      if (completions !== lastCompletions) {
        lastCompletions = completions;
        lastCompletionAt = Date.now();
      }
      const inFlight = [...files.entries()].filter(([k]) => (snap.files[k]?.started ?? 0) > (snap.files[k]?.completed ?? 0));
      // Nothing was interrupted so far (the Redis outage cut no stream): one stream per file at most.
      for (const [k] of files) expect(snap.files[k]?.started ?? 0).toBeLessThanOrEqual(1);
      const nearEnd = inFlight.some(([k, f]) => ((f.size - (snap.files[k]!.bytes)) / RATE) * 1000 < quietMs);
      if (inFlight.length > 0 && !nearEnd && Date.now() - lastCompletionAt >= quietMs) {
        // Same tick as the snapshot: down() destroys every proxied connection synchronously.
        void pgProxy.down();
        inFlightAtCut = new Set(inFlight.map(([k]) => k));
      } else {
        await sleep(10);
      }
    }
    await sleep(3_000);
    await pgProxy.up();

    await expectAllCompleted(ids, 45_000);
    expectWorkersAlive();
    // The Postgres cut really cost the in-flight downloads their locks: one scene lease per job
    // (its band locks and slots ride on it), so every product with a stream in flight lost one.
    const lockLostScenes = new Set(workers.flatMap((w) => w.logs).filter((l) => l.msg === 'scene lock connection lost: the lock is gone').map((l) => l.sceneId));
    expect([...new Set([...inFlightAtCut].map((k) => files.get(k)!.product))].filter((p) => !lockLostScenes.has(p))).toEqual([]);
    const counts = Object.fromEntries([...files.keys()].map((k) => [k, { started: streamsOf(k).started, completed: streamsOf(k).completed }]));
    const expected = Object.fromEntries([...files.keys()].map((k) => [k, { started: inFlightAtCut.has(k) ? 2 : 1, completed: 1 }]));
    expect(counts).toEqual(expected);
    for (const product of BATCH_PRODUCTS) {
      for (const band of BATCH_BANDS) expect(h.sim.downloadsOf(product, resolveBand(level, band).fileSuffix).completed).toBe(1);
    }
    // Every tenant got every band.
    const rows = await h.waitForJobs(ids, 1_000);
    for (const row of rows) expect(Object.keys(row.objects ?? {}).sort()).toEqual([...BATCH_BANDS].sort());
    await expectNoAdvisoryLock();

    // Idle workers shut down cleanly after all that (a failure shows the workers' last warnings and errors).
    const exits = await Promise.all(workers.map((w) => w.kill('SIGTERM')));
    const problems = (i: number) => (exits[i]!.code === 0 ? [] : workers[i]!.logs.filter((l) => (l.level ?? 0) >= 40).slice(-15));
    expect(exits.map((exit, i) => ({ exit, problems: problems(i) }))).toEqual(workers.map(() => ({ exit: { code: 0, signal: null }, problems: [] })));
  });

  it('a Redis outage longer than the job lock: downloads cancelled, jobs handed back and completed, one complete download per band', async () => {
    // The harness's 4 s job lock: a 6 s outage outlives every job's lock.
    await spawnWorkers(2);
    const band = resolveBand('L2A', 'B11');
    // The first stream of each band crawls (~64 kB at 4 kB/s, ~16 s), so the outage (6 s) and the
    // reconnection (≤ 2 s) are over long before it could finish; a retry streams at full rate.
    for (const product of LONG_OUTAGE_PRODUCTS) {
      h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 4_000, product, file: band.fileSuffix, count: 1 });
    }
    const ids: string[] = [];
    for (const product of LONG_OUTAGE_PRODUCTS) {
      for (const tenant of ['long-a', 'long-b']) {
        const res = await request(api.url, 'POST', '/v1/downloads', { tenant_id: tenant, scene_id: product, bands: ['B11'] });
        expect(res.status).toBe(202);
        ids.push(res.body.job_id!);
      }
    }
    await until('both slow downloads to start', () => LONG_OUTAGE_PRODUCTS.every((p) => h.sim.downloadsOf(p, band.fileSuffix).bytes > 0), 20_000);

    await redisProxy.down();
    await sleep(6_000);
    await redisProxy.up();

    await expectAllCompleted(ids, 45_000);
    expectWorkersAlive();
    const logs = workers.flatMap((w) => w.logs);
    // The lost BullMQ locks were noticed and the downloads cancelled (not left to finish unowned).
    expect(logs.filter((l) => l.msg === 'job lock renewal failed; cancelling the job').length).toBeGreaterThanOrEqual(LONG_OUTAGE_PRODUCTS.length);
    for (const product of LONG_OUTAGE_PRODUCTS) {
      // The crawling stream was cancelled mid-way; the retry downloaded the band once, completely.
      expect(h.sim.downloadsOf(product, band.fileSuffix)).toMatchObject({ started: 2, completed: 1 });
    }
    await expectNoAdvisoryLock();
  });
});
