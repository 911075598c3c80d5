import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { ValidationError, type DownloadJobResult } from '@scenecache/core';
import {
  deleteJob,
  deleteJobs,
  findJobById,
  insertQueuedJob,
  insertQueuedJobs,
  listJobs,
  markJobActive,
  markJobCompleted,
  markJobFailed,
  recordJobWait,
  type DownloadJobRow,
  type NewQueuedJob,
} from '@scenecache/db';
import { createTestDatabase, type TestDatabase } from '@scenecache/testing';
import { SCENE } from './fixtures.js';

const OTHER_SCENE = 'S2A_MSIL1C_20240324T101651_N0510_R065_T32TNS_20240324T122424';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});
beforeEach(async () => {
  await t.db.deleteFrom('download_jobs').execute();
});

function job(overrides: Partial<NewQueuedJob> = {}): NewQueuedJob {
  return { id: randomUUID(), tenantId: 'acme', sceneId: SCENE, bands: ['B04', 'B08'], ...overrides };
}

/** Set a row's enqueued_at to an exact (microsecond) instant. */
async function setEnqueuedAt(id: string, instant: string): Promise<void> {
  await sql`UPDATE download_jobs SET enqueued_at = ${instant}::timestamptz WHERE id = ${id}`.execute(t.db);
}

async function countRows(): Promise<number> {
  const { n } = await t.db.selectFrom('download_jobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return n;
}

describe('insertQueuedJob', () => {
  it('inserts a queued row with the defaults', async () => {
    const input = job({ priority: 5 });
    const { row, created } = await insertQueuedJob(t.db, input);

    expect(created).toBe(true);
    expect(row).toMatchObject({
      id: input.id,
      tenant_id: 'acme',
      scene_id: SCENE,
      bands_requested: ['B04', 'B08'],
      priority: 5,
      status: 'queued',
      cache_status: null,
      bands_downloaded: [],
      bands_reused: [],
      bytes_downloaded: 0,
      bytes_copied: 0,
      attempts: 0,
      waits: 0,
      idempotency_key: null,
      started_at: null,
      finished_at: null,
    });
    expect(row.enqueued_at).toBeInstanceOf(Date);
    expect(await findJobById(t.db, input.id)).toEqual(row);
  });

  it('returns the existing row for a repeated (tenant, idempotency key)', async () => {
    const first = await insertQueuedJob(t.db, job({ idempotencyKey: 'key-1' }));
    const again = await insertQueuedJob(t.db, job({ idempotencyKey: 'key-1', bands: ['B02'] }));

    expect(first.created).toBe(true);
    expect(again).toEqual({ row: first.row, created: false });
    expect(await countRows()).toBe(1);
  });

  it('scopes idempotency keys per tenant, and rows without a key never conflict', async () => {
    const a = await insertQueuedJob(t.db, job({ idempotencyKey: 'shared' }));
    const b = await insertQueuedJob(t.db, job({ tenantId: 'globex', idempotencyKey: 'shared' }));
    await insertQueuedJob(t.db, job());
    await insertQueuedJob(t.db, job());

    expect(a.created && b.created).toBe(true);
    expect(b.row.id).not.toBe(a.row.id);
    expect(await countRows()).toBe(4);
  });

  it('creates exactly one row when the same key races', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => insertQueuedJob(t.db, job({ idempotencyKey: 'race' }))));

    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.row.id)).size).toBe(1);
    expect(await countRows()).toBe(1);
  });

  it('frees the key again when the row is deleted (an undone enqueue)', async () => {
    const first = await insertQueuedJob(t.db, job({ idempotencyKey: 'retry-me' }));
    expect(await deleteJob(t.db, first.row.id)).toBe(true);
    expect(await deleteJob(t.db, first.row.id)).toBe(false);

    const second = await insertQueuedJob(t.db, job({ idempotencyKey: 'retry-me' }));
    expect(second.created).toBe(true);
    expect(second.row.id).not.toBe(first.row.id);
  });
});

describe('insertQueuedJobs / deleteJobs', () => {
  it('inserts all rows in input order and deletes them again', async () => {
    const inputs = [job(), job({ sceneId: OTHER_SCENE, bands: ['B10'] }), job({ tenantId: 'globex' })];
    const rows = await insertQueuedJobs(t.db, inputs);

    expect(rows.map((r) => r.id)).toEqual(inputs.map((i) => i.id));
    expect(rows[1]).toMatchObject({ scene_id: OTHER_SCENE, bands_requested: ['B10'], status: 'queued' });
    expect(await insertQueuedJobs(t.db, [])).toEqual([]);

    expect(await deleteJobs(t.db, rows.map((r) => r.id))).toBe(3);
    expect(await countRows()).toBe(0);
  });
});

describe('listJobs', () => {
  /** Rows with chosen (microsecond) enqueue times; returns the ids in insertion order. */
  async function seed(specs: Array<{ at: string } & Partial<NewQueuedJob>>): Promise<string[]> {
    const ids: string[] = [];
    for (const { at, ...overrides } of specs) {
      const { row } = await insertQueuedJob(t.db, job(overrides));
      await setEnqueuedAt(row.id, at);
      ids.push(row.id);
    }
    return ids;
  }

  async function allPages(limit: number, filters: Parameters<typeof listJobs>[1] = {}): Promise<{ pages: DownloadJobRow[][]; ids: string[] }> {
    const pages: DownloadJobRow[][] = [];
    let cursor: string | undefined;
    do {
      const page = await listJobs(t.db, { ...filters, limit, cursor });
      pages.push(page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined && pages.length < 100);
    return { pages, ids: pages.flat().map((r) => r.id) };
  }

  it('lists newest first and filters by tenant, status, cache status, scene and time', async () => {
    const [old, mid, recent] = await seed([
      { at: '2026-01-01T00:00:00.000000Z' },
      { at: '2026-01-02T00:00:00.000000Z', tenantId: 'globex', sceneId: OTHER_SCENE },
      { at: '2026-01-03T00:00:00.000000Z' },
    ]);
    await markJobActive(t.db, { id: mid!, tenantId: 'globex', sceneId: OTHER_SCENE, bands: ['B04'], workerId: 'w1', attempt: 1 });
    await markJobCompleted(t.db, mid!, result({ cache_status: 'reused' }), 'w1');

    const ids = async (query: Parameters<typeof listJobs>[1]) => (await listJobs(t.db, query)).items.map((r) => r.id);
    expect(await ids({})).toEqual([recent, mid, old]);
    expect(await ids({ tenantId: 'acme' })).toEqual([recent, old]);
    expect(await ids({ status: 'completed' })).toEqual([mid]);
    expect(await ids({ status: 'queued', tenantId: 'acme' })).toEqual([recent, old]);
    expect(await ids({ cacheStatus: 'reused' })).toEqual([mid]);
    expect(await ids({ cacheStatus: 'downloaded' })).toEqual([]);
    expect(await ids({ sceneId: OTHER_SCENE })).toEqual([mid]);
    expect(await ids({ since: new Date('2026-01-02T00:00:00Z') })).toEqual([recent, mid]);
    expect(await ids({ until: new Date('2026-01-02T00:00:00Z') })).toEqual([old]);
    expect(await ids({ since: new Date('2026-01-02T00:00:00Z'), until: new Date('2026-01-03T00:00:00Z') })).toEqual([mid]);
    expect((await listJobs(t.db, {})).nextCursor).toBeNull();
  });

  it('pages through equal timestamps and sub-millisecond differences without skipping or repeating', async () => {
    // Five rows at one instant, three within one millisecond (a JS Date can't tell them apart).
    const specs = [
      ...Array.from({ length: 5 }, () => ({ at: '2026-02-01T12:00:00.123456Z' })),
      { at: '2026-02-01T12:00:00.123457Z' },
      { at: '2026-02-01T12:00:00.123999Z' },
      { at: '2026-02-01T12:00:00.123001Z' },
      { at: '2026-01-31T00:00:00.000000Z' },
    ];
    const seeded = await seed(specs);
    const { rows: expected } = await sql<{ id: string }>`SELECT id FROM download_jobs ORDER BY enqueued_at DESC, id DESC`.execute(t.db);

    for (const limit of [1, 2, 3, 4, 9, 10]) {
      const { pages, ids } = await allPages(limit);
      expect(ids).toEqual(expected.map((r) => r.id));
      expect(new Set(ids).size).toBe(seeded.length);
      expect(pages.every((p) => p.length <= limit)).toBe(true);
    }
    // Filters apply on every page.
    const acmeOnly = await allPages(2, { tenantId: 'acme', until: new Date('2026-02-01T12:00:00.124Z') });
    expect(acmeOnly.ids).toHaveLength(seeded.length);
  });

  it('keeps pages stable while newer jobs arrive', async () => {
    await seed(Array.from({ length: 4 }, (_, i) => ({ at: `2026-03-01T00:00:0${i}.000000Z` })));
    const first = await listJobs(t.db, { limit: 2 });
    await seed([{ at: '2026-03-02T00:00:00.000000Z' }]);
    const second = await listJobs(t.db, { limit: 2, cursor: first.nextCursor! });

    expect(second.items.map((r) => r.enqueued_at.toISOString())).toEqual(['2026-03-01T00:00:01.000Z', '2026-03-01T00:00:00.000Z']);
    expect(second.nextCursor).toBeNull();
  });

  it('returns rows without the cursor helper column', async () => {
    await seed([{ at: '2026-04-01T00:00:00.000000Z' }]);
    const [row] = (await listJobs(t.db, {})).items;
    expect(Object.keys(row!)).not.toContain('cursor_enqueued_at');
    expect(row).toEqual(await findJobById(t.db, row!.id));
  });

  it.each([
    ['not base64url', 'not a cursor!'],
    ['base64 of garbage', Buffer.from('hello').toString('base64url')],
    ['wrong JSON shape', Buffer.from(JSON.stringify({ t: 1 })).toString('base64url')],
    ['a millisecond timestamp', Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000Z', 'x'])).toString('base64url')],
    ['an empty id', Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000000Z', ''])).toString('base64url')],
    ['an impossible date', Buffer.from(JSON.stringify(['2026-13-45T00:00:00.000000Z', 'x'])).toString('base64url')],
    ['a day that does not exist', Buffer.from(JSON.stringify(['2026-02-30T00:00:00.000000Z', 'x'])).toString('base64url')],
  ])('rejects a cursor that is %s', async (_what, cursor) => {
    const err = await listJobs(t.db, { cursor }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ code: 'invalid_payload', field: 'cursor', httpStatus: 400 });
  });

  it.each([0, 501, 1.5])('rejects limit %p', async (limit) => {
    await expect(listJobs(t.db, { limit })).rejects.toMatchObject({ code: 'invalid_payload', field: 'limit' });
  });
});

function result(overrides: Partial<DownloadJobResult> = {}): DownloadJobResult {
  return {
    scene_id: SCENE,
    tenant_id: 'acme',
    cache_status: 'downloaded',
    bands_downloaded: ['B04'],
    bands_reused: ['B08'],
    bytes_downloaded: 131_000_000,
    bytes_copied: 262_000_000,
    objects: { B04: 's3://scenecache-tenant-acme/x/B04.jp2', B08: 's3://scenecache-tenant-acme/x/B08.jp2' },
    duration_ms: 1234.4,
    message: 'downloaded 1 band, reused 1',
    ...overrides,
  };
}

describe('worker-side transitions', () => {
  it('queued → active → wait → failed (retry) → active → completed', async () => {
    const { row } = await insertQueuedJob(t.db, job());
    const activeInput = { id: row.id, tenantId: 'acme', sceneId: SCENE, bands: ['B04', 'B08'], workerId: 'w1', attempt: 1 };

    const active = await markJobActive(t.db, activeInput);
    expect(active).toMatchObject({ status: 'active', attempts: 1, worker_id: 'w1', enqueued_at: row.enqueued_at });
    expect(active.started_at).toBeInstanceOf(Date);

    expect(await recordJobWait(t.db, row.id, 'band_download')).toBe(true);
    expect(await recordJobWait(t.db, row.id, 'upstream_slot')).toBe(true);
    expect(await recordJobWait(t.db, 'no-such-job', 'upstream_slot')).toBe(false);
    expect(await findJobById(t.db, row.id)).toMatchObject({ status: 'queued', waits: 2, waiting_for: 'upstream_slot' });

    const retry = await markJobFailed(t.db, row.id, { code: 'upstream_unavailable', message: 'CDSE answered 503', attempt: 1, final: false });
    expect(retry).toMatchObject({ status: 'queued', error_code: 'upstream_unavailable', error_message: 'CDSE answered 503', finished_at: null, waits: 2 });

    const again = await markJobActive(t.db, { ...activeInput, workerId: 'w2', attempt: 2 });
    expect(again).toMatchObject({ status: 'active', attempts: 2, worker_id: 'w2', waiting_for: null });
    expect(again.started_at).toEqual(active.started_at); // the first start counts

    const done = await markJobCompleted(t.db, row.id, result(), 'w2');
    expect(done).toMatchObject({
      status: 'completed',
      cache_status: 'downloaded',
      bands_downloaded: ['B04'],
      bands_reused: ['B08'],
      bytes_downloaded: 131_000_000,
      bytes_copied: 262_000_000,
      objects: result().objects,
      message: 'downloaded 1 band, reused 1',
      duration_ms: 1234,
      worker_id: 'w2',
      error_code: null,
      error_message: null,
      waits: 2,
      attempts: 2,
    });
    expect(done!.finished_at).toBeInstanceOf(Date);
  });

  it('creates the row when a job was enqueued straight into BullMQ', async () => {
    const id = randomUUID();
    const row = await markJobActive(t.db, { id, tenantId: 'initech', sceneId: OTHER_SCENE, bands: ['B10'], workerId: 'w9', attempt: 1 });

    expect(row).toMatchObject({ id, tenant_id: 'initech', scene_id: OTHER_SCENE, bands_requested: ['B10'], status: 'active', attempts: 1 });
    expect(row.started_at).toBeInstanceOf(Date);
  });

  it('final failure: failed, finished, duration since the first start', async () => {
    const { row } = await insertQueuedJob(t.db, job());
    await markJobActive(t.db, { id: row.id, tenantId: 'acme', sceneId: SCENE, bands: ['B04'], workerId: 'w1', attempt: 3 });
    await sql`UPDATE download_jobs SET started_at = now() - interval '2.5 seconds' WHERE id = ${row.id}`.execute(t.db);

    const failed = await markJobFailed(t.db, row.id, { code: 'product_not_found', message: 'no such product', attempt: 3, final: true });

    expect(failed).toMatchObject({ status: 'failed', error_code: 'product_not_found', error_message: 'no such product', attempts: 3 });
    expect(failed!.finished_at).toBeInstanceOf(Date);
    expect(failed!.duration_ms).toBeGreaterThanOrEqual(2_500);
    expect(failed!.duration_ms).toBeLessThan(10_000);
  });

  it('final failure of a job that never started has no duration; unknown ids update nothing', async () => {
    const { row } = await insertQueuedJob(t.db, job());
    const failed = await markJobFailed(t.db, row.id, { code: 'invalid_payload', message: 'bad', attempt: 1, final: true });

    expect(failed).toMatchObject({ status: 'failed', duration_ms: null });
    expect(await markJobFailed(t.db, 'nope', { code: 'internal', message: 'x', attempt: 1, final: true })).toBeUndefined();
    expect(await markJobCompleted(t.db, 'nope', result(), 'w1')).toBeUndefined();
  });
});
