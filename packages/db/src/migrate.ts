/**
 * The migration runner behind `npm run migrate` and the k8s migrate Job: up to the latest
 * migration, one step down, to a named migration (up or down), and a status listing.
 *
 * Concurrency: Kysely's Postgres adapter runs every migration batch under a session advisory lock
 * (`pg_advisory_lock` on a fixed key), so two runners started at once serialise; the second sees
 * the migrations already recorded in `kysely_migration` and applies nothing.
 *
 * A database **ahead** of this release (it records migrations this release does not know, all
 * after the last one it does know: a newer release migrated it, then the deployment was rolled
 * back) is left alone by {@link migrateToLatest}, with a warning, so the previous release's
 * migrate Job still succeeds; migrations are written to stay backward compatible for one release
 * (docs/operations.md, "Upgrades and rollback"). Going down from such a database needs the release
 * that knows the newer migrations' `down()`: {@link migrateDown} and {@link migrateTo} refuse.
 */
import { sql, type Kysely } from 'kysely';
import { Migrator, NO_MIGRATIONS, type MigrationProvider, type MigrationResultSet } from 'kysely/migration';
import { migrations } from '@scenecache/migrations';
import type { Logger } from '@scenecache/core';
import { createDb } from './database.js';
import { databaseNameOf, ensureDatabase, redactUrl } from './database-admin.js';

/** The migrations compiled into `@scenecache/migrations`, by name in apply order. */
const provider: MigrationProvider = { getMigrations: () => Promise.resolve({ ...migrations }) };

/** Kysely's table of applied migrations (`name`, `timestamp`). */
const MIGRATION_TABLE = 'kysely_migration';

/** The target of {@link migrateTo} that reverts every migration. */
export const NO_MIGRATIONS_TARGET = 'none';

/** Names of the migrations this release knows, in apply order. */
export function knownMigrationNames(): string[] {
  return Object.keys(migrations).sort();
}

/** A migration run failed. */
export class MigrationError extends Error {
  /** The migration that failed, or `undefined` when the run failed before any migration ran. */
  readonly migrationName: string | undefined;

  constructor(message: string, migrationName: string | undefined, cause: unknown) {
    super(message, { cause });
    this.name = 'MigrationError';
    this.migrationName = migrationName;
  }
}

/** What {@link migrateToLatest} did. */
export interface MigrateResult {
  /** Names of the migrations this call applied, in order; empty when already up to date. */
  applied: string[];
  /**
   * Present when the database is ahead of this release: the applied migrations it does not know
   * (nothing was applied, nothing was reverted).
   */
  ahead?: string[];
}

/** What {@link migrateDown} did. */
export interface MigrateDownResult {
  /** Names of the migrations this call reverted (at most one). */
  reverted: string[];
}

/** What {@link migrateTo} did: at most one of the lists is non-empty. */
export interface MigrateToResult {
  /** Migrations applied, in order. */
  applied: string[];
  /** Migrations reverted, newest first. */
  reverted: string[];
}

/** One migration as {@link migrationStatus} reports it. */
export interface MigrationState {
  name: string;
  /**
   * `applied`: recorded in the database; `pending`: known to this release, not applied;
   * `unknown`: applied but not known to this release (a newer release applied it).
   */
  state: 'applied' | 'pending' | 'unknown';
  /** When it was applied (the migrating machine's clock), for `applied` and `unknown`. */
  appliedAt: Date | undefined;
}

/**
 * Bring the database `databaseUrl` names to the latest migration, creating the database first if it
 * does not exist (through the server's `postgres` database; needs the CREATEDB privilege only then).
 * Safe to run from several processes at once. A database ahead of this release is left as it is
 * (`ahead` lists what this release does not know; a warning is logged).
 *
 * @throws MigrationError naming the failing migration; the batch's transaction is rolled back.
 *   Also when the database records unknown migrations while some known one is still pending.
 */
export async function migrateToLatest(databaseUrl: string, logger?: Logger): Promise<MigrateResult> {
  await ensureDatabaseOrThrow(databaseUrl, logger);
  const applied = await appliedMigrations(databaseUrl);
  const unknown = unknownOf(applied);
  if (unknown.length > 0) {
    const pending = knownMigrationNames().filter((name) => !applied.has(name));
    if (pending.length > 0) {
      throw new MigrationError(
        `the database records migrations this release does not know (${unknown.join(', ')}) while ${pending.join(', ')} ${pending.length === 1 ? 'is' : 'are'} not applied: migrate it with the release that has them`,
        undefined,
        undefined,
      );
    }
    logger?.warn({ ahead: unknown }, `the database is ahead of this release (it has ${unknown.join(', ')}); nothing to apply`);
    return { applied: [], ahead: unknown };
  }
  const results = await withMigrator(databaseUrl, (migrator) => migrator.migrateToLatest());
  const names = results.filter((r) => r.direction === 'Up').map((r) => r.migrationName);
  for (const name of names) logger?.info({ migration: name }, 'applied migration');
  return { applied: names };
}

/**
 * Revert the last applied migration (its `down()`; for most migrations this drops data).
 *
 * @throws MigrationError naming the failing migration, or when the last applied migration is
 *   unknown to this release (run the release that added it).
 */
export async function migrateDown(databaseUrl: string, logger?: Logger): Promise<MigrateDownResult> {
  await refuseWhenAhead(databaseUrl, 'revert');
  const results = await withMigrator(databaseUrl, (migrator) => migrator.migrateDown());
  const reverted = results.filter((r) => r.direction === 'Down').map((r) => r.migrationName);
  for (const name of reverted) logger?.info({ migration: name }, 'reverted migration');
  return { reverted };
}

/**
 * Migrate up or down until `target` is the last applied migration; `target` =
 * {@link NO_MIGRATIONS_TARGET} (`none`) reverts every migration. Creates a missing database (the
 * run may go up). Reverting runs each migration's `down()`, newest first, in one transaction.
 *
 * @throws MigrationError when `target` is not a migration of this release (nothing is run), when
 *   the database records migrations this release does not know, or naming the failing migration.
 */
export async function migrateTo(databaseUrl: string, target: string, logger?: Logger): Promise<MigrateToResult> {
  const known = knownMigrationNames();
  if (target !== NO_MIGRATIONS_TARGET && !known.includes(target)) {
    throw new MigrationError(`no migration named ${target}: expected one of ${[...known, NO_MIGRATIONS_TARGET].join(', ')}`, undefined, undefined);
  }
  await ensureDatabaseOrThrow(databaseUrl, logger);
  await refuseWhenAhead(databaseUrl, `migrate to ${target}`);
  const results = await withMigrator(databaseUrl, (migrator) => migrator.migrateTo(target === NO_MIGRATIONS_TARGET ? NO_MIGRATIONS : target));
  const applied = results.filter((r) => r.direction === 'Up').map((r) => r.migrationName);
  const reverted = results.filter((r) => r.direction === 'Down').map((r) => r.migrationName);
  for (const name of applied) logger?.info({ migration: name }, 'applied migration');
  for (const name of reverted) logger?.info({ migration: name }, 'reverted migration');
  return { applied, reverted };
}

/**
 * Every migration this release knows, applied or pending, in apply order, followed by applied
 * migrations it does not know (`unknown`). Reads only; never creates the database.
 *
 * @throws MigrationError when the database cannot be reached (or does not exist).
 */
export async function migrationStatus(databaseUrl: string): Promise<MigrationState[]> {
  const applied = await appliedMigrations(databaseUrl);
  const known = knownMigrationNames();
  const states: MigrationState[] = known.map((name) => {
    const appliedAt = applied.get(name);
    return { name, state: appliedAt === undefined ? 'pending' : 'applied', appliedAt };
  });
  for (const [name, appliedAt] of [...applied].sort(([a], [b]) => a.localeCompare(b))) {
    if (!known.includes(name)) states.push({ name, state: 'unknown', appliedAt });
  }
  return states;
}

async function ensureDatabaseOrThrow(databaseUrl: string, logger: Logger | undefined): Promise<void> {
  let created: boolean;
  try {
    created = await ensureDatabase(databaseUrl);
  } catch (err) {
    throw new MigrationError(`cannot reach or create the database ${redactUrl(databaseUrl)}: ${messageOf(err)}`, undefined, err);
  }
  if (created) logger?.info({ database: databaseNameOf(databaseUrl) }, 'created database');
}

/** Applied migrations by name → when, read from `kysely_migration` (empty when it does not exist). */
async function appliedMigrations(databaseUrl: string): Promise<Map<string, Date>> {
  return withDb(databaseUrl, async (db) => {
    const { rows: exists } = await sql<{ table: string | null }>`SELECT to_regclass(${MIGRATION_TABLE})::text AS table`.execute(db);
    if (exists[0]?.table == null) return new Map<string, Date>();
    const { rows } = await sql<{ name: string; timestamp: string }>`SELECT name, timestamp FROM ${sql.table(MIGRATION_TABLE)}`.execute(db);
    return new Map<string, Date>(rows.map((r) => [r.name, new Date(r.timestamp)]));
  });
}

/** The applied migrations this release does not know, by name. */
function unknownOf(applied: ReadonlyMap<string, Date>): string[] {
  const known = new Set(knownMigrationNames());
  return [...applied.keys()].filter((name) => !known.has(name)).sort();
}

/** Kysely cannot plan a run over migrations it has no code for: say what to do instead. */
async function refuseWhenAhead(databaseUrl: string, what: string): Promise<void> {
  const unknown = unknownOf(await appliedMigrations(databaseUrl));
  if (unknown.length === 0) return;
  throw new MigrationError(
    `cannot ${what}: the database records migrations this release does not know (${unknown.join(', ')}); revert them first with the release that added them (npm run migrate -- to <its last migration before them>)`,
    undefined,
    undefined,
  );
}

async function withDb<T>(databaseUrl: string, run: (db: Kysely<unknown>) => Promise<T>): Promise<T> {
  const db = createDb(databaseUrl, { max: 1, applicationName: 'scenecache-migrate' });
  try {
    return await run(db as unknown as Kysely<unknown>);
  } catch (err) {
    if (err instanceof MigrationError) throw err;
    throw new MigrationError(`reading the migrations of ${redactUrl(databaseUrl)} failed: ${messageOf(err)}`, undefined, err);
  } finally {
    await db.destroy();
  }
}

async function withMigrator(
  databaseUrl: string,
  run: (migrator: Migrator) => Promise<MigrationResultSet>,
): Promise<NonNullable<MigrationResultSet['results']>> {
  // One connection is enough: the Migrator runs its queries one at a time (the batch in one transaction).
  const db = createDb(databaseUrl, { max: 1, applicationName: 'scenecache-migrate' });
  try {
    const { error, results = [] } = await run(new Migrator({ db, provider }));
    if (error !== undefined) {
      const failed = results.find((r) => r.status === 'Error')?.migrationName;
      const what = failed === undefined ? `migrating ${redactUrl(databaseUrl)} failed` : `migration ${failed} failed`;
      throw new MigrationError(`${what}: ${messageOf(error)}`, failed, error);
    }
    return results.filter((r) => r.status === 'Success');
  } finally {
    await db.destroy();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
