/**
 * Creating and dropping whole databases (for `npm run migrate` on a fresh server, and for tests).
 * `CREATE/DROP DATABASE` cannot run inside the target database nor in a transaction, so these go
 * through a plain connection to the server's maintenance database.
 */
import pg from 'pg';

/** The database every Postgres server has, used to create or drop the others. */
export const MAINTENANCE_DATABASE = 'postgres';

const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';
const INVALID_CATALOG_NAME = '3D000';
const OBJECT_IN_USE = '55006';

/** The database name in a connection URL (`postgres://u@h:5432/<name>`). */
export function databaseNameOf(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  if (name === '') throw new Error(`the database URL names no database: ${redactUrl(databaseUrl)}`);
  return name;
}

/** The same URL (server, credentials, parameters) naming another database. */
export function withDatabaseName(databaseUrl: string, name: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/** The URL with its password masked, for logs and error messages. */
export function redactUrl(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    if (url.password !== '') url.password = '***';
    return url.toString();
  } catch {
    return '<invalid URL>';
  }
}

/** Quote an SQL identifier (`my"db` → `"my""db"`), for statements that take no parameters. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The SQLSTATE of a pg error, if any. */
export function pgErrorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * Run `fn` on a single connection to the maintenance database of `databaseUrl`'s server, closing
 * it afterwards.
 */
export async function withMaintenanceClient<T>(databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: withDatabaseName(databaseUrl, MAINTENANCE_DATABASE),
    application_name: 'scenecache-admin',
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Options of {@link createDatabase}. */
export interface CreateDatabaseOptions {
  /** Clone this database instead of `template1`. */
  template?: string;
  /**
   * How many times to retry when the template is in use (SQLSTATE 55006: Postgres copies a
   * template only while nobody is connected to it). @defaultValue 10
   */
  retries?: number;
}

/**
 * Create the database `databaseUrl` names, unless it exists.
 *
 * Safe against a concurrent creator: losing the race surfaces as 42P04 duplicate_database or, when
 * both inserts into pg_database collide, 23505 on `pg_database_datname_index`; both mean "exists".
 *
 * @returns whether this call created it.
 */
export async function createDatabase(databaseUrl: string, options: CreateDatabaseOptions = {}): Promise<boolean> {
  const name = databaseNameOf(databaseUrl);
  const template = options.template === undefined ? '' : ` TEMPLATE ${quoteIdentifier(options.template)}`;
  const retries = options.retries ?? 10;
  return withMaintenanceClient(databaseUrl, async (client) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.query(`CREATE DATABASE ${quoteIdentifier(name)}${template}`);
        return true;
      } catch (err) {
        const code = pgErrorCode(err);
        if (code === DUPLICATE_DATABASE) return false;
        if (code === UNIQUE_VIOLATION && (err as { constraint?: string }).constraint === 'pg_database_datname_index') return false;
        // A backend that just disconnected from the template may take a moment to exit.
        if (code === OBJECT_IN_USE && attempt < retries) {
          await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** Math.min(attempt, 5)));
          continue;
        }
        throw err;
      }
    }
  });
}

/**
 * Create the database `databaseUrl` names if connecting to it fails with "does not exist".
 * Connects to the target first, so a role without access to the maintenance database (the usual
 * production setup) never needs it.
 *
 * @returns whether this call created it.
 */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'scenecache-admin' });
  try {
    await client.connect();
    return false;
  } catch (err) {
    if (pgErrorCode(err) !== INVALID_CATALOG_NAME) throw err;
    return createDatabase(databaseUrl);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Drop the database `databaseUrl` names, if it exists, disconnecting its sessions (`WITH (FORCE)`).
 * Template databases are unmarked first: Postgres refuses to drop one.
 */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const name = databaseNameOf(databaseUrl);
  await withMaintenanceClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ datistemplate: boolean }>('SELECT datistemplate FROM pg_database WHERE datname = $1', [name]);
    if (rows[0]?.datistemplate === true) await client.query(`ALTER DATABASE ${quoteIdentifier(name)} IS_TEMPLATE false`);
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
  });
}
