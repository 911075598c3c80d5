import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { migrations } from '@scenecache/migrations';
import { createDb, dropDatabase, migrateDown, MigrationError, migrateToLatest } from '@scenecache/db';
import { spawnProcessGroup, testDatabaseUrl, uniqueTestDatabaseName } from '@scenecache/testing';

const ALL = Object.keys(migrations);
const CLI = fileURLToPath(new URL('../dist/migrate.cli.js', import.meta.url));
const created: string[] = [];

/** URL of a database that does not exist yet (dropped after the file). */
function freshDatabaseUrl(suffix = ''): string {
  const url = testDatabaseUrl(uniqueTestDatabaseName() + suffix);
  created.push(url);
  return url;
}

async function appliedMigrations(url: string): Promise<string[]> {
  const db = createDb(url, { max: 1 });
  try {
    const { rows } = await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db);
    return rows.map((r) => r.name);
  } finally {
    await db.destroy();
  }
}

async function tableNames(url: string): Promise<string[]> {
  const db = createDb(url, { max: 1 });
  try {
    const tables = await db.introspection.getTables();
    return tables.map((table) => table.name).sort();
  } finally {
    await db.destroy();
  }
}

/** Run the compiled `npm run migrate` entry point. */
function runCli(env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const { NODE_OPTIONS: _ignored, ...inherited } = process.env;
    const child = spawnProcessGroup(process.execPath, [CLI, ...args], { env: { ...inherited, LOG_LEVEL: 'info', ...env } });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

afterAll(async () => {
  for (const url of created) await dropDatabase(url);
});

describe('migrateToLatest', () => {
  it('creates a missing database (any name) and applies every migration, once', async () => {
    const url = freshDatabaseUrl('_Mixed "Case"');

    expect(await migrateToLatest(url)).toEqual({ applied: ALL });
    expect(await appliedMigrations(url)).toEqual(ALL);
    expect(await tableNames(url)).toEqual(expect.arrayContaining(['download_jobs', 'global_scene_cache', 'tenant_scenes']));

    // Idempotent: nothing left to do.
    expect(await migrateToLatest(url)).toEqual({ applied: [] });
    expect(await appliedMigrations(url)).toEqual(ALL);
  });

  it('lets concurrent runners on a fresh database all succeed, applying the schema once', async () => {
    const url = freshDatabaseUrl();

    const results = await Promise.all([migrateToLatest(url), migrateToLatest(url), migrateToLatest(url)]);

    expect(results.flatMap((r) => r.applied).sort()).toEqual(ALL);
    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
    expect(await appliedMigrations(url)).toEqual(ALL);
  });

  it('names the failing migration and rolls its transaction back', async () => {
    const url = freshDatabaseUrl();
    // A conflicting table makes 0001 fail half-way through.
    await migrateToLatest(url);
    for (let i = 0; i < ALL.length; i++) await migrateDown(url);
    const db = createDb(url, { max: 1 });
    await sql`CREATE TABLE tenant_scenes (id int)`.execute(db);
    await db.destroy();

    const err = await migrateToLatest(url).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(MigrationError);
    expect((err as MigrationError).migrationName).toBe('0001_initial');
    expect((err as MigrationError).message).toMatch(/^migration 0001_initial failed: .*tenant_scenes.*already exists/);
    expect(await appliedMigrations(url)).toEqual([]);
    expect(await tableNames(url)).not.toContain('global_scene_cache');
  });

  it('reports an unreachable server clearly', async () => {
    const url = new URL(testDatabaseUrl('whatever'));
    url.port = '1';
    url.password = 'hunter2';
    const err = await migrateToLatest(url.toString()).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/^cannot reach or create the database postgres:\/\/.*:\*\*\*@.*:1\/whatever: /);
    expect((err as Error).message).not.toContain('hunter2');
  });
});

describe('migrateDown', () => {
  it('reverts the last migration; migrating up again restores it', async () => {
    const url = freshDatabaseUrl();
    await migrateToLatest(url);

    expect(await migrateDown(url)).toEqual({ reverted: [ALL.at(-1)] });
    expect(await appliedMigrations(url)).toEqual(ALL.slice(0, -1));
    expect(await migrateToLatest(url)).toEqual({ applied: [ALL.at(-1)] });
  });
});

describe('npm run migrate (migrate.cli.js)', () => {
  it('two processes migrating a fresh database at once both succeed; the schema is applied once', async () => {
    const url = freshDatabaseUrl();

    const runs = await Promise.all([runCli({ DATABASE_URL: url }), runCli({ DATABASE_URL: url })]);

    for (const run of runs) expect(run).toMatchObject({ code: 0 });
    const logs = runs.map((r) => r.output).join('\n');
    expect(logs.match(/"msg":"applied migration"/g)).toHaveLength(ALL.length);
    expect(logs).toContain('"msg":"database is up to date"');
    expect(await appliedMigrations(url)).toEqual(ALL);
  });

  it('reverts one step with --down', async () => {
    const url = freshDatabaseUrl();
    await migrateToLatest(url);

    const run = await runCli({ DATABASE_URL: url }, ['--down']);

    expect(run.code).toBe(0);
    expect(run.output).toContain(`reverted ${ALL.at(-1)}`);
    expect(await appliedMigrations(url)).toEqual(ALL.slice(0, -1));
  });

  it('exits non-zero with the error message on failure: 2 for bad settings, 1 when the database fails', async () => {
    const bad = await runCli({ DATABASE_URL: 'not a url' });
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('DATABASE_URL');
    expect(bad.output).toContain('(got "not a url")');

    const url = new URL(testDatabaseUrl('whatever'));
    url.port = '1';
    const unreachable = await runCli({ DATABASE_URL: url.toString() });
    expect(unreachable.code).toBe(1);
    expect(unreachable.output).toContain('cannot reach or create the database');
  });
});
