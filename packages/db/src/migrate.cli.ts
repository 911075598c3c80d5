/**
 * `npm run migrate [-- <command>]`: the schema of `DATABASE_URL`.
 *
 * - (no command) or `up`: migrate to the latest migration, creating the database if missing (what
 *   the compose and k8s migrate Jobs run). A database ahead of this release is left alone.
 * - `down`: revert the last applied migration (`--down` is the older spelling).
 * - `to <name>`: migrate up or down until `<name>` is the last applied migration; `to none`
 *   reverts every migration.
 * - `status [--json]`: every migration, applied (with when) or pending, and applied migrations
 *   this release does not know.
 *
 * Exit codes (core cli.ts): 0 done, 1 failed (database unreachable, a migration failed), 2 usage
 * error or invalid settings (one line naming the problem; nothing is run). `--help` prints the usage.
 */
import { createLogger, loadSettings, parseCommandLine, runCommand, UsageError } from '@scenecache/core';
import { knownMigrationNames, migrateDown, migrateTo, migrateToLatest, migrationStatus, NO_MIGRATIONS_TARGET, type MigrationState } from './migrate.js';
import { redactUrl } from './database-admin.js';

const USAGE = `usage: npm run migrate [-- up]             migrate DATABASE_URL to the latest migration (creates the database)
       npm run migrate -- down             revert the last applied migration
       npm run migrate -- to <name>|none   migrate up or down to <name>; none reverts every migration
       npm run migrate -- status [--json]  list migrations: applied (when) or pending`;

/** What to run, from the command line. */
type Command = { kind: 'up' } | { kind: 'down' } | { kind: 'to'; target: string } | { kind: 'status'; json: boolean };

/** @throws UsageError naming the problem. */
function parseCommand(argv: string[]): Command {
  const { values, positionals } = parseCommandLine(argv, { usage: USAGE, allowPositionals: true, options: { down: { type: 'boolean' }, json: { type: 'boolean' } } });
  const [name = values.down === true ? 'down' : 'up', ...rest] = positionals;
  if (values.down === true && name !== 'down') throw new UsageError(`--down cannot be combined with ${name}`);
  if (values.json === true && name !== 'status') throw new UsageError('--json is an option of status only');
  const noMore = () => {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]} after ${name}`);
  };
  switch (name) {
    case 'up':
    case 'down':
      noMore();
      return { kind: name };
    case 'status':
      noMore();
      return { kind: 'status', json: values.json === true };
    case 'help':
      noMore();
      console.log(USAGE);
      return process.exit(0);
    case 'to': {
      const [target, ...extra] = rest;
      if (target === undefined) throw new UsageError(`to needs a migration name: one of ${[...knownMigrationNames(), NO_MIGRATIONS_TARGET].join(', ')}`);
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]} after to ${target}`);
      if (target !== NO_MIGRATIONS_TARGET && !knownMigrationNames().includes(target)) {
        throw new UsageError(`no migration named ${target}: expected one of ${[...knownMigrationNames(), NO_MIGRATIONS_TARGET].join(', ')}`);
      }
      return { kind: 'to', target };
    }
    default:
      throw new UsageError(`unknown command ${name}`);
  }
}

/** The status as a table: state, when applied (ISO, UTC), name. */
function statusTable(states: readonly MigrationState[]): string {
  const lines = states.map((s) => `${s.state.padEnd(8)}${(s.appliedAt?.toISOString() ?? '-').padEnd(26)}${s.name}${s.state === 'unknown' ? '  (applied by a newer release)' : ''}`);
  const applied = states.filter((s) => s.state !== 'pending').length;
  const pending = states.filter((s) => s.state === 'pending').length;
  return [`${'state'.padEnd(8)}${'applied_at'.padEnd(26)}name`, ...lines, `${applied} applied, ${pending} pending`].join('\n');
}

async function main(): Promise<number> {
  const command = parseCommand(process.argv.slice(2));
  const settings = loadSettings();
  const logger = createLogger('migrate', settings.logLevel).child({ url: redactUrl(settings.databaseUrl) });
  try {
    switch (command.kind) {
      case 'up': {
        const { applied, ahead } = await migrateToLatest(settings.databaseUrl, logger);
        logger.info({ applied, ...(ahead && { ahead }) }, applied.length > 0 ? `applied ${applied.length} migration(s)` : 'database is up to date');
        break;
      }
      case 'down': {
        const { reverted } = await migrateDown(settings.databaseUrl, logger);
        logger.info({ reverted }, reverted.length > 0 ? `reverted ${reverted.join(', ')}` : 'nothing to revert');
        break;
      }
      case 'to': {
        const { applied, reverted } = await migrateTo(settings.databaseUrl, command.target, logger);
        const did = [applied.length > 0 ? `applied ${applied.join(', ')}` : '', reverted.length > 0 ? `reverted ${reverted.join(', ')}` : ''].filter(Boolean).join('; ');
        logger.info({ target: command.target, applied, reverted }, did === '' ? `already at ${command.target}` : did);
        break;
      }
      case 'status': {
        const states = await migrationStatus(settings.databaseUrl);
        const rows = states.map((s) => ({ name: s.name, state: s.state, applied_at: s.appliedAt?.toISOString() ?? null }));
        console.log(command.json ? JSON.stringify({ migrations: rows }, null, 2) : statusTable(states));
        break;
      }
    }
    return 0;
  } catch (err) {
    logger.error({ err }, err instanceof Error ? err.message : String(err));
    return 1;
  }
}

// The exit code is set, not exit() called: pino flushes before the process ends.
runCommand('scenecache migrate', main);
