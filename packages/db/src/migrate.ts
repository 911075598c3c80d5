/**
 * The migration runner behind `npm run migrate` and the k8s migrate Job.
 *
 * Concurrency: Kysely's Postgres adapter runs every migration batch under a session advisory lock
 * (`pg_advisory_lock` on a fixed key), so two runners started at once serialise; the second sees
 * the migrations already recorded in `kysely_migration` and applies nothing.
 */
import { Migrator, type MigrationProvider, type MigrationResultSet } from 'kysely/migration';
import { migrations } from '@scenecache/migrations';
import type { Logger } from '@scenecache/core';
import { createDb } from './database.js';
import { databaseNameOf, ensureDatabase, redactUrl } from './database-admin.js';

/** The migrations compiled into `@scenecache/migrations`, by name in apply order. */
const provider: MigrationProvider = { getMigrations: () => Promise.resolve({ ...migrations }) };

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
}

/** What {@link migrateDown} did. */
export interface MigrateDownResult {
  /** Names of the migrations this call reverted (at most one). */
  reverted: string[];
}

/**
 * Bring the database `databaseUrl` names to the latest migration, creating the database first if it
 * does not exist (through the server's `postgres` database; needs the CREATEDB privilege only then).
 * Safe to run from several processes at once.
 *
 * @throws MigrationError naming the failing migration; the batch's transaction is rolled back.
 */
export async function migrateToLatest(databaseUrl: string, logger?: Logger): Promise<MigrateResult> {
  let created: boolean;
  try {
    created = await ensureDatabase(databaseUrl);
  } catch (err) {
    throw new MigrationError(`cannot reach or create the database ${redactUrl(databaseUrl)}: ${messageOf(err)}`, undefined, err);
  }
  if (created) logger?.info({ database: databaseNameOf(databaseUrl) }, 'created database');
  const results = await withMigrator(databaseUrl, (migrator) => migrator.migrateToLatest());
  const applied = results.filter((r) => r.direction === 'Up').map((r) => r.migrationName);
  for (const name of applied) logger?.info({ migration: name }, 'applied migration');
  return { applied };
}

/**
 * Revert the last applied migration (development only: down migrations drop data).
 *
 * @throws MigrationError naming the failing migration.
 */
export async function migrateDown(databaseUrl: string, logger?: Logger): Promise<MigrateDownResult> {
  const results = await withMigrator(databaseUrl, (migrator) => migrator.migrateDown());
  const reverted = results.filter((r) => r.direction === 'Down').map((r) => r.migrationName);
  for (const name of reverted) logger?.info({ migration: name }, 'reverted migration');
  return { reverted };
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
