/**
 * The Kysely instance on a `pg.Pool`, with this project's type parsing, and a readiness probe.
 *
 * Pool sizing: every process opens at most `max` connections to `DATABASE_URL`. A worker needs
 * about one per concurrently running job (jobs hold a connection only for short queries and the
 * register transaction, never while downloading or waiting), so `WORKER_CONCURRENCY` plus a couple
 * for the result writer is plenty; the API needs a handful. Keep
 * `sum over processes (max) + lock connections < max_connections` of the server (100 by default)
 * or put PgBouncer (transaction pooling) in front of `DATABASE_URL` — advisory locks never go
 * through it: they use their own connections on `LOCK_DATABASE_URL` (see advisory-lock.ts).
 */
import { Kysely, PostgresDialect, sql, type KyselyConfig, type Transaction } from 'kysely';
import pg from 'pg';
import { ScenecacheError, type Logger } from '@scenecache/core';
import type { DB } from './schema.js';

/** Anything repositories run queries on: the database or an open transaction. */
export type Queryable = Kysely<DB> | Transaction<DB>;

/** Options of {@link createDb}. */
export interface CreateDbOptions {
  /** Most connections the pool opens. @defaultValue 10 */
  max?: number;
  /** `application_name` of every connection, shown in `pg_stat_activity`. @defaultValue `scenecache` */
  applicationName?: string;
  /** How long to wait for a free or new connection before the query fails (ms). @defaultValue 10000 */
  connectionTimeoutMillis?: number;
  /**
   * Longest a query waits for its result (ms, client side, pg's `query_timeout`); then it fails
   * with "Query read timeout" and its connection is destroyed, so a connection that went silent
   * (a blackholed network path) is never handed out again. Unset: no limit.
   */
  queryTimeoutMillis?: number;
  /** Where to report errors of idle connections (server restart, network cut). */
  logger?: Logger;
  /**
   * Kysely's query log hook (`KyselyConfig.log`): called with every query, its SQL and parameters
   * and its duration (ms) — for slow-query logging, or tests that look at the queries run.
   */
  log?: KyselyConfig['log'];
}

/** The message pg rejects a query with when `query_timeout` passes. */
export const QUERY_TIMEOUT_MESSAGE = 'Query read timeout';

/**
 * A pg `Client` that destroys its socket when a query times out (`query_timeout`): pg only fails
 * the query and keeps the connection, which after a silent network failure would hang the next
 * query too. A destroyed client is dropped by pg-pool when it is released.
 */
export class SilentConnectionDroppingClient extends pg.Client {
  override query(...args: unknown[]): never {
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (result instanceof Promise) {
      result.catch((err: unknown) => {
        if (err instanceof Error && err.message === QUERY_TIMEOUT_MESSAGE) this.dropConnection();
      });
    }
    return result as never;
  }

  /** Destroy the socket: the client emits `end`, its pending queries fail, the pool drops it. */
  dropConnection(): void {
    (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
}

const INT8_OID = 20;
const DATE_OID = 1082;

/**
 * Type parsers for this pool only, so importing this module never changes how other `pg` users in
 * the process (libraries, tests) parse values.
 */
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    // int8: byte counts and COUNT(*). They stay far below 2^53 (8 PiB), so a JS number is exact.
    if (oid === INT8_OID && format !== 'binary') return (value: string) => Number(value);
    // date: a calendar day has no time zone; a JS Date would shift it by the process's offset.
    if (oid === DATE_OID && format !== 'binary') return (value: string) => value;
    // Everything else keeps pg's defaults: timestamptz → Date, jsonb → object, float → number.
    return pg.types.getTypeParser(oid, format) as (value: string) => unknown;
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Open a connection pool on `databaseUrl` (lazily: no connection is made until the first query).
 * Close it with `db.destroy()`.
 *
 * Parsing: `bigint` → `number`, `date` → `'YYYY-MM-DD'` string, `jsonb` → object,
 * `timestamptz` → `Date`.
 */
export function createDb(databaseUrl: string, options: CreateDbOptions = {}): Kysely<DB> {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'scenecache',
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
    ...(options.queryTimeoutMillis === undefined ? {} : { query_timeout: options.queryTimeoutMillis, Client: SilentConnectionDroppingClient }),
    // TCP keepalives notice a dead server or a silently dropped NAT entry on idle connections.
    keepAlive: true,
    types: typeParsers,
  });
  // An idle client's error is emitted on the pool; without a listener it would crash the process.
  // The pool already discarded the client, the next query just opens a new one.
  pool.on('error', (err) => options.logger?.warn({ err }, 'idle Postgres connection failed'));
  // A checked-out client whose connection dies emits `error` too (after failing its query), and
  // pg-pool listens only while the client is idle: without this listener a Postgres outage during
  // a query crashes the process. The failed query rejects anyway; the pool drops the client on release.
  pool.on('connect', (client) => client.on('error', (err) => options.logger?.debug({ err }, 'Postgres connection failed')));
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }), ...(options.log === undefined ? {} : { log: options.log }) });
}

/**
 * Check that the database answers (for `/readyz`).
 *
 * @param timeoutMs - give up after this long (ms). @defaultValue 2000
 * @returns the round-trip time (ms).
 * @throws ScenecacheError `service_unavailable` (HTTP 503, retryable) when the query fails or times out.
 */
export async function pingDb(db: Queryable, timeoutMs = 2_000): Promise<number> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([sql`SELECT 1`.execute(db), timeout]);
    return performance.now() - started;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new ScenecacheError('service_unavailable', `Postgres is unavailable: ${message}`, {
      retryable: true,
      httpStatus: 503,
      cause: err,
    });
  } finally {
    clearTimeout(timer);
  }
}
