/**
 * Issue 16, completion callbacks end to end: the API (keys mode) enqueues jobs with a
 * `callback_url` on a test receiver (HTTP on 127.0.0.1, an ephemeral port; CALLBACK_ALLOW_HTTP_LOOPBACK
 * on), a spawned worker process runs them and delivers the callbacks:
 *
 * - exactly one POST per ended job — completed, failed, cancelled — whose `X-Scenecache-Signature`
 *   verifies with the key's callback secret (HMAC-SHA256 of "<t>.<raw body>", recomputed here by
 *   hand) and whose body is the job's view (`GET /v1/downloads/{id}`) as it ended;
 * - a receiver answering 500 twice then 200: delivered on the third attempt (small backoff), the
 *   same delivery id each time, each attempt signed;
 * - 410: given up at once (`failed`), no further attempt;
 * - jobs of ADMIN_API_KEY are signed with CALLBACK_SIGNING_SECRET;
 * - a delivery claimed on a row but never queued (its announcer died) is queued by the sweep —
 *   once — and delivered; a recent one is left to its announcer;
 * - the worker's log (debug) holds no signing secret and no signature, in any encoding.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { CALLBACK_HEADERS, CALLBACK_QUEUE, createLogger, isFinishedStatus, parseProductName, resolveBand, type CallbackJobData } from '@scenecache/core';
import { createApiKey, findJobById, insertQueuedJob } from '@scenecache/db';
import { until } from '@scenecache/testing';
import { sweepLostCallbacks } from '../src/callback-delivery.js';
import { JobEndAnnouncer } from '../src/job-end-announcer.js';
import { startPipelineHarness, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';

const PRODUCT = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
/** The sim's catalogue does not know it (missing discriminator): the job fails at once. */
const UNKNOWN = 'S2A_MSIL1C_20180927T051221_N0206_R033_T42FXL_99991231T235959';
const ADMIN_API_KEY = 'test-admin-key-callbacks-0123456789';
const BOOTSTRAP_SECRET = 'bootstrap-callback-signing-secret-0123456789';

/** One POST the receiver got. */
interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The test receiver: records every POST; `/flaky/*` answers 500 twice then 200, `/gone/*` 410, the rest 200. */
async function startReceiver(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const seen = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const n = (seen.get(path) ?? 0) + 1;
      seen.set(path, n);
      if (path.startsWith('/flaky/')) res.statusCode = n <= 2 ? 500 : 200;
      else if (path.startsWith('/gone/')) res.statusCode = 410;
      else res.statusCode = 200;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

/** Verify a signature header as a receiver would, by hand: `t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
function signatureValid(secret: string, header: string | string[] | undefined, body: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(header));
  if (!match) return false;
  const [, t, v1] = match;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return expected === v1 && Math.abs(Date.now() / 1000 - Number(t)) < 300;
}

describe('completion callbacks with a worker process', () => {
  let h: PipelineHarness;
  let worker: SpawnedWorker;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let key: string;
  let callbackSecret: string;

  beforeAll(async () => {
    receiver = await startReceiver();
    h = await startPipelineHarness({
      env: {
        AUTH_MODE: 'keys',
        ADMIN_API_KEY,
        CALLBACK_SIGNING_SECRET: BOOTSTRAP_SECRET,
        CALLBACK_ALLOW_HTTP_LOOPBACK: 'true',
        CALLBACK_BACKOFF_MS: '200',
        CALLBACK_MAX_ATTEMPTS: '5',
        CALLBACK_TIMEOUT_MS: '3000',
      },
    });
    const created = await createApiKey(h.db, { tenantId: 'acme', name: 'callbacks' });
    key = created.secret;
    callbackSecret = created.callbackSecret;
    worker = h.spawnWorker({ LOG_LEVEL: 'debug' });
    await worker.waitForLog((l) => l.msg === 'worker started', 60_000);
  });
  afterAll(async () => {
    await h.close();
    await new Promise((resolve) => receiver.server.close(resolve));
  });

  async function call(method: string, path: string, json?: unknown, apiKey = key): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${h.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function enqueue(scene: string, band: string, path: string, apiKey = key): Promise<string> {
    const res = await call('POST', '/v1/downloads', { tenant_id: 'acme', scene_id: scene, bands: [band], callback_url: `${receiver.url}${path}` }, apiKey);
    expect(res.status).toBe(202);
    return res.body.job_id as string;
  }

  /** Wait until the job ended and its callback's delivery ended (delivered or failed); its view then. */
  async function settled(id: string): Promise<Record<string, unknown>> {
    await until('the job and its callback to end', async () => {
      const row = await findJobById(h.db, id);
      return row !== undefined && isFinishedStatus(row.status) && (row.callback_state === 'delivered' || row.callback_state === 'failed');
    }, 60_000, 50);
    return (await call('GET', `/v1/downloads/${id}`)).body;
  }

  const postsOf = (id: string) => receiver.received.filter((r) => r.headers[CALLBACK_HEADERS.jobId] === id);

  /** The body sent: the view as the job ended (its callback pending, no attempt yet). */
  function expectBodyIsTheView(body: string, view: Record<string, unknown>): void {
    const callback = view.callback as Record<string, unknown>;
    expect(JSON.parse(body)).toEqual({ ...view, callback: { url: callback.url, state: 'pending', attempts: 0, last_status: null, last_error: null, delivered_at: null } });
  }

  it('a completed job: one POST, signed with the key\'s secret, its body the job\'s view', async () => {
    const id = await enqueue(PRODUCT, 'B04', '/ok/completed');

    const view = await settled(id);

    expect(view).toMatchObject({ status: 'completed', callback: { url: `${receiver.url}/ok/completed`, state: 'delivered', attempts: 1, last_status: 200, last_error: null } });
    expect(typeof (view.callback as { delivered_at: unknown }).delivered_at).toBe('string');
    await sleep(1_000);
    const posts = postsOf(id);
    expect(posts).toHaveLength(1);
    const post = posts[0]!;
    expect(post.path).toBe('/ok/completed');
    expect(post.headers['content-type']).toBe('application/json');
    expect(post.headers[CALLBACK_HEADERS.delivery]).toMatch(/^[0-9a-f-]{36}$/);
    expect(post.headers[CALLBACK_HEADERS.attempt]).toBe('1');
    expect(signatureValid(callbackSecret, post.headers[CALLBACK_HEADERS.signature], post.body)).toBe(true);
    expect(signatureValid(BOOTSTRAP_SECRET, post.headers[CALLBACK_HEADERS.signature], post.body)).toBe(false);
    expectBodyIsTheView(post.body, view);
  });

  it('a failed job and a cancelled job: one POST each, with the failure and the cancel', async () => {
    const failed = await enqueue(UNKNOWN, 'B04', '/ok/failed');
    // A slowed download keeps the job running while it is cancelled.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 40_000, product: PRODUCT, file: resolveBand(parseProductName(PRODUCT).level, 'B03').fileSuffix, count: 1 });
    const cancelled = await enqueue(PRODUCT, 'B03', '/ok/cancelled');
    expect([200, 202]).toContain((await call('DELETE', `/v1/downloads/${cancelled}`)).status);

    const failedView = await settled(failed);
    const cancelledView = await settled(cancelled);

    expect(failedView).toMatchObject({ status: 'failed', error: { code: 'product_not_found' }, callback: { state: 'delivered', attempts: 1 } });
    expect(cancelledView).toMatchObject({ status: 'cancelled', callback: { state: 'delivered', attempts: 1 } });
    await sleep(1_000);
    for (const [id, view] of [[failed, failedView], [cancelled, cancelledView]] as const) {
      const posts = postsOf(id);
      expect(posts).toHaveLength(1);
      expect(signatureValid(callbackSecret, posts[0]!.headers[CALLBACK_HEADERS.signature], posts[0]!.body)).toBe(true);
      expectBodyIsTheView(posts[0]!.body, view);
    }
  });

  it('500, 500, then 200: delivered on the third attempt, the same delivery each time, each attempt signed', async () => {
    const id = await enqueue(PRODUCT, 'B02', '/flaky/job');

    const view = await settled(id);

    expect(view).toMatchObject({ status: 'completed', callback: { state: 'delivered', attempts: 3, last_status: 200, last_error: null } });
    const posts = postsOf(id);
    expect(posts).toHaveLength(3);
    expect(posts.map((p) => p.headers[CALLBACK_HEADERS.attempt])).toEqual(['1', '2', '3']);
    expect(new Set(posts.map((p) => p.headers[CALLBACK_HEADERS.delivery])).size).toBe(1);
    expect(new Set(posts.map((p) => p.body)).size).toBe(1);
    for (const post of posts) expect(signatureValid(callbackSecret, post.headers[CALLBACK_HEADERS.signature], post.body)).toBe(true);
  });

  it('410 Gone: the delivery is given up at once (failed), no further attempt', async () => {
    const id = await enqueue(PRODUCT, 'B08', '/gone/job');

    const view = await settled(id);

    expect(view).toMatchObject({ status: 'completed', callback: { state: 'failed', attempts: 1, last_status: 410, delivered_at: null } });
    expect((view.callback as { last_error: string }).last_error).toMatch(/410/);
    await sleep(1_500);
    expect(postsOf(id)).toHaveLength(1);
  });

  it('a job of ADMIN_API_KEY is signed with CALLBACK_SIGNING_SECRET', async () => {
    const id = await enqueue(PRODUCT, 'B04', '/ok/admin', ADMIN_API_KEY);

    const view = await settled(id);

    expect(view).toMatchObject({ status: 'completed', callback: { state: 'delivered' } });
    const [post] = postsOf(id);
    expect(signatureValid(BOOTSTRAP_SECRET, post!.headers[CALLBACK_HEADERS.signature], post!.body)).toBe(true);
  });

  it('the sweep queues a delivery that was claimed but never queued, once; a recent one is left to its announcer', async () => {
    // Two jobs that ended with their delivery claimed (`pending`) and no BullMQ job: as if the
    // process that claimed them died before adding them. One ended 5 minutes ago, one just now.
    const lost = randomUUID();
    const recent = randomUUID();
    for (const [id, ago] of [[lost, '5 minutes'], [recent, '10 seconds']] as const) {
      await insertQueuedJob(h.db, { id, tenantId: 'acme', sceneId: PRODUCT, bands: ['B04'], callbackUrl: `${receiver.url}/ok/sweep-${id}`, callbackKeyId: null });
      await sql`UPDATE download_jobs SET status = 'failed', error_code = 'internal', error_message = 'lost', finished_at = now() - ${ago}::interval, callback_state = 'pending' WHERE id = ${id}`.execute(h.db);
    }
    const redis = new Redis(h.settings.redisUrl, { maxRetriesPerRequest: null });
    const callbackQueue = new Queue<CallbackJobData>(CALLBACK_QUEUE, { connection: redis, prefix: h.settings.queuePrefix });
    try {
      const deps = { db: h.db, logger: createLogger('sweep-test', 'silent'), callbackQueue, announcer: new JobEndAnnouncer({ db: h.db, redis, callbackQueue, settings: h.settings }) };
      expect(await sweepLostCallbacks(deps)).toBe(1);
      const view = await settled(lost);
      expect(view).toMatchObject({ status: 'failed', callback: { state: 'delivered', attempts: 1 } });
      expect(postsOf(lost)).toHaveLength(1);
      expect(signatureValid(BOOTSTRAP_SECRET, postsOf(lost)[0]!.headers[CALLBACK_HEADERS.signature], postsOf(lost)[0]!.body)).toBe(true);
      // Delivered (and its BullMQ job kept): the next sweep sends nothing again.
      expect(await sweepLostCallbacks(deps)).toBe(0);
      expect((await findJobById(h.db, recent))?.callback_state).toBe('pending');
      expect(postsOf(recent)).toHaveLength(0);
    } finally {
      await callbackQueue.close();
      await redis.quit();
    }
  });

  it('the worker logs no signing secret and no signature, in any encoding', () => {
    expect(worker.logs.filter((l) => l.msg === 'completion callback delivered').length).toBeGreaterThanOrEqual(5);
    const signatures = receiver.received.map((r) => /v1=([0-9a-f]{64})/.exec(String(r.headers[CALLBACK_HEADERS.signature]))![1]!);
    const secrets = [callbackSecret, BOOTSTRAP_SECRET, ...signatures];
    const forms = secrets.flatMap((s) => [s, Buffer.from(s).toString('hex'), Buffer.from(s).toString('base64').slice(0, -4), encodeURIComponent(s)]);
    const logged = worker.logs.map((l) => JSON.stringify(l));
    expect(logged.length).toBeGreaterThan(20);
    const leaks = logged.flatMap((line) => forms.filter((f) => line.includes(f)).map((f) => ({ form: f.slice(0, 12), line: line.slice(0, 200) })));
    expect(leaks).toEqual([]);
  });
});
