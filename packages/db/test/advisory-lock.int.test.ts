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

  it('gives a scene lock to one session at a time and frees it on release', async () => {
    const scene = `S-${randomUUID()}`;
    const lease = await a.tryAcquireScene(scene);
    expect(lease).toBeDefined();
    expect(await b.tryAcquireScene(scene)).toBeUndefined();
    expect(await b.isSceneFree(scene)).toBe(false);
    const other = await b.tryAcquireScene(`other-${scene}`);
    expect(other).toBeDefined();
    await other!.release();
    await lease!.release();
    await lease!.release(); // idempotent
    expect(await b.isSceneFree(scene)).toBe(true);
    const again = await b.tryAcquireScene(scene);
    expect(again).toBeDefined();
    await again!.release();
  });

  it('caps upstream slots fleet-wide', async () => {
    const leases = await Promise.all([0, 1, 2].map((i) => (i % 2 ? a : b).tryAcquireScene(`slot-${i}-${randomUUID()}`)));
    const slots = await Promise.all(leases.map((l) => l!.tryAcquireUpstreamSlot(2)));
    expect(slots.filter((s) => s !== undefined).sort()).toEqual([0, 1]);
    expect(slots.filter((s) => s === undefined)).toHaveLength(1);
    expect(await a.upstreamSlotsInUse(2)).toBe(2);
    expect(await a.isAnyUpstreamSlotFree(2)).toBe(false);
    const holder = leases.find((l) => l!.upstreamSlot !== undefined)!;
    await holder.releaseUpstreamSlot();
    expect(await a.upstreamSlotsInUse(2)).toBe(1);
    expect(await b.isAnyUpstreamSlotFree(2)).toBe(true);
    await Promise.all(leases.map((l) => l!.release()));
    expect(await a.upstreamSlotsInUse(2)).toBe(0);
  });

  it('aborts the lease when its connection is terminated, and the lock is gone', async () => {
    const scene = `T-${randomUUID()}`;
    const lease = (await a.tryAcquireScene(scene))!;
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
    const next = await b.tryAcquireScene(scene);
    expect(next).toBeDefined();
    await next!.release();
  });

  it('leaves no advisory lock behind', async () => {
    expect(await advisoryLocksHeld()).toBe(0);
  });
});
