/**
 * A migrated template database, cloned by `CREATE DATABASE ... TEMPLATE` (tests give every file its
 * own clone: a copy takes milliseconds, migrating takes far longer).
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { migrations } from '@scenecache/migrations';
import type { Logger } from '@scenecache/core';
import { databaseNameOf, dropDatabase, quoteIdentifier, withMaintenanceClient } from './database-admin.js';
import { migrateToLatest } from './migrate.js';

/** Options of {@link ensureTemplateDatabase}. */
export interface EnsureTemplateOptions {
  /** Rebuild even when the template matches the current migrations. @defaultValue false */
  rebuild?: boolean;
  logger?: Logger;
}

/**
 * Fingerprint of the migrations as this process loaded them (names and code), so a changed or
 * added migration rebuilds the template.
 */
export function migrationsFingerprint(): string {
  const hash = createHash('sha256');
  for (const [name, migration] of Object.entries(migrations)) {
    hash.update(`${name}\0${migration.up.toString()}\0${migration.down?.toString() ?? ''}\0`);
  }
  return hash.digest('hex').slice(0, 32);
}

/**
 * Make the database `templateUrl` names a migrated template: drop and recreate it unless its
 * comment records the current {@link migrationsFingerprint}, then mark it `IS_TEMPLATE` with
 * connections disallowed (a connection to a template makes every clone fail with 55006).
 *
 * Reusing an up-to-date template, instead of always rebuilding, keeps concurrent test runs on the
 * same server from dropping the template under each other; a session advisory lock on the
 * maintenance database serialises the check-and-rebuild.
 *
 * @returns whether the template was (re)built.
 */
export async function ensureTemplateDatabase(templateUrl: string, options: EnsureTemplateOptions = {}): Promise<{ rebuilt: boolean }> {
  const name = databaseNameOf(templateUrl);
  const stamp = `scenecache migrations ${migrationsFingerprint()}`;
  return withMaintenanceClient(templateUrl, async (client) => {
    // Advisory locks are per database: every run takes it in the maintenance database.
    await client.query(`SELECT pg_advisory_lock(hashtextextended($1, 0))`, [`scenecache:template:${name}`]);
    try {
      const { rows } = await client.query<{ comment: string | null }>(
        `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
        [name],
      );
      if (options.rebuild !== true && rows[0]?.comment === stamp) return { rebuilt: false };
      await dropDatabase(templateUrl);
      const { applied } = await migrateToLatest(templateUrl);
      const quoted = quoteIdentifier(name);
      await client.query(`ALTER DATABASE ${quoted} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
      // Stamp last: a half-built template (crash mid-migration) has no stamp and is rebuilt.
      await client.query(`COMMENT ON DATABASE ${quoted} IS ${pg.escapeLiteral(stamp)}`);
      options.logger?.info({ template: name, applied }, 'built template database');
      return { rebuilt: true };
    } finally {
      await client.query(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [`scenecache:template:${name}`]);
    }
  });
}
