/**
 * Issue 3, failure 3 — upstream faults, at the level of whole jobs: each job is enqueued through
 * the real API and run by a real worker against cdse-sim (Postgres, Redis, s3rver; no mocks), with
 * the fault injected in the simulator. What it proves, per fault:
 *
 * - a connection cut mid-stream is resumed with `Range` when the server answers 206 (the file is
 *   fetched about once, not twice), and restarted when the server ignores `Range` — the stored
 *   object is byte-identical to upstream either way, and the job spends one attempt;
 * - a burst of 503s is absorbed inside the client: the job completes on its first attempt;
 * - 429 "Max session number exceeded" is a rate limit, not a failure: with or without
 *   `Retry-After` the job completes with no error recorded and no job attempt spent; when the
 *   client's 429 budget is exhausted, or `Retry-After` is longer than it may wait in place, the job
 *   is delayed (by at least `Retry-After`), not failed, and completes once let through;
 * - an access token expired mid-run costs exactly one refresh grant and one retry, and the fleet
 *   logs in with the password once in total;
 * - a product the catalogue does not know fails at once (`product_not_found`, one attempt, no
 *   BullMQ retry, no file downloaded);
 * - a file whose bytes (SHA3-256) or size differ from the manifest on every try is quarantined
 *   fleet-wide after its second failed transfer: the job fails with `upstream_integrity` after 2
 *   attempts (of JOB_ATTEMPTS) and leaves nothing registered and no object, and another tenant's
 *   job for the same file then fails at once without fetching it; the same fault once is healed by
 *   the retry, the stored object byte-identical to upstream.
 */
import { sql } from 'kysely';
import { parseProductName, resolveBand, sceneStoragePath, type SafeFile } from '@scenecache/core';
import { findJobById, findScene, type DownloadJobRow } from '@scenecache/db';
import type { SimCounters } from '@scenecache/cdse-sim';
import { INTEGRITY_FAILURES_TO_QUARANTINE } from '@scenecache/copernicus';
import { sha3Of, until } from '@scenecache/testing';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

const JOB_ATTEMPTS = 3;

/** One product per test, so no test sees another's downloads, cache rows or faults. */
const P = {
  cut: 'S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414',
  cutNoRange: 'S2A_MSIL2A_20201007T022601_N0214_R046_T49MFN_20201007T064142',
  burst503: 'S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505',
  rate429: 'S2A_MSIL1C_20200808T010311_N0500_R045_T55PBR_20230413T212505',
  rate429RetryAfter: 'S2A_MSIL1C_20200815T005251_N0209_R002_T55PDR_20200815T023440',
  rate429Exhausted: 'S2A_MSIL1C_20200815T005251_N0209_R002_T55PCR_20200815T023440',
  rate429LongRetryAfter: 'S2B_MSIL1C_20240206T131259_N0510_R081_T27VWK_20240206T133903',
  expiredToken: 'S2A_MSIL1C_20180927T051221_N0206_R033_T42FXL_20180927T073143',
  // The sim's catalogue lacks every product whose discriminator is 99991231T235959.
  unknown: 'S2A_MSIL1C_20180927T051221_N0206_R033_T42FXL_99991231T235959',
  corruptAlways: 'S2B_MSIL2A_20230209T055009_N0509_R048_T43SBB_20230209T084058',
  truncateAlways: 'S2A_MSIL2A_20200703T103031_N0500_R108_T32UMB_20230321T201840',
  corruptOnce: 'S2A_MSIL2A_20190528T113321_N0212_R080_T29UPB_20190528T142130',
} as const;

/** The sim's file-name suffix of a band (`_B04.jp2`, `_B04_10m.jp2`). */
function suffixOf(scene: string, band: string): string {
  return resolveBand(parseProductName(scene).level, band).fileSuffix;
}

/** The global-bucket key of a band file. */
function globalKey(scene: string, file: SafeFile): string {
  return `${sceneStoragePath(parseProductName(scene))}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`;
}

/** Counter deltas since `before` (numbers that are absent count as 0). */
function delta(before: SimCounters, after: SimCounters) {
  return {
    tokenLogins: after.tokenLogins - before.tokenLogins,
    tokenRefreshes: after.tokenRefreshes - before.tokenRefreshes,
    unauthorized401: after.unauthorized401 - before.unauthorized401,
    catalogueRequests: after.catalogueRequests - before.catalogueRequests,
    manifestRequests: after.manifestRequests - before.manifestRequests,
    started: after.totals.started - before.totals.started,
    fault: (kind: string) => (after.faultsApplied[kind] ?? 0) - (before.faultsApplied[kind] ?? 0),
  };
}

async function enqueue(h: PipelineHarness, body: Record<string, unknown>): Promise<string> {
  const res = await h.enqueue(body);
  expect(res.status).toBe(202);
  return res.body.job_id!;
}

async function run(h: PipelineHarness, body: Record<string, unknown>, timeoutMs = 60_000): Promise<DownloadJobRow> {
  const [row] = await h.waitForJobs([await enqueue(h, body)], timeoutMs);
  return row!;
}

/** The global and the tenant object of `band` are whole and byte-identical to what the sim serves. */
async function expectStoredLikeUpstream(h: PipelineHarness, row: DownloadJobRow, scene: string, band: string): Promise<void> {
  const file = await h.upstreamFile(scene, band);
  const truth = await sha3Of(h.sim.fileBytes(scene, file.path));
  expect(truth).toEqual({ sha3: file.sha3_256, bytes: file.size });
  const key = globalKey(scene, file);
  const tenantBucket = `${h.settings.tenantBucketPrefix}${row.tenant_id}`;
  expect(row.objects?.[band]).toBe(`s3://${tenantBucket}/${key}`);
  for (const bucket of [h.settings.globalBucket, tenantBucket]) {
    expect(await sha3Of(await h.s3.store.getObjectStream(bucket, key))).toEqual(truth);
  }
  const cached = await findScene(h.db, scene);
  expect(cached?.is_valid).toBe(true);
  expect(cached?.bands[band]).toMatchObject({ key, size: file.size, sha3_256: file.sha3_256 });
}

/** A completed job that spent exactly one attempt and recorded no error, in the table and in BullMQ. */
async function expectCleanCompletion(h: PipelineHarness, row: DownloadJobRow, band: string): Promise<void> {
  expect(row).toMatchObject({
    status: 'completed',
    cache_status: 'downloaded',
    bands_downloaded: [band],
    attempts: 1,
    error_code: null,
    error_message: null,
  });
  const job = await h.queue.getJob(row.id);
  expect(await job?.getState()).toBe('completed');
  expect(job?.attemptsMade).toBe(1);
  expect(job?.failedReason ?? '').toBe('');
  expect(job?.stacktrace ?? []).toEqual([]);
}

describe('upstream faults: whole jobs against cdse-sim', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness({ env: { JOB_ATTEMPTS: String(JOB_ATTEMPTS) } });
    await h.startWorker();
  });
  afterAll(async () => {
    await h?.close();
  });
  afterEach(() => {
    // A fault a test left unused must not leak into the next one.
    h.sim.clearFaults();
  });

  it('a connection cut mid-stream is resumed with Range: one completed download, ~one file of bytes, one attempt', async () => {
    const scene = P.cut;
    const file = await h.upstreamFile(scene, 'B04');
    const cut = Math.floor(file.size / 2);
    h.sim.addFault({ kind: 'cutAfterBytes', bytes: cut, product: scene, file: suffixOf(scene, 'B04') });
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'cut-alpha', scene_id: scene, bands: ['B04'] });

    await expectCleanCompletion(h, row, 'B04');
    expect(row.bytes_downloaded).toBe(file.size);
    expect(delta(before, h.sim.counters()).fault('cutAfterBytes')).toBe(1);
    const d = h.sim.downloadsOf(scene, suffixOf(scene, 'B04'));
    expect(d.started).toBe(2);
    expect(d.ranged).toBeGreaterThanOrEqual(1);
    expect(d.completed).toBe(1);
    // Resumed, not restarted: the bytes sent are the file plus at most what the cut lost in
    // flight — strictly less than a restart's cut + whole file.
    expect(d.bytes).toBeGreaterThanOrEqual(file.size);
    expect(d.bytes).toBeLessThan(file.size + cut);
    await expectStoredLikeUpstream(h, row, scene, 'B04');
  });

  it('a 503 burst (3 in a row) is retried inside the client: the job completes on its first attempt', async () => {
    const scene = P.burst503;
    h.sim.addFault({ kind: 'status', status: 503, count: 3, product: scene, file: suffixOf(scene, 'B03') });
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'burst-alpha', scene_id: scene, bands: ['B03'] });

    await expectCleanCompletion(h, row, 'B03');
    expect(delta(before, h.sim.counters()).fault('status')).toBe(3);
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B03'))).toMatchObject({ started: 1, completed: 1 });
    await expectStoredLikeUpstream(h, row, scene, 'B03');
  });

  it('429 "Max session number exceeded" without Retry-After is backed off: completed, no failure recorded, no attempt spent', async () => {
    const scene = P.rate429;
    h.sim.addFault({ kind: 'status429', count: 3, product: scene, file: suffixOf(scene, 'B02') });
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'rate-alpha', scene_id: scene, bands: ['B02'] });

    await expectCleanCompletion(h, row, 'B02');
    expect(delta(before, h.sim.counters()).fault('status429')).toBe(3);
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B02'))).toMatchObject({ started: 1, completed: 1 });
    await expectStoredLikeUpstream(h, row, scene, 'B02');
  });

  it('429 with Retry-After: 1 is honoured (the job takes at least 2 s for two of them), completed on its first attempt', async () => {
    const scene = P.rate429RetryAfter;
    h.sim.addFault({ kind: 'status429', retryAfterSeconds: 1, count: 2, product: scene, file: suffixOf(scene, 'B04') });
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'rate-bravo', scene_id: scene, bands: ['B04'] });

    await expectCleanCompletion(h, row, 'B04');
    expect(delta(before, h.sim.counters()).fault('status429')).toBe(2);
    expect(row.duration_ms).toBeGreaterThanOrEqual(2_000);
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B04'))).toMatchObject({ started: 1, completed: 1 });
    await expectStoredLikeUpstream(h, row, scene, 'B04');
  });

  it("429s beyond the client's budget delay the job (not failed, no attempt spent); it runs again and completes", async () => {
    const scene = P.rate429Exhausted;
    // Retry-After: 0 keeps the test fast: the client absorbs 6 (its budget) without waiting, the
    // 7th makes it give up with upstream_rate_limited, and the processor delays the job by 0 ms.
    h.sim.addFault({ kind: 'status429', retryAfterSeconds: 0, count: 7, product: scene, file: suffixOf(scene, 'B08') });
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'rate-charlie', scene_id: scene, bands: ['B08'] });

    await expectCleanCompletion(h, row, 'B08');
    expect(delta(before, h.sim.counters()).fault('status429')).toBe(7);
    // The processor ran twice (given up once, then completed) while attemptsMade stayed at one.
    expect((await h.queue.getJob(row.id))?.attemptsStarted).toBe(2);
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B08'))).toMatchObject({ started: 1, completed: 1 });
    await expectStoredLikeUpstream(h, row, scene, 'B08');
  });

  it('429 with a Retry-After longer than the client may wait in place: the job is delayed by at least Retry-After, not failed', async () => {
    const scene = P.rate429LongRetryAfter;
    h.sim.addFault({ kind: 'status429', retryAfterSeconds: 60, count: 1, product: scene, file: suffixOf(scene, 'B04') });
    const before = h.sim.counters();

    const id = await enqueue(h, { tenant_id: 'rate-delta', scene_id: scene, bands: ['B04'] });
    // The state first, then the job: a job read before it was moved still carries its old `delay`.
    const delayed = await until('the rate-limited job to be delayed', async () => ((await h.queue.getJobState(id)) === 'delayed' ? h.queue.getJob(id) : undefined), 30_000);

    expect(delta(before, h.sim.counters()).fault('status429')).toBe(1);
    expect(delayed.delay).toBeGreaterThanOrEqual(60_000);
    expect(delayed.attemptsMade).toBe(0);
    expect(delayed.failedReason ?? '').toBe('');
    const waiting = await findJobById(h.db, id);
    expect(waiting).toMatchObject({ attempts: 1, error_code: null, error_message: null, finished_at: null });
    expect(waiting?.status).not.toBe('failed');
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B04')).started).toBe(0);
    // The scene lock and the upstream slot were released while it waits.
    const locks = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`.execute(h.db);
    expect(locks.rows[0]?.n).toBe(0);

    // Do not wait a minute: let it through now; the fault is used up.
    await delayed.promote();
    const [row] = await h.waitForJobs([id]);
    await expectCleanCompletion(h, row!, 'B04');
    expect((await h.queue.getJob(id))?.attemptsStarted).toBe(2);
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B04'))).toMatchObject({ started: 1, completed: 1 });
    await expectStoredLikeUpstream(h, row!, scene, 'B04');
  });

  it('an access token expired mid-run: one 401, one refresh grant, one retry, a single password login overall', async () => {
    const scene = P.expiredToken;
    h.sim.addFault({ kind: 'expireToken', product: scene, file: suffixOf(scene, 'B04') });
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'token-alpha', scene_id: scene, bands: ['B04'] });

    await expectCleanCompletion(h, row, 'B04');
    const after = h.sim.counters();
    const d = delta(before, after);
    expect(d.fault('expireToken')).toBe(1);
    expect(d.unauthorized401).toBe(1);
    expect(d.tokenRefreshes).toBe(1);
    expect(d.tokenLogins).toBe(0);
    // The whole file's worth of jobs shared one Keycloak session.
    expect(after.tokenLogins).toBe(1);
    expect(after.tokenFailures).toBe(0);
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B04'))).toMatchObject({ started: 1, completed: 1 });
    await expectStoredLikeUpstream(h, row, scene, 'B04');
  });

  it('a product the catalogue does not know fails at once: product_not_found, one attempt, no retry, nothing downloaded', async () => {
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'unknown-alpha', scene_id: P.unknown, bands: ['B04'] });

    expect(row).toMatchObject({ status: 'failed', error_code: 'product_not_found', attempts: 1, cache_status: null });
    expect(row.error_message).toContain(P.unknown);
    const job = await h.queue.getJob(row.id);
    expect(await job?.getState()).toBe('failed');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toMatch(/product_not_found/);
    const d = delta(before, h.sim.counters());
    expect(d.catalogueRequests).toBe(1);
    expect(d.manifestRequests).toBe(0);
    expect(d.started).toBe(0);
    expect(await findScene(h.db, P.unknown)).toBeUndefined();
  });

  describe.each([
    ['bytes differ from the manifest (corrupt)', 'corrupt', P.corruptAlways, /SHA3-256/],
    ['size differs from the manifest (truncate)', 'truncate', P.truncateAlways, /bytes, manifest\.safe says/],
  ] as const)('a file whose %s on every try', (_what, kind, scene, reason) => {
    it(`is quarantined after ${INTEGRITY_FAILURES_TO_QUARANTINE} failed transfers: the job fails with upstream_integrity, nothing stored, and the next job for it fails without a download`, async () => {
      const file = await h.upstreamFile(scene, 'B04');
      h.sim.addFault({ kind, count: 100, product: scene, file: suffixOf(scene, 'B04') });
      const before = h.sim.counters();

      const row = await run(h, { tenant_id: `integrity-${kind}`, scene_id: scene, bands: ['B04'] });

      expect(row).toMatchObject({ status: 'failed', error_code: 'upstream_integrity', attempts: INTEGRITY_FAILURES_TO_QUARANTINE, cache_status: null });
      expect(row.error_message).toMatch(reason);
      expect(row.error_message).toMatch(/failed verification 2 times: not fetched again for 3600 s/);
      const job = await h.queue.getJob(row.id);
      expect(await job?.getState()).toBe('failed');
      expect(job?.attemptsMade).toBe(INTEGRITY_FAILURES_TO_QUARANTINE);
      expect(delta(before, h.sim.counters()).fault(kind)).toBe(INTEGRITY_FAILURES_TO_QUARANTINE);
      expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B04')).started).toBe(INTEGRITY_FAILURES_TO_QUARANTINE);

      // Nothing registered for the scene, nothing at the band's key, nothing in the tenant bucket.
      expect(await findScene(h.db, scene)).toBeUndefined();
      const key = globalKey(scene, file);
      expect(await h.s3.store.headObject(h.settings.globalBucket, key)).toBeUndefined();
      expect(await h.s3.store.listKeys(h.settings.globalBucket, sceneStoragePath(parseProductName(scene)))).toEqual([]);
      expect(await h.s3.store.headObject(`${h.settings.tenantBucketPrefix}integrity-${kind}`, key).catch(() => undefined)).toBeUndefined();

      // Quarantined fleet-wide: another tenant's job fails on its first attempt, with no transfer.
      const again = await run(h, { tenant_id: `integrity-${kind}-2`, scene_id: scene, bands: ['B04'] });
      expect(again).toMatchObject({ status: 'failed', error_code: 'upstream_integrity', attempts: 1 });
      expect(again.error_message).toMatch(/failed verification 2 times/);
      expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B04')).started).toBe(INTEGRITY_FAILURES_TO_QUARANTINE);
    });
  });

  it('a corrupt file once: the retry succeeds and the stored object is byte-identical to upstream', async () => {
    const scene = P.corruptOnce;
    h.sim.addFault({ kind: 'corrupt', count: 1, product: scene, file: suffixOf(scene, 'B02') });
    const before = h.sim.counters();

    const row = await run(h, { tenant_id: 'integrity-once', scene_id: scene, bands: ['B02'] });

    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B02'], attempts: 2, error_code: null, error_message: null });
    const job = await h.queue.getJob(row.id);
    expect(await job?.getState()).toBe('completed');
    expect(job?.attemptsMade).toBe(2);
    expect(delta(before, h.sim.counters()).fault('corrupt')).toBe(1);
    // Two full transfers (the corrupt one and the good one), one object.
    expect(h.sim.downloadsOf(scene, suffixOf(scene, 'B02')).started).toBe(2);
    await expectStoredLikeUpstream(h, row, scene, 'B02');
  });
});

describe('upstream faults: a server without Range support', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    // Streams paced like CDSE's (per-stream rate limit; 2 MB/s here): an answer the client
    // abandons is cut short instead of fitting whole into the loopback socket buffers, so the
    // sim's `completed` counts only the copy the client really consumed.
    h = await startPipelineHarness({ simOptions: { rangeSupport: false, bytesPerSecond: 2_000_000 } });
    await h.startWorker();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a connection cut mid-stream restarts the file (no 206), which still completes on the first attempt, object verified', async () => {
    const scene = P.cutNoRange;
    const file = await h.upstreamFile(scene, 'B04');
    const cut = Math.floor(file.size / 2);
    h.sim.addFault({ kind: 'cutAfterBytes', bytes: cut, product: scene, file: suffixOf(scene, 'B04') });

    const row = await run(h, { tenant_id: 'norange-alpha', scene_id: scene, bands: ['B04'] });

    await expectCleanCompletion(h, row, 'B04');
    const d = h.sim.downloadsOf(scene, suffixOf(scene, 'B04'));
    // Three answers, none of them 206: the cut one; the 200 to the `Range: bytes=N-` retry, which
    // the client abandons (the server ignored Range: it cannot resume); the restart from byte 0.
    expect(d).toMatchObject({ started: 3, ranged: 0, completed: 1 });
    // The cut part, the start of the abandoned answer, and the whole file again.
    expect(d.bytes).toBeGreaterThanOrEqual(cut + file.size);
    expect(d.bytes).toBeLessThan(cut + 2 * file.size);
    expect(row.bytes_downloaded).toBe(file.size);
    await expectStoredLikeUpstream(h, row, scene, 'B04');
  });
});
