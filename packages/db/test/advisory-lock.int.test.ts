import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { AdvisoryLocks } from '@scenecache/db';
import { createTestDatabase } from '@scenecache/testing';

type TestDb = Awaited<ReturnType<typeof createTestDatabase>>;

describe('AdvisoryLocks', () => {
  let tdb: TestDb;
  let a: AdvisoryLocks;
  let b: AdvisoryLocks;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    a = new AdvisoryLocks({ connectionString: tdb.url, maxConnections: 6, heartbeatMs: 100 });
    b = new AdvisoryLocks({ connectionString: tdb.url, maxConnections: 6, heartbeatMs: 100 });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await tdb.drop();
  });

  const advisoryLocksHeld = async (): Promise<number> => {
    const r = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`.execute(tdb.db);
    return r.rows[0]!.n;
  };

  it('gives a scene lock exclusive to one session at a time and frees it on release', async () => {
    const scene = `S-${randomUUID()}`;
    const lease = await a.tryAcquireScene(scene, 'exclusive');
    expect(lease).toBeDefined();
    expect(await b.tryAcquireScene(scene, 'exclusive')).toBeUndefined();
    expect(await b.tryAcquireScene(scene, 'shared')).toBeUndefined();
    expect(await b.isSceneFree(scene)).toBe(false);
    expect(await b.isSceneFree(scene, 'shared')).toBe(false);
    const other = await b.tryAcquireScene(`other-${scene}`, 'exclusive');
    expect(other).toBeDefined();
    await other!.release();
    await lease!.release();
    await lease!.release(); // idempotent
    expect(await b.isSceneFree(scene)).toBe(true);
    const again = await b.tryAcquireScene(scene, 'exclusive');
    expect(again).toBeDefined();
    await again!.release();
  });

  it('shares a scene lock between downloaders, keeps exclusive holders out, and downgrades without a gap', async () => {
    const scene = `D-${randomUUID()}`;
    const first = (await a.tryAcquireScene(scene, 'shared'))!;
    const second = (await b.tryAcquireScene(scene, 'shared'))!;
    expect(first.mode).toBe('shared');
    expect(second).toBeDefined();
    expect(await b.tryAcquireScene(scene, 'exclusive')).toBeUndefined();
    expect(await a.isSceneFree(scene, 'exclusive')).toBe(false);
    expect(await a.isSceneFree(scene, 'shared')).toBe(true);
    await first.release();
    await second.release();

    const preparing = (await a.tryAcquireScene(scene, 'exclusive'))!;
    await preparing.downgradeToShared();
    expect(preparing.mode).toBe('shared');
    // Shared now: another downloader gets in, an exclusive holder still does not.
    const joined = (await b.tryAcquireScene(scene, 'shared'))!;
    expect(joined).toBeDefined();
    expect(await b.tryAcquireScene(scene, 'exclusive')).toBeUndefined();
    await joined.release();
    await preparing.release();
    expect(await b.isSceneFree(scene, 'exclusive')).toBe(true);
  });

  it('gives each band file to one lease at a time; other bands of the product stay free', async () => {
    const scene = `B-${randomUUID()}`;
    const x = (await a.tryAcquireScene(scene, 'shared'))!;
    const y = (await b.tryAcquireScene(scene, 'shared'))!;
    expect(await x.tryLockBand('B04')).toBe(true);
    expect(await x.tryLockBand('B04')).toBe(true); // re-entrant for its holder
    expect(await y.tryLockBand('B04')).toBe(false);
    expect(await y.tryLockBand('B08')).toBe(true);
    expect(await a.isBandFree(scene, 'B04')).toBe(false);
    expect(await a.isBandFree(scene, 'B02')).toBe(true);
    await x.unlockBand('B04');
    expect(await b.isBandFree(scene, 'B04')).toBe(true);
    expect(await y.tryLockBand('B04')).toBe(true);
    await x.release();
    await y.release();
    expect(await a.isBandFree(scene, 'B08')).toBe(true);
    expect(await advisoryLocksHeld()).toBe(0);
  });

  it('caps upstream slots fleet-wide', async () => {
    const leases = await Promise.all([0, 1, 2].map((i) => (i % 2 ? a : b).tryAcquireScene(`slot-${i}-${randomUUID()}`)));
    const slots = await Promise.all(leases.map((l) => l!.tryAcquireUpstreamSlot(2)));
    expect(slots.filter((s) => s !== undefined).sort()).toEqual([0, 1]);
    expect(slots.filter((s) => s === undefined)).toHaveLength(1);
    expect(await a.upstreamSlotsInUse(2)).toBe(2);
    expect(await a.isAnyUpstreamSlotFree(2)).toBe(false);
    const holder = leases.find((l) => l!.upstreamSlots.length > 0)!;
    await holder.releaseUpstreamSlot(holder.upstreamSlots[0]!);
    expect(await a.upstreamSlotsInUse(2)).toBe(1);
    expect(await b.isAnyUpstreamSlotFree(2)).toBe(true);
    await Promise.all(leases.map((l) => l!.release()));
    expect(await a.upstreamSlotsInUse(2)).toBe(0);
  });

  it('lets one lease hold several slots, one per file it streams, up to the cap', async () => {
    const lease = (await a.tryAcquireScene(`multi-${randomUUID()}`))!;
    const taken = [await lease.tryAcquireUpstreamSlot(3), await lease.tryAcquireUpstreamSlot(3), await lease.tryAcquireUpstreamSlot(3)];
    expect([...taken].sort()).toEqual([0, 1, 2]);
    expect(await lease.tryAcquireUpstreamSlot(3)).toBeUndefined();
    expect(await b.upstreamSlotsInUse(3)).toBe(3);
    await lease.releaseUpstreamSlot(taken[1]!);
    expect([...lease.upstreamSlots].sort()).toEqual([taken[0], taken[2]].sort());
    expect(await b.upstreamSlotsInUse(3)).toBe(2);
    await lease.release();
    expect(await b.upstreamSlotsInUse(3)).toBe(0);
  });

  it('aborts the lease when its connection is terminated, and the lock is gone', async () => {
    const scene = `T-${randomUUID()}`;
    const lease = (await a.tryAcquireScene(scene, 'exclusive'))!;
    // Leave several idle connections in b's pool: after the kill every one of them is dead, and
    // b's next try-lock must get past all of them to a fresh connection.
    await Promise.all([1, 2, 3, 4].map((i) => b.isSceneFree(`warm-${i}-${scene}`)));
    const pids = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE application_name = 'scenecache-locks' AND datname = current_database()`.execute(tdb.db);
    const aborted = new Promise<unknown>((resolve) => lease.signal.addEventListener('abort', () => resolve(lease.signal.reason)));
    // Terminate every lock connection of this database; the held lease must notice.
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'scenecache-locks' AND datname = current_database()`.execute(tdb.db);
    expect(pids.rows.length).toBeGreaterThan(0);
    const reason = await aborted;
    expect((reason as { code: string }).code).toBe('lock_lost');
    expect(() => lease.throwIfLost()).toThrow(/lost the advisory lock/);
    await lease.release();
    const next = await b.tryAcquireScene(scene, 'exclusive');
    expect(next).toBeDefined();
    await next!.release();
  });

  it('leaves no advisory lock behind', async () => {
    expect(await advisoryLocksHeld()).toBe(0);
  });
});
