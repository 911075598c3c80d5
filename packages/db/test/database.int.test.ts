import pg from 'pg';
import { sql } from 'kysely';
import { createDb, databaseNameOf, pingDb, quoteIdentifier, redactUrl, withDatabaseName } from '@scenecache/db';
import { ScenecacheError } from '@scenecache/core';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '@scenecache/testing';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('createDb', () => {
  it('parses int8 as number, date as YYYY-MM-DD, jsonb as object, timestamptz as Date', async () => {
    const { rows } = await sql<{ n: unknown; d: unknown; j: unknown; ts: unknown; c: unknown }>`
      SELECT 9007199254740991::int8 AS n, DATE '2024-11-23' AS d, '{"a": [1]}'::jsonb AS j, now() AS ts, COUNT(*) AS c
      FROM generate_series(1, 3)`.execute(t.db);

    const { ts, ...rest } = rows[0] ?? {};
    expect(rest).toEqual({ n: Number.MAX_SAFE_INTEGER, d: '2024-11-23', j: { a: [1] }, c: 3 });
    expect(ts).toBeInstanceOf(Date);
  });

  it('leaves the global pg type parsers alone', async () => {
    const client = new pg.Client({ connectionString: t.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: unknown }>('SELECT 1::int8 AS n');
      expect(rows[0]?.n).toBe('1');
    } finally {
      await client.end();
    }
  });

  it('names its connections', async () => {
    const db = createDb(t.url, { applicationName: 'scenecache-probe', max: 1 });
    try {
      const { rows } = await sql<{ name: string }>`SELECT current_setting('application_name') AS name`.execute(db);
      expect(rows[0]?.name).toBe('scenecache-probe');
    } finally {
      await db.destroy();
    }
  });
});

describe('pingDb', () => {
  it('answers with the round-trip time', async () => {
    expect(await pingDb(t.db)).toBeGreaterThanOrEqual(0);
  });

  it('throws service_unavailable (503) when Postgres cannot be reached', async () => {
    const url = new URL(t.url);
    url.port = '1'; // nothing listens there
    const db = createDb(url.toString(), { connectionTimeoutMillis: 1_000 });
    try {
      const err = await pingDb(db).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ScenecacheError);
      expect(err).toMatchObject({ code: 'service_unavailable', httpStatus: 503, retryable: true });
    } finally {
      await db.destroy();
    }
  });
});

describe('URL and identifier helpers', () => {
  it('swaps, reads and redacts database names', () => {
    const url = 'postgres://u:secret@db.example:6543/app?sslmode=require';
    const other = withDatabaseName(url, 'My "db"');
    expect(databaseNameOf(other)).toBe('My "db"');
    expect(other).toContain('sslmode=require');
    expect(redactUrl(url)).toBe('postgres://u:***@db.example:6543/app?sslmode=require');
    expect(quoteIdentifier('My "db"')).toBe('"My ""db"""');
    expect(() => databaseNameOf('postgres://u@h:5432')).toThrow('names no database');
  });
});

describe('createTestDatabase', () => {
  it('gives a migrated, empty database that drop() removes', async () => {
    const other = await createTestDatabase();
    expect(other.name).not.toBe(t.name);
    expect(await other.db.selectFrom('global_scene_cache').selectAll().execute()).toEqual([]);
    await other.drop();
    await other.drop(); // idempotent

    const { rows } = await sql<{ n: number }>`SELECT COUNT(*) AS n FROM pg_database WHERE datname = ${other.name}`.execute(t.db);
    expect(rows[0]?.n).toBe(0);
    expect(testDatabaseUrl(other.name)).toBe(other.url);
  });
});
