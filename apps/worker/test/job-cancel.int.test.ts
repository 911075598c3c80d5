/**
 * Issue 16, cancel and long-poll against a spawned worker process (real Postgres, Redis, s3rver,
 * cdse-sim with a slowed band so a job is caught mid-download):
 *
 * - an active job that is streaming a band another job waits for is not aborted: the cancel (202,
 *   `cancel_requested`) takes effect after the band is registered — the job ends `cancelled`
 *   before its copy, no retry; it released its locks and slot, so the waiting job of another
 *   tenant completes from the cache, the band was downloaded upstream once, and no advisory lock
 *   is left; a long-poll on the cancelled job answers `cancelled` as soon as it ends;
 * - a delayed job (waiting for another's download) is cancelled at once (200), leaves the queue,
 *   and never runs; the download it waited for completes once; a finished job is 409; twice is
 *   idempotent;
 * - `?wait=` answers as soon as a running job completes, well before the wait ends.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isFinishedStatus, parseProductName, resolveBand } from '@scenecache/core';
import { findJobById, type DownloadJobRow } from '@scenecache/db';
import { heldAdvisoryLocks, until } from '@scenecache/testing';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

const PRODUCT = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

describe('cancel and long-poll with a worker process', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness();
    const worker = h.spawnWorker();
    await worker.waitForLog((l) => l.msg === 'worker started', 60_000);
  });
  afterAll(async () => {
    await h.close();
  });

  async function call(method: string, path: string): Promise<Reply> {
    const res = await fetch(`${h.apiUrl}${path}`, { method });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function enqueue(tenant: string, band: string): Promise<string> {
    const res = await h.enqueue({ tenant_id: tenant, scene_id: PRODUCT, bands: [band] });
    expect(res.status).toBe(202);
    return res.body.job_id!;
  }

  /** Poll until every job has ended (completed, failed or cancelled). */
  async function ended(ids: readonly string[], timeoutMs = 60_000): Promise<DownloadJobRow[]> {
    return until('the jobs to end', async () => {
      const rows = await Promise.all(ids.map((id) => findJobById(h.db, id)));
      return rows.every((r) => r !== undefined && isFinishedStatus(r.status)) ? (rows as DownloadJobRow[]) : undefined;
    }, timeoutMs, 50);
  }

  /** The sim's file suffix of `band` (e.g. `_B04_10m.jp2`). */
  const suffix = (band: string) => resolveBand(parseProductName(PRODUCT).level, band).fileSuffix;

  /** Slow `band`'s next download to ~6 s (the sim serves ~240 kB at this scale). */
  function slowDown(band: string): void {
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 40_000, product: PRODUCT, file: suffix(band), count: 1 });
  }

  it('an active job streaming a band another job waits for finishes and registers it, then ends cancelled; the waiter completes; one upstream download', async () => {
    slowDown('B04');
    const a = await enqueue('acme', 'B04');
    await until('A streaming B04', () => h.sim.downloadsOf(PRODUCT, suffix('B04')).started === 1, 30_000);
    const b = await enqueue('globex', 'B04');
    await until('B waiting for the band', async () => (await findJobById(h.db, b))?.waiting_for === 'band_download', 30_000);
    const longPoll = call('GET', `/v1/downloads/${a}?wait=60`);

    const cancelled = await call('DELETE', `/v1/downloads/${a}`);

    expect(cancelled.status).toBe(202);
    expect(cancelled.body).toMatchObject({ job_id: a, status: 'active', cancel_requested: true, cancelled_at: null });
    // Still streaming: the cancel does not abort the download B waits for.
    expect(h.sim.downloadsOf(PRODUCT, suffix('B04')).completed).toBe(0);

    const [rowA, rowB] = await ended([a, b]);
    expect(rowA).toMatchObject({ status: 'cancelled', cache_status: null, objects: null, error_code: null, attempts: 1 });
    expect(rowA!.cancelled_at).not.toBeNull();
    expect(rowB).toMatchObject({ status: 'completed', cache_status: 'reused', bands_reused: ['B04'], bytes_downloaded: 0 });
    expect(h.sim.downloadsOf(PRODUCT, suffix('B04'))).toMatchObject({ started: 1, completed: 1 });
    // A registered the band it streamed (B was served from it), and stopped before its copy.
    const cache = await h.db.selectFrom('global_scene_cache').select('bands').where('scene_id', '=', PRODUCT).executeTakeFirstOrThrow();
    expect(cache.bands.B04?.job_id).toBe(a);
    expect(await h.db.selectFrom('tenant_scenes').select('tenant_id').where('scene_id', '=', PRODUCT).execute()).toEqual([{ tenant_id: 'globex' }]);
    // No retry: BullMQ failed it for good with the reason.
    const job = await h.queue.getJob(a);
    expect(await job?.getState()).toBe('failed');
    expect(job?.failedReason).toMatch(/^cancelled: /);
    expect(job?.attemptsMade).toBe(1);
    // The long-poll answered with the end.
    expect(await longPoll).toMatchObject({ status: 200, body: { job_id: a, status: 'cancelled' } });
    expect(await heldAdvisoryLocks(h.db)).toEqual([]);
  });

  it('a delayed job is cancelled at once and never runs; the download it waited for completes once; finished: 409; twice: idempotent', async () => {
    slowDown('B03');
    const c = await enqueue('acme', 'B03');
    await until('C streaming B03', () => h.sim.downloadsOf(PRODUCT, suffix('B03')).started === 1, 30_000);
    const d = await enqueue('globex', 'B03');
    await until('D delayed', async () => (await findJobById(h.db, d))?.waiting_for === 'band_download' && (await h.queue.getJobState(d)) === 'delayed', 30_000);

    const first = await call('DELETE', `/v1/downloads/${d}`);

    expect(first).toMatchObject({ status: 200, body: { job_id: d, status: 'cancelled', cancel_requested: true, waiting_for: null } });
    expect(await h.queue.getJobState(d)).toBe('unknown');
    const cancelledRow = await findJobById(h.db, d);
    const [rowC] = await ended([c]);
    expect(rowC).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B03'] });
    // C woke its waiters on registering B03: D, gone from the queue, did not run again (its row
    // is as the cancel left it).
    await sleep(500);
    expect(await findJobById(h.db, d)).toEqual(cancelledRow);
    expect(h.sim.downloadsOf(PRODUCT, suffix('B03'))).toMatchObject({ started: 1, completed: 1 });

    expect(await call('DELETE', `/v1/downloads/${c}`)).toMatchObject({ status: 409, body: { error: { code: 'job_finished' } } });
    expect(await call('DELETE', `/v1/downloads/${d}`)).toEqual({ status: 200, body: first.body });
  });

  it('?wait= answers as soon as the job completes, before the wait ends', async () => {
    slowDown('B08');
    const e = await enqueue('acme', 'B08');
    const t0 = Date.now();
    const res = await call('GET', `/v1/downloads/${e}?wait=45`);
    const elapsed = Date.now() - t0;
    expect(res).toMatchObject({ status: 200, body: { job_id: e, status: 'completed', cache_status: 'downloaded' } });
    expect(elapsed).toBeLessThan(45_000);
    // It waited for the end (the slowed download takes seconds), not answered at once.
    expect(Date.parse(res.body.finished_at as string)).toBeGreaterThanOrEqual(t0 - 1_000);
  });
});
