// jest globalSetup of the integration project: make sure the migrated template database that every
// test file clones (packages/testing/src/database.ts) exists and matches the current migrations,
// and drop per-test databases left behind by crashed runs. Plain ESM on compiled code: `npm test`
// builds first.
//
// Environment: DATABASE_URL names the server (its database name is ignored), default
// postgres://root@127.0.0.1:5432/test. SCENECACHE_TEST_TEMPLATE_REBUILD=1 forces a rebuild.
import { dropDatabase, ensureTemplateDatabase, migrationsFingerprint, withDatabaseName, withMaintenanceClient } from '../db/dist/index.js';

// = TEST_TEMPLATE_DATABASE + the migrations' fingerprint; test files read the name from the
// environment (testTemplateDatabase()), which jest's workers inherit from this process.
const TEMPLATE = `scenecache_test_template_${migrationsFingerprint().slice(0, 16)}`;
const TEST_DB = /^scenecache_t_([0-9a-z]+)_/; // = uniqueTestDatabaseName() (+ any suffix)
const STALE_AFTER_MS = 6 * 3600_000; // no test run lasts this long

export default async function globalSetup() {
  const base = process.env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/test';
  const rebuild = process.env.SCENECACHE_TEST_TEMPLATE_REBUILD === '1';
  await ensureTemplateDatabase(withDatabaseName(base, TEMPLATE), { rebuild });
  process.env.SCENECACHE_TEST_TEMPLATE_DATABASE = TEMPLATE;

  const names = await withMaintenanceClient(base, async (client) => {
    const { rows } = await client.query(`SELECT datname FROM pg_database WHERE datname LIKE 'scenecache\\_t\\_%'`);
    return rows.map((r) => r.datname);
  });
  const stale = names.filter((name) => {
    const match = TEST_DB.exec(name);
    return match !== null && Date.now() - parseInt(match[1], 36) > STALE_AFTER_MS;
  });
  for (const name of stale) await dropDatabase(withDatabaseName(base, name));
}
