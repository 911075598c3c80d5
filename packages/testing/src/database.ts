/**
 * A Postgres database per test file, cloned from the migrated template that the integration
 * project's jest globalSetup (packages/testing/global-setup.mjs) builds.
 *
 * Server: `DATABASE_URL` when set (its database name is ignored: only server, credentials and
 * parameters are used), else `postgres://root@127.0.0.1:5432/test`. The role needs CREATEDB.
 */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { createDatabase, createDb, dropDatabase, pgErrorCode, withDatabaseName, type DB } from '@scenecache/db';

/** Prefix of the migrated template databases every test database is cloned from. */
export const TEST_TEMPLATE_DATABASE = 'scenecache_test_template';

/**
 * The template of this run: `SCENECACHE_TEST_TEMPLATE_DATABASE`, which the global setup sets to
 * {@link TEST_TEMPLATE_DATABASE} + the migrations' fingerprint, so concurrent runs of different
 * checkouts on one server (a branch with a new migration beside main) each clone their own
 * template instead of rebuilding one name under each other.
 */
export function testTemplateDatabase(): string {
  return process.env.SCENECACHE_TEST_TEMPLATE_DATABASE || TEST_TEMPLATE_DATABASE;
}

/**
 * Prefix of every per-test database. Names are `scenecache_t_<base36 ms timestamp>_<hex>`: the
 * global setup drops leftovers (from crashed runs) by the timestamp.
 */
export const TEST_DATABASE_PREFIX = 'scenecache_t_';

const DEFAULT_SERVER_URL = 'postgres://root@127.0.0.1:5432/test';

/** A database of its own for one test file. */
export interface TestDatabase {
  /** Connection URL of the database. */
  url: string;
  /** Database name. */
  name: string;
  /** A pool on it (10 connections at most). */
  db: Kysely<DB>;
  /** Close the pool and drop the database (forcing out other sessions). Idempotent. */
  drop(): Promise<void>;
}

/** Connection URL of the test server, naming `database`. */
export function testDatabaseUrl(database: string): string {
  // Test support reads the environment directly: the app's settings default to another database.
  const base = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? process.env.DATABASE_URL : DEFAULT_SERVER_URL;
  return withDatabaseName(base, database);
}

/** A fresh, unused per-test database name (the database is not created). */
export function uniqueTestDatabaseName(): string {
  return `${TEST_DATABASE_PREFIX}${Date.now().toString(36)}_${randomBytes(5).toString('hex')}`;
}

/**
 * Create a database cloned from {@link testTemplateDatabase} (schema migrated, tables empty).
 * Call `drop()` in `afterAll`.
 *
 * @throws when the template does not exist (run the test through the jest integration project).
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = uniqueTestDatabaseName();
  const url = testDatabaseUrl(name);
  try {
    // createDatabase retries while the template is briefly "being accessed by other users" (55006).
    await createDatabase(url, { template: testTemplateDatabase() });
  } catch (err) {
    if (pgErrorCode(err) === '3D000') {
      throw new Error(`template database ${testTemplateDatabase()} does not exist: run integration tests through jest (its globalSetup builds it)`, { cause: err });
    }
    throw err;
  }
  const db = createDb(url, { applicationName: 'scenecache-test' });
  let dropped: Promise<void> | undefined;
  return {
    url,
    name,
    db,
    drop: () => (dropped ??= db.destroy().then(() => dropDatabase(url))),
  };
}
