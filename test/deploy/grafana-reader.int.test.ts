/**
 * The compose stack's Grafana login (deploy/compose/postgres/grafana-reader.sh, then the
 * migrations) reads the dashboard views and nothing else: no table, so never `api_keys.key_hash`,
 * and no table created later either. The init script runs for real (sh + psql, as the postgres
 * image's entrypoint runs it) on a fresh database, before the migrations as in compose; then the
 * test connects as the login. Also: a login made by the earlier script, which had SELECT on every
 * table by default privileges, loses that on migration and keeps the views. And every SQL panel
 * of the Grafana dashboard (docs/grafana) runs as that login and shows the views' figures.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { DB } from '@scenecache/db';
import { createDb, createDatabase, dropDatabase, migrateTo, migrateToLatest, withDatabaseName } from '@scenecache/db';
import { insertFinishedJob, testDatabaseUrl, uniqueTestDatabaseName } from '@scenecache/testing';
import { REPO_ROOT } from './deployment-facts.js';

const SCRIPT = resolve(REPO_ROOT, 'deploy/compose/postgres/grafana-reader.sh');
const VIEWS = ['cache_daily_stats', 'tenant_daily_stats'];
const PASSWORD = 'grafana-reader-test';

const created: string[] = [];
const roles: string[] = [];

/** A new, empty database (dropped after the file). */
async function freshDatabase(): Promise<string> {
  const url = testDatabaseUrl(uniqueTestDatabaseName());
  await createDatabase(url);
  created.push(url);
  return url;
}

/** Runs the compose init script against `url` as the postgres entrypoint would. @throws on a non-zero exit. */
function runInitScript(url: string, reader: string): void {
  const u = new URL(url);
  const res = spawnSync('sh', [SCRIPT], {
    env: { PATH: process.env.PATH, PGHOST: u.hostname, PGPORT: u.port || '5432', POSTGRES_USER: decodeURIComponent(u.username), POSTGRES_DB: decodeURIComponent(u.pathname.slice(1)), GRAFANA_DB_USER: reader, GRAFANA_DB_PASSWORD: PASSWORD },
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (res.status !== 0) throw new Error(`grafana-reader.sh exited ${res.status}: ${res.stderr}`);
}

/** `url` logged in as `role`. */
function asRole(url: string, role: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = PASSWORD;
  return u.href;
}

/** What `role` may do on each relation of the public schema: 'read' or the SQLSTATE of the refusal. */
async function accessOf(url: string, role: string, relations: readonly string[]): Promise<Record<string, string>> {
  const db = createDb(asRole(url, role), { max: 1 });
  try {
    const out: Record<string, string> = {};
    for (const relation of relations) {
      try {
        await sql`SELECT count(*) FROM ${sql.table(relation)}`.execute(db);
        out[relation] = 'read';
      } catch (err) {
        out[relation] = String((err as { code?: string }).code);
      }
    }
    return out;
  } finally {
    await db.destroy();
  }
}

async function tablesOf(db: Kysely<DB>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`.execute(db);
  return rows.map((r) => r.name);
}

afterAll(async () => {
  for (const url of created) await dropDatabase(url);
  const admin = createDb(withDatabaseName(testDatabaseUrl('x'), 'postgres'), { max: 1 });
  try {
    for (const role of roles) await sql`DROP ROLE IF EXISTS ${sql.id(role)}`.execute(admin);
  } finally {
    await admin.destroy();
  }
});

describe('the Grafana login of the compose stack', () => {
  it('reads the dashboard views, and no table — not api_keys, not one created later', async () => {
    const url = await freshDatabase();
    const reader = `grafana_reader_${Date.now().toString(36)}`;
    roles.push(reader);
    runInitScript(url, reader);
    await migrateToLatest(url);
    const db = createDb(url, { max: 1 });
    try {
      await sql`CREATE TABLE added_later (secret text)`.execute(db);
      const tables = await tablesOf(db);
      expect(tables).toEqual(expect.arrayContaining(['api_keys', 'download_jobs', 'added_later']));
      const access = await accessOf(url, reader, [...VIEWS, ...tables]);
      // 42501: insufficient_privilege.
      expect(access).toEqual(Object.fromEntries([...VIEWS.map((v) => [v, 'read']), ...tables.map((t) => [t, '42501'])]));
    } finally {
      await db.destroy();
    }
  });

  it('a login made by the earlier script (SELECT on every table) keeps the views only after the migration', async () => {
    const url = await freshDatabase();
    await migrateTo(url, '0004_upstream_engine');
    const db = createDb(url, { max: 1 });
    try {
      // What the earlier init script did (with the views made before it, as on an existing volume).
      await sql`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN CREATE ROLE grafana_reader LOGIN; END IF; END $$`.execute(db);
      roles.push('grafana_reader');
      await sql`GRANT USAGE ON SCHEMA public TO grafana_reader`.execute(db);
      await sql`GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader`.execute(db);
      await sql`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader`.execute(db);
      expect((await accessOf(url, 'grafana_reader', ['api_keys'])).api_keys).toBe('read');

      await migrateToLatest(url);
      await sql`CREATE TABLE added_later (secret text)`.execute(db);
      const tables = await tablesOf(db);
      const access = await accessOf(url, 'grafana_reader', [...VIEWS, ...tables]);
      expect(access).toEqual(Object.fromEntries([...VIEWS.map((v) => [v, 'read']), ...tables.map((t) => [t, '42501'])]));
      // Its privileges go with the database; then the role can be dropped.
      await sql`DROP OWNED BY grafana_reader`.execute(db);
    } finally {
      await db.destroy();
    }
  });

  it('every SQL panel of the dashboard runs as the login and shows the figures of the views', async () => {
    const url = await freshDatabase();
    const reader = `grafana_reader_${Date.now().toString(36)}p`;
    roles.push(reader);
    runInitScript(url, reader);
    await migrateToLatest(url);
    const scene = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
    const day1 = new Date(Date.now() - 2 * 86_400_000);
    const day2 = new Date(Date.now() - 86_400_000);
    const db = createDb(url, { max: 1 });
    try {
      await insertFinishedJob(db, { tenantId: 'acme', sceneId: scene, finishedAt: day1, outcome: { cache_status: 'downloaded', bytes_downloaded: 1_000, bytes_copied: 1_000 } });
      await insertFinishedJob(db, { tenantId: 'acme', sceneId: scene, finishedAt: day1, outcome: { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 1_000 } });
      await insertFinishedJob(db, { tenantId: 'globex', sceneId: scene, finishedAt: day2, outcome: { cache_status: 'reused', bytes_downloaded: 0, bytes_copied: 1_000 } });
      await insertFinishedJob(db, { tenantId: 'globex', sceneId: scene, finishedAt: day2, outcome: 'failed' });
    } finally {
      await db.destroy();
    }

    type Panel = { title: string; datasource?: { type: string }; targets?: { rawSql?: string }[] };
    const dashboard = JSON.parse(readFileSync(resolve(REPO_ROOT, 'docs/grafana/scenecache-dashboard.json'), 'utf8')) as { panels: Panel[] };
    const sqlPanels = dashboard.panels.filter((p) => p.datasource?.type === 'grafana-postgresql-datasource');
    expect(sqlPanels.map((p) => p.title)).toEqual(['Hit ratio per UTC day (reused / completed)', 'Bytes saved per UTC day', 'Bytes saved per tenant (time range)']);
    // Grafana's macro, as it expands it for "the last 7 days".
    const expand = (text: string) => text.replace(/\$__timeFilter\((\w+)\)/g, "$1 BETWEEN now() - interval '7 days' AND now()");
    const login = createDb(asRole(url, reader), { max: 1 });
    try {
      const rows: Record<string, unknown>[][] = [];
      for (const panel of sqlPanels) rows.push((await sql.raw<Record<string, unknown>>(expand(panel.targets![0]!.rawSql!)).execute(login)).rows);
      const [hitRatio, saved, perTenant] = rows;
      expect(hitRatio!.map((r) => r['hit ratio'])).toEqual([0.5, 1]);
      expect(saved!.map((r) => [Number(r['bytes saved']), Number(r['bytes downloaded'])])).toEqual([[1_000, 1_000], [1_000, 0]]);
      expect(perTenant!.map((r) => ({ tenant: r.tenant, saved: Number(r['bytes saved']), ratio: r['hit ratio'], completed: Number(r.completed), failed: Number(r.failed) }))).toEqual([
        { tenant: 'acme', saved: 1_000, ratio: 0.5, completed: 2, failed: 0 },
        { tenant: 'globex', saved: 1_000, ratio: 1, completed: 1, failed: 1 },
      ]);
    } finally {
      await login.destroy();
    }
  });
});
