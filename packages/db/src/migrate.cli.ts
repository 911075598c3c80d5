/**
 * `npm run migrate [-- --down]`: migrate `DATABASE_URL` to the latest schema (creating the database
 * if missing), or revert the last migration with `--down`. Exits non-zero with the error on failure.
 */
import { createLogger, loadSettings, type Settings } from '@scenecache/core';
import { migrateDown, migrateToLatest } from './migrate.js';
import { redactUrl } from './database-admin.js';

async function main(): Promise<number> {
  let settings: Settings;
  try {
    settings = loadSettings();
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 1;
  }
  const logger = createLogger('migrate', settings.logLevel).child({ url: redactUrl(settings.databaseUrl) });
  try {
    if (process.argv.includes('--down')) {
      const { reverted } = await migrateDown(settings.databaseUrl, logger);
      logger.info({ reverted }, reverted.length > 0 ? `reverted ${reverted.join(', ')}` : 'nothing to revert');
    } else {
      const { applied } = await migrateToLatest(settings.databaseUrl, logger);
      logger.info({ applied }, applied.length > 0 ? `applied ${applied.length} migration(s)` : 'database is up to date');
    }
    return 0;
  } catch (err) {
    logger.error({ err }, err instanceof Error ? err.message : String(err));
    return 1;
  }
}

// exitCode, not exit(): let pino flush before the process ends.
process.exitCode = await main();
