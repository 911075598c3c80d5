/**
 * `npm run seed:history -- --jobs N --days D --tenants T`: fill `DATABASE_URL` (migrated first,
 * created if missing) with N realistic finished jobs over the last D days for T tenants, by plain
 * SQL (history-seed.ts) — for benchmarks, and for operators who want to see the dashboard on a full
 * table. Adds to what is there. Exit codes (core cli.ts): 0 done, 1 failed, 2 usage or settings.
 */
import { loadSettings, numberOption, parseCommandLine, runCommand } from '@scenecache/core';
import { createDb } from './database.js';
import { redactUrl } from './database-admin.js';
import { seedHistory } from './history-seed.js';
import { migrateToLatest } from './migrate.js';

const USAGE = `usage: npm run seed:history -- [--jobs N] [--days D] [--tenants T]
Adds N finished download jobs (default 100000) spread over the last D days (default 365) for
T tenants (default 200) to DATABASE_URL, by plain SQL; the daily statistics follow (rollups).`;

runCommand('scenecache seed:history', async () => {
  const line = parseCommandLine(process.argv.slice(2), { usage: USAGE, options: { jobs: { type: 'string' }, days: { type: 'string' }, tenants: { type: 'string' } } });
  const jobs = numberOption(line, 'jobs', 1, 100_000_000) ?? 100_000;
  const days = numberOption(line, 'days', 1, 3_650) ?? 365;
  const tenants = numberOption(line, 'tenants', 1, 1_000) ?? 200;
  const settings = loadSettings();
  await migrateToLatest(settings.databaseUrl);
  const db = createDb(settings.databaseUrl, { max: 1, applicationName: 'scenecache-seed-history' });
  const started = Date.now();
  const log = (text: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${text}`);
  log(`seeding ${jobs} finished jobs over ${days} days for ${tenants} tenants into ${redactUrl(settings.databaseUrl)}`);
  try {
    await seedHistory(db, { jobs: Math.round(jobs), days: Math.round(days), tenants: Math.round(tenants), onProgress: (n) => log(`${n} / ${jobs} jobs (${Math.round(n / ((Date.now() - started) / 1000))} rows/s)`) });
  } finally {
    await db.destroy();
  }
  log('done (tables analysed)');
  return 0;
});
