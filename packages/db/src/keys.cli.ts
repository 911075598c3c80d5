/**
 * `npm run keys -- <command>`: manage the API's Bearer keys in `DATABASE_URL` (migrated).
 *
 * - `create --tenant <id> [--name <text>]`: a tenant key; `create --admin [--name <text>]`: an admin
 *   key. Prints the id, the secret (`sck_…`) and the key's callback signing secret (`whsec_…`,
 *   which signs the completion callbacks of the jobs it enqueues): both are shown this once; only
 *   the key's SHA-256 is stored (the signing secret is stored as is: the workers sign with it).
 * - `list`: every key (id, display prefix, tenant or `admin`, name, created, last used, revoked).
 * - `revoke <id>`: the key is refused from the next request on.
 * - `rotate-callback-secret <id>`: a new callback signing secret for the key, shown once (keys made
 *   before callbacks existed get their first one this way).
 *
 * `--json` prints machine-readable JSON instead; `--help` the usage. Exit codes (core cli.ts): 0
 * done, 1 failed (database error, no such key), 2 usage error or invalid settings (one line).
 */
import { loadSettings, parseCommandLine, runCommand, tenantBucketName, UsageError, ValidationError, type CommandLine, type Settings } from '@scenecache/core';
import { createApiKey, listApiKeys, revokeApiKey, rotateCallbackSecret } from './api-key.repository.js';
import { createDb } from './database.js';
import type { ApiKeyRow } from './schema.js';

const USAGE = `usage: npm run keys -- create --tenant <tenant_id> [--name <text>] [--json]
       npm run keys -- create --admin [--name <text>] [--json]
       npm run keys -- list [--json]
       npm run keys -- revoke <key id> [--json]
       npm run keys -- rotate-callback-secret <key id> [--json]`;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A key as printed (no hash, no secret). */
function view(row: ApiKeyRow): Record<string, string | null> {
  return {
    id: row.id,
    prefix: row.prefix,
    tenant_id: row.tenant_id,
    name: row.name,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

/** Parse and check the command line. @throws UsageError naming what is wrong. */
function parseCommand(argv: readonly string[]): CommandLine {
  return parseCommandLine(argv, { usage: USAGE, allowPositionals: true, options: { tenant: { type: 'string' }, admin: { type: 'boolean' }, name: { type: 'string' }, json: { type: 'boolean' } } });
}

async function run(line: CommandLine, settings: Settings): Promise<number> {
  const values = line.values as { tenant?: string; admin?: boolean; name?: string; json?: boolean };
  const [command, ...rest] = line.positionals;
  const json = values.json === true;
  const out = (value: unknown, text: string) => console.log(json ? JSON.stringify(value, null, 2) : text);

  if (command === 'create') {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
    if ((values.tenant === undefined) === (values.admin !== true)) throw new UsageError('create needs exactly one of --tenant <id> or --admin');
    // The same rules as the API's tenant ids: a key for a tenant no request could name is useless.
    if (values.tenant !== undefined) {
      try {
        tenantBucketName(values.tenant, settings.tenantBucketPrefix);
      } catch (err) {
        if (err instanceof ValidationError) throw new UsageError(`--tenant: ${err.message}`);
        throw err;
      }
    }
  } else if (command === 'revoke' || command === 'rotate-callback-secret') {
    if (rest.length !== 1 || !UUID_RE.test(rest[0]!)) throw new UsageError(`${command} needs one key id (a UUID, see \`list\`)`);
  } else if (command === 'list') {
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
  } else {
    throw new UsageError(command === undefined ? 'no command' : `unknown command ${command}`);
  }

  const db = createDb(settings.databaseUrl, { max: 1, applicationName: 'scenecache-keys' });
  try {
    if (command === 'create') {
      const { row, secret, callbackSecret } = await createApiKey(db, { tenantId: values.tenant ?? null, name: values.name ?? null });
      const who = row.tenant_id === null ? 'admin key' : `key for tenant ${row.tenant_id}`;
      out(
        { ...view(row), secret, callback_secret: callbackSecret },
        `created ${who} ${row.id}\n${secret}\ncallback signing secret: ${callbackSecret}\nBoth are shown this once: store them now (send the key as "Authorization: Bearer <secret>"; verify X-Scenecache-Signature of completion callbacks with the signing secret).`,
      );
      return 0;
    }
    if (command === 'rotate-callback-secret') {
      const rotated = await rotateCallbackSecret(db, rest[0]!);
      if (!rotated) {
        console.error(`no active key ${rest[0]} (unknown or revoked)`);
        return 1;
      }
      out({ ...view(rotated.row), callback_secret: rotated.callbackSecret }, `new callback signing secret of key ${rotated.row.id} (${rotated.row.prefix}…)\n${rotated.callbackSecret}\nShown this once: callbacks not yet delivered are signed with it from their next attempt on.`);
      return 0;
    }
    if (command === 'list') {
      const rows = await listApiKeys(db);
      const lines = rows.map((row) => {
        const v = view(row);
        return [v.id, v.prefix, v.tenant_id ?? 'admin', v.name ?? '-', v.created_at, v.last_used_at ?? '-', v.revoked_at === null ? 'active' : `revoked ${v.revoked_at}`].join('\t');
      });
      out(rows.map(view), ['id\tprefix\ttenant\tname\tcreated_at\tlast_used_at\tstate', ...lines].join('\n'));
      return 0;
    }
    const row = await revokeApiKey(db, rest[0]!);
    if (!row) {
      console.error(`no active key ${rest[0]} (unknown or already revoked)`);
      return 1;
    }
    out(view(row), `revoked key ${row.id} (${row.prefix}…)`);
    return 0;
  } finally {
    await db.destroy();
  }
}

async function main(): Promise<number> {
  const line = parseCommand(process.argv.slice(2));
  return run(line, loadSettings());
}

runCommand('scenecache keys', main);
