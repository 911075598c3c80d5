/**
 * Issue 5 — migration rollback on a real, fresh database: every migration's `down()` undoes exactly
 * its `up()` (columns, views, indexes, constraints, triggers, functions, comments and the grants
 * to other roles compared through the catalogs; the dashboard reader role exists, as in compose), `migrateTo` goes up and down to a named migration, `migrationStatus` lists what is
 * applied, a database ahead of this release is left alone by `up` and refused by `down`/`to`, and
 * the compiled CLI (`npm run migrate -- down|to|status`) runs them and rejects bad arguments with
 * exit code 2 and a message naming the problem.
 */
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { migrations, STATS_READER_ROLE } from '@scenecache/migrations';
import {
  createDb,
  dropDatabase,
  knownMigrationNames,
  migrateDown,
  MigrationError,
  migrateTo,
  migrateToLatest,
  migrationStatus,
  NO_MIGRATIONS_TARGET,
  withMaintenanceClient,
} from '@scenecache/db';
import { spawnProcessGroup, testDatabaseUrl, uniqueTestDatabaseName } from '@scenecache/testing';

const ALL = Object.keys(migrations).sort();
const CLI = fileURLToPath(new URL('../dist/migrate.cli.js', import.meta.url));
const created: string[] = [];

function freshDatabaseUrl(): string {
  const url = testDatabaseUrl(uniqueTestDatabaseName());
  created.push(url);
  return url;
}

afterAll(async () => {
  for (const url of created) await dropDatabase(url);
});

/** What {@link schemaSnapshot} lists, each as sorted lines. */
interface SchemaSnapshot {
  columns: string[];
  views: string[];
  indexes: string[];
  constraints: string[];
  triggers: string[];
  functions: string[];
  comments: string[];
  grants: string[];
}

/**
 * The schema as the catalogs describe it, Kysely's own bookkeeping tables excluded: every column
 * (type, nullability, default, position), view definition, index definition, constraint
 * definition, trigger and function of the `public` schema, each as one sorted line.
 */
async function schemaSnapshot(url: string): Promise<SchemaSnapshot> {
  const db = createDb(url, { max: 1 });
  const lines = async (query: ReturnType<typeof sql<{ line: string }>>) => (await query.execute(db)).rows.map((r) => r.line).sort();
  try {
    return {
      columns: await lines(sql<{ line: string }>`
        SELECT concat_ws(' | ', table_name, ordinal_position, column_name, data_type, udt_name, is_nullable, column_default) AS line
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'kysely_%'`),
      views: await lines(sql<{ line: string }>`SELECT viewname || ': ' || definition AS line FROM pg_views WHERE schemaname = 'public'`),
      indexes: await lines(sql<{ line: string }>`SELECT indexdef AS line FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'kysely_%'`),
      constraints: await lines(sql<{ line: string }>`
        SELECT c.conrelid::regclass::text || '.' || c.conname || ': ' || pg_get_constraintdef(c.oid) AS line
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public' AND c.conrelid::regclass::text NOT LIKE 'kysely_%'`),
      triggers: await lines(sql<{ line: string }>`
        SELECT tgrelid::regclass::text || ': ' || pg_get_triggerdef(oid) AS line FROM pg_trigger WHERE NOT tgisinternal`),
      functions: await lines(sql<{ line: string }>`
        SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || '): ' || md5(p.prosrc) AS line
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')`),
      comments: await lines(sql<{ line: string }>`
        SELECT c.relname || ': ' || obj_description(c.oid, 'pg_class') AS line
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND obj_description(c.oid, 'pg_class') IS NOT NULL`),
      grants: await lines(sql<{ line: string }>`
        SELECT concat_ws(' | ', table_name, grantee, privilege_type) AS line
        FROM information_schema.role_table_grants WHERE table_schema = 'public' AND grantee <> current_user`),
    };
  } finally {
    await db.destroy();
  }
}

async function appliedNames(url: string): Promise<string[]> {
  return (await migrationStatus(url)).filter((m) => m.state !== 'pending').map((m) => m.name);
}

/** Run the compiled `npm run migrate` entry point. */
function runCli(url: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const { NODE_OPTIONS: _ignored, ...inherited } = process.env;
    const child = spawnProcessGroup(process.execPath, [CLI, ...args], { env: { ...inherited, LOG_LEVEL: 'info', DATABASE_URL: url } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('down() of every migration', () => {
  it('up step by step, down step by step to nothing, up again: the schema at each level is identical', async () => {
    expect(ALL.length).toBeGreaterThanOrEqual(3);
    expect(knownMigrationNames()).toEqual(ALL);
    const url = freshDatabaseUrl();
    // The role the dashboard views are granted to, as the compose stack's init script makes it (cluster-wide; kept).
    await withMaintenanceClient(url, (client) => client.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${STATS_READER_ROLE}') THEN CREATE ROLE ${STATS_READER_ROLE} NOLOGIN; END IF; END $$`));

    // Level i = the first i migrations applied; snapshots on the way up.
    const up: SchemaSnapshot[] = [];
    expect(await migrateTo(url, NO_MIGRATIONS_TARGET)).toEqual({ applied: [], reverted: [] });
    up.push(await schemaSnapshot(url));
    for (const [i, name] of ALL.entries()) {
      expect(await migrateTo(url, name)).toEqual({ applied: [name], reverted: [] });
      expect(await appliedNames(url)).toEqual(ALL.slice(0, i + 1));
      up.push(await schemaSnapshot(url));
    }
    // The snapshot sees what migrations create (a level that changed nothing would hide a bad down()).
    expect(up[0]).toEqual({ columns: [], views: [], indexes: [], constraints: [], triggers: [], functions: [], comments: [], grants: [] });
    for (let i = 1; i < up.length; i++) expect(up[i]).not.toEqual(up[i - 1]);
    const latest = up.at(-1)!;
    expect(latest.views.join('\n')).toMatch(/^cache_daily_stats: /m);
    expect(latest.indexes.join('\n')).toContain('download_jobs_finished_day_idx');
    expect(latest.triggers.join('\n')).toContain('global_scene_cache_validity_touch');
    expect(latest.functions.join('\n')).toContain('scene_cache_touch_on_validity');

    // Down one step at a time: each level's schema is what it was on the way up.
    for (let i = ALL.length - 1; i >= 0; i--) {
      expect(await migrateDown(url)).toEqual({ reverted: [ALL[i]] });
      expect(await appliedNames(url)).toEqual(ALL.slice(0, i));
      expect(await schemaSnapshot(url)).toEqual(up[i]);
    }
    expect(await migrateDown(url)).toEqual({ reverted: [] });

    // And up again, all at once.
    expect(await migrateToLatest(url)).toEqual({ applied: ALL });
    expect(await schemaSnapshot(url)).toEqual(latest);
  }, 60_000);
});

describe('migrateTo and migrationStatus', () => {
  it('goes down and up to a named migration, and to none', async () => {
    const url = freshDatabaseUrl();
    await migrateToLatest(url);
    const first = ALL[0]!;

    expect(await migrateTo(url, first)).toEqual({ applied: [], reverted: ALL.slice(1).reverse() });
    expect(await appliedNames(url)).toEqual([first]);
    expect(await migrateTo(url, first)).toEqual({ applied: [], reverted: [] });
    expect(await migrateTo(url, ALL.at(-1)!)).toEqual({ applied: ALL.slice(1), reverted: [] });
    expect(await migrateTo(url, NO_MIGRATIONS_TARGET)).toEqual({ applied: [], reverted: [...ALL].reverse() });
    expect(await appliedNames(url)).toEqual([]);
  });

  it('rejects a name that is not a migration of this release, running nothing', async () => {
    const url = freshDatabaseUrl();
    await migrateTo(url, ALL[0]!);

    const err = await migrateTo(url, '0099_nope').catch((e: unknown) => e);

    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toBe(`no migration named 0099_nope: expected one of ${ALL.join(', ')}, none`);
    expect(await appliedNames(url)).toEqual([ALL[0]]);
  });

  it('lists every migration as applied (with when) or pending', async () => {
    const url = freshDatabaseUrl();
    const before = Date.now();
    await migrateTo(url, ALL[1]!);

    const states = await migrationStatus(url);

    expect(states.map((s) => [s.name, s.state])).toEqual(ALL.map((name, i) => [name, i < 2 ? 'applied' : 'pending']));
    for (const s of states.filter((m) => m.state === 'applied')) expect(s.appliedAt!.getTime()).toBeGreaterThanOrEqual(before - 1_000);
    expect(states.filter((m) => m.state === 'pending').every((s) => s.appliedAt === undefined)).toBe(true);
  });

  it('reports a missing database without creating it', async () => {
    const url = freshDatabaseUrl();
    const err = await migrationStatus(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/does not exist/);
    await expect(migrationStatus(url)).rejects.toThrow(/does not exist/);
  });
});

describe('a database ahead of this release (a newer release migrated it, then was rolled back)', () => {
  async function recordUnknownMigration(url: string, name: string): Promise<void> {
    const db = createDb(url, { max: 1 });
    await sql`INSERT INTO kysely_migration (name, timestamp) VALUES (${name}, ${new Date().toISOString()})`.execute(db);
    await db.destroy();
  }

  it('up applies nothing and reports it; down and to refuse, saying which release can', async () => {
    const url = freshDatabaseUrl();
    await migrateToLatest(url);
    await recordUnknownMigration(url, '9999_from_the_future');

    expect(await migrateToLatest(url)).toEqual({ applied: [], ahead: ['9999_from_the_future'] });
    expect((await migrationStatus(url)).at(-1)).toMatchObject({ name: '9999_from_the_future', state: 'unknown' });
    await expect(migrateDown(url)).rejects.toThrow(/^cannot revert: the database records migrations this release does not know \(9999_from_the_future\); revert them first with the release that added them/);
    await expect(migrateTo(url, ALL[0]!)).rejects.toThrow(/does not know \(9999_from_the_future\)/);
    expect(await appliedNames(url)).toEqual([...ALL, '9999_from_the_future']);
  });

  it('up refuses when a migration of this release is pending next to unknown ones', async () => {
    const url = freshDatabaseUrl();
    await migrateTo(url, ALL[0]!);
    await recordUnknownMigration(url, '9999_from_the_future');

    await expect(migrateToLatest(url)).rejects.toThrow(/does not know \(9999_from_the_future\) while .*not applied/);
    expect(await appliedNames(url)).toEqual([ALL[0], '9999_from_the_future']);
  });
});

describe('npm run migrate -- down|to|status (migrate.cli.js)', () => {
  it('status, down, to <name>, to none and up, on a fresh database', async () => {
    const url = freshDatabaseUrl();

    const up = await runCli(url, []);
    expect(up.code).toBe(0);
    expect(up.stdout).toContain(`"msg":"applied ${ALL.length} migration(s)"`);

    const status = await runCli(url, ['status', '--json']);
    expect(status.code).toBe(0);
    const listed = (JSON.parse(status.stdout) as { migrations: { name: string; state: string; applied_at: string | null }[] }).migrations;
    expect(listed.map((m) => [m.name, m.state])).toEqual(ALL.map((name) => [name, 'applied']));
    expect(listed.every((m) => m.applied_at !== null && !Number.isNaN(Date.parse(m.applied_at)))).toBe(true);

    const down = await runCli(url, ['down']);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`"msg":"reverted ${ALL.at(-1)}"`);

    const text = await runCli(url, ['status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^pending +- +${ALL.at(-1)}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^applied +\\d{4}-\\d\\d-\\d\\dT\\S+ +${ALL[0]}$`, 'm'));
    expect(text.stdout).toContain(`${ALL.length - 1} applied, 1 pending`);

    const to = await runCli(url, ['to', ALL[0]!]);
    expect(to.code).toBe(0);
    expect(await appliedNames(url)).toEqual([ALL[0]]);

    const none = await runCli(url, ['to', 'none']);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain(`"msg":"reverted ${ALL[0]}"`);
    expect(await appliedNames(url)).toEqual([]);

    const again = await runCli(url, ['up']);
    expect(again.code).toBe(0);
    expect(await appliedNames(url)).toEqual(ALL);
  }, 60_000);

  it.each([
    [['to'], /^scenecache migrate: to needs a migration name: one of 0001_initial, .*, none \(--help for usage\)$/],
    [['to', '0099_nope'], /^scenecache migrate: no migration named 0099_nope: expected one of 0001_initial, .*, none \(--help for usage\)$/],
    [['to', ALL[0]!, 'extra'], /^scenecache migrate: unexpected argument extra after to 0001_initial \(--help for usage\)$/],
    [['sideways'], /^scenecache migrate: unknown command sideways \(--help for usage\)$/],
    [['up', 'now'], /^scenecache migrate: unexpected argument now after up \(--help for usage\)$/],
    [['down', '--json'], /^scenecache migrate: --json is an option of status only \(--help for usage\)$/],
    [['--down', 'status'], /^scenecache migrate: --down cannot be combined with status \(--help for usage\)$/],
    [['status', '--verbose'], /^scenecache migrate: Unknown option '--verbose'.* \(--help for usage\)$/],
  ])('%j is a usage error (exit 2, one line, nothing run)', async (args, message) => {
    // A database that does not exist: a usage error must be found before connecting.
    const url = freshDatabaseUrl();

    const run = await runCli(url, args);

    expect(run.code).toBe(2);
    expect(run.stderr.trimEnd()).toMatch(message);
    expect(run.stdout).toBe('');
    await expect(migrationStatus(url)).rejects.toThrow(/does not exist/);
  });
});
