/**
 * Postgres advisory locks: the fleet's deduplication primitive.
 *
 * - The **band lock** (`band:<scene_id>:<band>`, exclusive) makes one job the downloader of one
 *   (product, band) file — the unit of download; every other job that wants that file either finds
 *   it registered or gets out of the way. Jobs that want different bands of one product download
 *   them at the same time.
 * - The **scene lock** (`scene:<scene_id>`) has two modes. Every job that downloads bands of a
 *   product holds it *shared* for as long as it does; a job holds it *exclusive* to prepare the
 *   product (reset an invalidated row, read the product's metadata from CDSE) and downgrades to
 *   shared without letting go; the admin cleanup takes it exclusive at transaction level, so it
 *   never removes a product while one of its bands is being downloaded.
 * - The **upstream slots** (`upstream-slot:<i>`, i < UPSTREAM_CONCURRENCY) cap concurrent CDSE
 *   downloads fleet-wide (CDSE allows 4 per account); one job may hold several, one per file it
 *   streams.
 *
 * Locks are session-level (`pg_try_advisory_lock`), never blocking, keyed by
 * `hashtextextended(<namespaced string>, 0)` (64-bit), and held on a **dedicated connection** of a
 * pool that must reach Postgres directly: a transaction-pooling PgBouncer would hand the session to
 * someone else between statements and silently drop or leak the lock (hence LOCK_DATABASE_URL).
 * Postgres releases a dead session's locks, so a killed worker leaves no lock behind; conversely,
 * when the lock connection dies the holder has lost its lock, and {@link SceneLease.signal} aborts.
 *
 * Sources: postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS and
 * …/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS; key hashing as in pg-boss `src/plans.ts`.
 */
import { CompiledQuery, sql, type Kysely } from 'kysely';
import pg from 'pg';
import { ScenecacheError, type Logger } from '@scenecache/core';
import { SilentConnectionDroppingClient, type Queryable } from './database.js';

/**
 * Whether an error means the connection itself is gone (SQLSTATE class 08 connection exception,
 * 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, or pg's own "Connection
 * terminated"), as opposed to an error of the statement.
 */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03')) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|ECONNRESET|EPIPE|Client has encountered a connection error/i.test(message);
}

/** Advisory lock mode: `exclusive` conflicts with every other hold, `shared` only with exclusive ones. */
export type LockMode = 'shared' | 'exclusive';

/** Take the advisory lock named `name` in `mode` without waiting; `true` when this session now holds it. */
async function tryLock(client: pg.ClientBase, name: string, mode: LockMode = 'exclusive'): Promise<boolean> {
  const fn = mode === 'shared' ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
  const res = await client.query<{ ok: boolean }>(`SELECT ${fn}(hashtextextended($1, 0)) AS ok`, [name]);
  return res.rows[0]?.ok === true;
}

/** Release one hold of the advisory lock named `name` in `mode`. */
async function unlock(client: pg.ClientBase, name: string, mode: LockMode = 'exclusive'): Promise<void> {
  const fn = mode === 'shared' ? 'pg_advisory_unlock_shared' : 'pg_advisory_unlock';
  await client.query(`SELECT ${fn}(hashtextextended($1, 0))`, [name]);
}

/** The namespaced string a scene lock's key is hashed from. */
export function sceneLockName(sceneId: string): string {
  return `scene:${sceneId}`;
}

/** The namespaced string a band lock's key is hashed from: one (product, band) file. */
export function bandLockName(sceneId: string, bandId: string): string {
  return `band:${sceneId}:${bandId}`;
}

/** The namespaced string of upstream slot `i` (0-based). */
export function upstreamSlotLockName(slot: number): string {
  return `upstream-slot:${slot}`;
}

/**
 * Counts the granted advisory locks of this database whose 64-bit key is one of the names in `$1`
 * (text[]). An advisory lock's bigint key shows in `pg_locks` split into `classid` (high 32 bits)
 * and `objid` (low 32 bits); advisory locks of other databases on the server are other fleets'.
 */
const COUNT_HELD_ADVISORY_LOCKS_SQL = `SELECT count(*)::int AS n FROM pg_locks l
   JOIN unnest($1::text[]) AS s(name)
     ON l.locktype = 'advisory' AND l.granted
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(s.name, 0)`;

/** What {@link countUpstreamSlotsInUse} can query: a Kysely instance (or transaction), a pg pool or client. */
export type LockCountQueryable = Pick<Kysely<unknown>, 'executeQuery'> | Pick<pg.Pool | pg.ClientBase, 'query'>;

/**
 * Upstream slots (of `slots`, i.e. `upstream-slot:0` … `upstream-slot:<slots-1>`) held right now,
 * fleet-wide: the granted advisory locks of those names in the queried database, whichever session
 * holds them. Reading `pg_locks` takes no lock, so any connection to the same database will do
 * (also one through PgBouncer): the API counts on its Kysely pool, the workers on their lock pool.
 *
 * @param slots - `UPSTREAM_CONCURRENCY`.
 * @returns 0…`slots`.
 * @throws pg errors when Postgres is unreachable.
 */
export async function countUpstreamSlotsInUse(db: LockCountQueryable, slots: number): Promise<number> {
  return countHeldAdvisoryLocks(db, Array.from({ length: slots }, (_, i) => upstreamSlotLockName(i)));
}

/** Granted advisory locks of `names` in the queried database, whoever holds them (reads `pg_locks`, takes no lock). */
async function countHeldAdvisoryLocks(db: LockCountQueryable, names: readonly string[]): Promise<number> {
  if ('executeQuery' in db) {
    const res = await db.executeQuery<{ n: number }>(CompiledQuery.raw(COUNT_HELD_ADVISORY_LOCKS_SQL, [names]));
    return res.rows[0]?.n ?? 0;
  }
  const res = await db.query<{ n: number }>(COUNT_HELD_ADVISORY_LOCKS_SQL, [names]);
  return res.rows[0]?.n ?? 0;
}

/** Options of {@link AdvisoryLocks}. */
export interface AdvisoryLocksOptions {
  /** A direct Postgres URL (LOCK_DATABASE_URL). */
  connectionString: string;
  /** Most lock connections held at once: one per job holding a scene lease. @defaultValue 16 */
  maxConnections?: number;
  /** How often a held lock's connection is probed with `SELECT 1` (ms). @defaultValue 2000 */
  heartbeatMs?: number;
  /**
   * Longest a lock query (a try-lock, a heartbeat) waits for its answer (ms). A lock connection
   * that goes silent (a blackholed network path) is then destroyed and its lease lost, instead of
   * hanging its job. @defaultValue 10000
   */
  queryTimeoutMs?: number;
  logger?: Logger;
}

/**
 * The lock manager of one process: a pool of dedicated lock connections (TCP keepalive on).
 * Only try-locks are used: a job that cannot take a lock holds no connection afterwards.
 */
export class AdvisoryLocks {
  private readonly pool: pg.Pool;
  private readonly heartbeatMs: number;
  private readonly maxConnections: number;
  private readonly logger: Logger | undefined;
  private readonly leases = new Set<SceneLease>();

  constructor(options: AdvisoryLocksOptions) {
    this.maxConnections = options.maxConnections ?? 16;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: this.maxConnections,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 10_000,
      query_timeout: options.queryTimeoutMs ?? 10_000,
      Client: SilentConnectionDroppingClient,
      application_name: 'scenecache-locks',
      // The server drops a lock session whose client vanished without a FIN (a worker's host or
      // its network path gone) within ~25 s instead of the OS default of hours, so its locks
      // don't outlive it (postgresql.org/docs/current/runtime-config-connection.html,
      // tcp_keepalives_*; ignored on Unix sockets). A startup parameter: needs a direct connection.
      options: '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3',
    });
    // An idle pooled connection that dies is dropped by the pool; without a listener it would crash.
    this.pool.on('error', (err) => this.logger?.warn({ err }, 'idle lock connection failed'));
    // A checked-out lock connection that dies emits `error` as well; pg-pool listens only while it
    // is idle, so without this a Postgres outage during a try-lock would crash the process. (A
    // lease adds its own listeners to notice the loss.)
    this.pool.on('connect', (client) => client.on('error', (err) => this.logger?.debug({ err }, 'lock connection failed')));
    this.heartbeatMs = options.heartbeatMs ?? 2_000;
    this.logger = options.logger;
  }

  /**
   * Try to take the scene lock in `mode`. Returns a lease holding it on its own connection (band
   * locks and upstream slots are then taken on the same connection), or `undefined` (and holds
   * nothing) when another session holds it in a conflicting mode.
   *
   * @throws pg errors when Postgres is unreachable.
   */
  async tryAcquireScene(sceneId: string, mode: LockMode = 'shared'): Promise<SceneLease | undefined> {
    return this.withFreshConnection(async (client) => {
      if (!(await tryLock(client, sceneLockName(sceneId), mode))) {
        client.release();
        return undefined;
      }
      const lease = new SceneLease(client, sceneId, mode, this.heartbeatMs, this.logger);
      // Tracked until released (a lost lease still holds its connection until then).
      this.leases.add(lease);
      lease.onRelease(() => this.leases.delete(lease));
      return lease;
    });
  }

  /**
   * Give up every lock this process holds: each held lease is lost (its signal aborts with
   * `lock_lost`, so its job stops its transfers and registers nothing) and its connection is
   * destroyed, which ends the session and its locks on the server. For a process that cannot
   * make progress (a dependency unreachable past a bound): it must not keep other workers from
   * the files it locked. Returns the number of leases given up.
   */
  abandonAll(reason: string): number {
    const leases = [...this.leases];
    for (const lease of leases) lease.abandon(reason);
    this.leases.clear();
    return leases.length;
  }

  /**
   * Run `fn` on a checked-out connection that `fn` releases (or keeps, for a lease). A pooled
   * idle connection may have died since it was last used (server restart, pg_terminate_backend)
   * before the pool noticed — after a server restart every idle one is. On a connection-level
   * error the client is destroyed and `fn` is tried again, at most once per pooled connection
   * plus one, so the retries end on a freshly opened connection.
   */
  private async withFreshConnection<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      try {
        return await fn(client);
      } catch (err) {
        client.release(err instanceof Error ? err : true);
        if (attempt > this.maxConnections || !isConnectionError(err)) throw err;
        this.logger?.warn({ err }, 'lock connection was dead; retrying on a new one');
      }
    }
  }

  /**
   * Whether the scene lock could be taken in `mode` right now (takes and drops it). For a waiter's
   * re-check after registering, so a release between its failed try-lock and its registration is
   * not missed.
   */
  async isSceneFree(sceneId: string, mode: LockMode = 'exclusive'): Promise<boolean> {
    return this.probe([sceneLockName(sceneId)], mode);
  }

  /**
   * Whether nobody holds the band lock of (`sceneId`, `bandId`) right now. Reads `pg_locks` and
   * takes no lock: a probe that took and dropped it would, for that moment, keep the band from
   * the job that should download it.
   */
  async isBandFree(sceneId: string, bandId: string): Promise<boolean> {
    return (await this.countHeld([bandLockName(sceneId, bandId)])) === 0;
  }

  /** Whether any of the `slots` upstream slots is free right now (reads `pg_locks`, takes no lock). */
  async isAnyUpstreamSlotFree(slots: number): Promise<boolean> {
    return (await this.countHeld(Array.from({ length: slots }, (_, i) => upstreamSlotLockName(i)))) < slots;
  }

  /** Granted advisory locks of `names`, fleet-wide, read from `pg_locks` on a live lock connection. */
  private async countHeld(names: readonly string[]): Promise<number> {
    return this.withFreshConnection(async (client) => {
      const n = await countHeldAdvisoryLocks(client, names);
      client.release();
      return n;
    });
  }

  /**
   * Upstream slots held right now, fleet-wide (from `pg_locks`, in this database: advisory locks
   * of other databases on the same server are other fleets').
   */
  async upstreamSlotsInUse(slots: number): Promise<number> {
    return countUpstreamSlotsInUse(this.pool, slots);
  }

  private async probe(names: string[], mode: LockMode = 'exclusive'): Promise<boolean> {
    return this.withFreshConnection(async (client) => {
      let free = false;
      for (const name of names) {
        if (await tryLock(client, name, mode)) {
          await unlock(client, name, mode);
          free = true;
          break;
        }
      }
      client.release();
      return free;
    });
  }

  /** Close every lock connection (their locks go with them). */
  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * A held scene lock on a dedicated connection, plus the band locks and upstream slots its job
 * takes on the same connection (any number of each). `signal` aborts when the connection fails
 * (error, end, or a failed heartbeat): every lock is gone with the session, so the holder must
 * abort its uploads and must not register anything.
 */
export class SceneLease {
  readonly sceneId: string;
  private modeHeld: LockMode;
  private readonly controller = new AbortController();
  private readonly slots = new Set<number>();
  private readonly bands = new Set<string>();
  private released = false;
  private readonly releaseListeners: Array<() => void> = [];
  private readonly heartbeat: NodeJS.Timeout;
  private readonly onConnectionError: (err: Error) => void;
  private readonly onConnectionEnd: () => void;

  /** @internal Created by {@link AdvisoryLocks.tryAcquireScene}. */
  constructor(
    private readonly client: pg.PoolClient,
    sceneId: string,
    mode: LockMode,
    heartbeatMs: number,
    private readonly logger: Logger | undefined,
  ) {
    this.sceneId = sceneId;
    this.modeHeld = mode;
    this.onConnectionError = (err) => this.lose(err);
    this.onConnectionEnd = () => this.lose(new Error('lock connection ended'));
    client.on('error', this.onConnectionError);
    client.on('end', this.onConnectionEnd);
    this.heartbeat = setInterval(() => {
      this.client.query('SELECT 1').catch((err: unknown) => this.lose(err instanceof Error ? err : new Error(String(err))));
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  /** Aborted (reason: a `lock_lost` ScenecacheError) when the lock's connection is lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The mode the scene lock is held in. */
  get mode(): LockMode {
    return this.modeHeld;
  }

  /** The upstream slots held (slot numbers). */
  get upstreamSlots(): readonly number[] {
    return [...this.slots];
  }

  /** The band ids whose band lock this lease holds. */
  get bandLocks(): readonly string[] {
    return [...this.bands];
  }

  /**
   * Exclusive → shared without a moment where the scene is unlocked: take the shared hold, then
   * drop the exclusive one (a session may hold both). No-op when already shared.
   * @throws ScenecacheError `lock_lost` when the lock connection is gone.
   */
  async downgradeToShared(): Promise<void> {
    this.throwIfLost();
    if (this.modeHeld === 'shared') return;
    const name = sceneLockName(this.sceneId);
    if (!(await tryLock(this.client, name, 'shared'))) throw new Error(`could not add a shared hold on ${name} while holding it exclusive`);
    await unlock(this.client, name, 'exclusive');
    this.modeHeld = 'shared';
  }

  /**
   * Try to become the downloader of one band file: its band lock, exclusive.
   * @returns false when another job holds it.
   * @throws ScenecacheError `lock_lost` when the lock connection is gone.
   */
  async tryLockBand(bandId: string): Promise<boolean> {
    this.throwIfLost();
    if (this.bands.has(bandId)) return true;
    if (!(await tryLock(this.client, bandLockName(this.sceneId, bandId)))) return false;
    this.bands.add(bandId);
    return true;
  }

  /**
   * Which of `bandIds` (of this lease's product) another session holds the band lock of right now:
   * reads `pg_locks`, takes no lock. Bands this lease holds are not asked about.
   * @throws ScenecacheError `lock_lost` when the lock connection is gone; pg errors.
   */
  async bandsLockedElsewhere(bandIds: readonly string[]): Promise<Set<string>> {
    this.throwIfLost();
    const held = new Set<string>();
    for (const bandId of bandIds) {
      if (!this.bands.has(bandId) && (await countHeldAdvisoryLocks(this.client, [bandLockName(this.sceneId, bandId)])) > 0) held.add(bandId);
    }
    return held;
  }

  /** Release a band lock taken by {@link tryLockBand} (no-op when not held or the connection is gone). */
  async unlockBand(bandId: string): Promise<void> {
    if (!this.bands.delete(bandId) || this.controller.signal.aborted) return;
    await unlock(this.client, bandLockName(this.sceneId, bandId));
  }

  /**
   * Try to take one more of the `slots` fleet-wide upstream slots (not one this lease holds), in
   * random order (so workers don't all contend for slot 0). Returns the slot number or
   * `undefined` when all are taken.
   *
   * @throws ScenecacheError `lock_lost` when the lock connection is gone.
   */
  async tryAcquireUpstreamSlot(slots: number): Promise<number | undefined> {
    this.throwIfLost();
    const order = Array.from({ length: slots }, (_, i) => i)
      .filter((i) => !this.slots.has(i))
      .sort(() => Math.random() - 0.5);
    for (const i of order) {
      if (await tryLock(this.client, upstreamSlotLockName(i))) {
        this.slots.add(i);
        return i;
      }
    }
    return undefined;
  }

  /** Give one upstream slot back (keeps the other locks). No-op when not held or the connection is gone. */
  async releaseUpstreamSlot(slot: number): Promise<void> {
    if (!this.slots.delete(slot) || this.controller.signal.aborted) return;
    await unlock(this.client, upstreamSlotLockName(slot));
  }

  /** Call `listener` once the lease is released. */
  onRelease(listener: () => void): void {
    this.releaseListeners.push(listener);
  }

  /**
   * Lose the lease on purpose: abort its signal (`lock_lost`, with `reason`) and destroy its
   * connection, so the server ends the session and drops every lock of it. `release()` still
   * returns the (destroyed) connection to the pool.
   */
  abandon(reason: string): void {
    this.lose(new Error(reason));
    (this.client as unknown as SilentConnectionDroppingClient).dropConnection?.();
  }

  /** @throws ScenecacheError `lock_lost` when the lock connection is gone. */
  throwIfLost(): void {
    if (this.controller.signal.aborted) throw this.controller.signal.reason as Error;
  }

  /**
   * Release every lock of the lease (scene, bands, slots) and return the connection. Idempotent.
   * A broken connection is destroyed instead of returned (its locks are already gone with the
   * session).
   */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.heartbeat);
    for (const listener of this.releaseListeners.splice(0)) listener();
    this.slots.clear();
    this.bands.clear();
    const broken = this.controller.signal.aborted;
    try {
      if (!broken) await this.client.query('SELECT pg_advisory_unlock_all()');
    } catch (err) {
      this.logger?.warn({ err, sceneId: this.sceneId }, 'unlock failed; destroying the lock connection');
      this.client.removeListener('error', this.onConnectionError);
      this.client.removeListener('end', this.onConnectionEnd);
      this.client.release(err instanceof Error ? err : true);
      return;
    }
    this.client.removeListener('error', this.onConnectionError);
    this.client.removeListener('end', this.onConnectionEnd);
    this.client.release(broken ? true : undefined);
  }

  private lose(err: Error): void {
    if (this.controller.signal.aborted || this.released) return;
    this.logger?.error({ err, sceneId: this.sceneId }, 'scene lock connection lost: the lock is gone');
    this.controller.abort(new ScenecacheError('lock_lost', `lost the advisory lock of ${this.sceneId}: ${err.message}`, { retryable: true, cause: err }));
  }
}

/**
 * Try the scene's advisory lock (the one downloaders hold, `scene:<id>`) at
 * transaction level: held until `trx` commits or rolls back, so it works through a
 * transaction-pooling PgBouncer too. Advisory locks of both levels share one key space: while it
 * is held no job downloads the scene, and it is not taken while a job does.
 *
 * @returns whether the lock was taken (false: a job holds it right now).
 */
export async function tryLockSceneForTransaction(trx: Queryable, sceneId: string): Promise<boolean> {
  if (!trx.isTransaction) throw new Error('tryLockSceneForTransaction needs a transaction');
  const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(hashtextextended(${sceneLockName(sceneId)}, 0)) AS ok`.execute(trx);
  return rows[0]?.ok === true;
}

/**
 * Try the scene locks of many products at once at transaction level (see
 * {@link tryLockSceneForTransaction}): one statement, held until `trx` ends.
 *
 * @returns the scene ids locked now and those a job holds (busy), each in input order.
 * @throws Error when `trx` is not a transaction; pg errors.
 */
export async function tryLockScenesForTransaction(trx: Queryable, sceneIds: readonly string[]): Promise<{ locked: string[]; busy: string[] }> {
  if (!trx.isTransaction) throw new Error('tryLockScenesForTransaction needs a transaction');
  if (sceneIds.length === 0) return { locked: [], busy: [] };
  const names = sceneIds.map(sceneLockName);
  const { rows } = await sql<{ i: number; ok: boolean }>`
    SELECT t.i::int AS i, pg_try_advisory_xact_lock(hashtextextended(t.name, 0)) AS ok
    FROM unnest(${names}::text[]) WITH ORDINALITY AS t(name, i) ORDER BY t.i`.execute(trx);
  const locked: string[] = [];
  const busy: string[] = [];
  for (const row of rows) (row.ok ? locked : busy).push(sceneIds[row.i - 1]!);
  return { locked, busy };
}
