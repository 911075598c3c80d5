/**
 * Issue 13, the operator's tools: every command line behaves the same (core cli.ts). Each compiled
 * entry point is run for real:
 * - `--help` prints the usage on stdout and exits 0, starting nothing;
 * - an unknown option exits 2 with one line on stderr;
 * - invalid settings exit 2 (the API used to exit 1, the worker 2), naming the variable and the
 *   value given — never a credential's value, never a URL's password;
 * - the demo drops only a database it made itself (marked), and refuses an unmarked one.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { sql } from 'kysely';
import { DEMO_DATABASE_MARK, recreateDemoDatabase } from '../apps/demo/src/demo-environment.js';
import { createDatabase, createDb, dropDatabase } from '@scenecache/db';
import { killProcessGroup, spawnProcessGroup, testDatabaseUrl, uniqueTestDatabaseName } from '@scenecache/testing';
import { REPO_ROOT } from './deploy/deployment-facts.js';

const ENTRY_POINTS: Readonly<Record<string, string>> = {
  api: 'apps/api/dist/main.js',
  worker: 'apps/worker/dist/main.js',
  migrate: 'packages/db/dist/migrate.cli.js',
  keys: 'packages/db/dist/keys.cli.js',
  'seed:history': 'packages/db/dist/seed-history.cli.js',
  demo: 'apps/demo/dist/main.js',
  bench: 'bench/dist/main.js',
  screenshot: 'apps/api/dist/dashboard/dashboard-screenshot.cli.js',
};

/** Run an entry point (its own process group, killed after 30 s) with `env` added; settings from the test environment are dropped. */
function run(script: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const { NODE_OPTIONS: _n, DATABASE_URL: _d, REDIS_URL: _r, ...inherited } = process.env;
    const child = spawnProcessGroup(process.execPath, [resolve(REPO_ROOT, script), ...args], { env: { ...inherited, LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => killProcessGroup(child, 'SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** stderr without Node's own warnings (the AWS SDK's Node-version notice on Node 20). */
const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.trim() !== '' && !/Warning|node >=22|upgrade to node|a\.co\/|trace-warnings|security updates|^To continue|^versions published|^will require/.test(l));

describe.each(Object.entries(ENTRY_POINTS))('%s', (name, script) => {
  it('--help prints the usage and exits 0', async () => {
    const res = await run(script, ['--help']);
    expect({ code: res.code, usage: res.stdout.startsWith('usage: ') }).toEqual({ code: 0, usage: true });
    expect(errorLines(res.stderr)).toEqual([]);
  });

  it('an unknown option exits 2 with one line', async () => {
    const res = await run(script, ['--no-such-option']);
    expect(res.code).toBe(2);
    const lines = errorLines(res.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^(scenecache ${name}|dashboard ${name}): .*--no-such-option.*\\(--help for usage\\)$`));
  });
});

describe('bench --merge', () => {
  it('refuses before running anything: without --only, or into a report that is not a full run', async () => {
    const noOnly = await run(ENTRY_POINTS.bench!, ['--merge']);
    expect({ code: noOnly.code, lines: errorLines(noOnly.stderr) }).toEqual({ code: 2, lines: ['scenecache bench: --merge needs --only and a full-size run (no --quick) (--help for usage)'] });
    // A run of one scenario: merging into it would pass it off as a full run.
    const onlyRun = join(await mkdtemp(join(tmpdir(), 'bench-')), 'history.json');
    await writeFile(onlyRun, JSON.stringify({ date: new Date().toISOString(), quick: false, only: ['history'], scenarios: [] }));
    const partial = await run(ENTRY_POINTS.bench!, ['--only', 'history', '--merge', '--out', onlyRun]);
    expect({ code: partial.code, lines: errorLines(partial.stderr) }).toEqual({ code: 2, lines: [expect.stringMatching(/^scenecache bench: --merge: .*history\.json is not a full run of every scenario/) as string] });
    expect(partial.stdout).toBe('');
    await rm(dirname(onlyRun), { recursive: true, force: true });
  });
});

describe('invalid settings', () => {
  it.each(['api', 'worker', 'migrate', 'keys'])('%s exits 2 naming the variable and the value given', async (name) => {
    const res = await run(ENTRY_POINTS[name]!, name === 'keys' ? ['list'] : [], { WORKER_CONCURRENCY: 'lots', API_PORT: '70000' });
    expect(res.code).toBe(2);
    const text = errorLines(res.stderr).join('\n');
    expect(text).toContain('WORKER_CONCURRENCY');
    expect(text).toContain('(got "lots")');
    expect(text).toContain('(got "70000")');
  });

  it('never echoes a credential or a URL password', async () => {
    const res = await run(ENTRY_POINTS.api!, [], {
      ADMIN_API_KEY: 'short-SECRET1',
      S3_SECRET_ACCESS_KEY: 'x',
      REDIS_URL: 'ftp://user:PASSWORD2@host',
      CDSE_PASSWORD: 'SECRET3-only-half',
    });
    expect(res.code).toBe(2);
    const text = res.stderr;
    expect(text).toContain('ADMIN_API_KEY');
    expect(text).toContain('REDIS_URL');
    for (const secret of ['SECRET1', 'PASSWORD2', 'SECRET3']) expect(text).not.toContain(secret);
    expect(text).toContain('the value is not shown');
    expect(text).toContain('user:***@host');
  });
});

describe('npm run seed:history', () => {
  it('adds N finished jobs over D days for T tenants, and the statistics count them', async () => {
    const url = testDatabaseUrl(uniqueTestDatabaseName());
    try {
      const res = await run(ENTRY_POINTS['seed:history']!, ['--jobs', '3000', '--days', '30', '--tenants', '7'], { DATABASE_URL: url, LOG_LEVEL: 'warn' });
      expect({ code: res.code, stderr: errorLines(res.stderr) }).toEqual({ code: 0, stderr: [] });
      expect(res.stdout).toContain('3000 / 3000 jobs');
      const db = createDb(url, { max: 1 });
      try {
        const jobs = (await sql<{ n: number; tenants: number; days: number; unfinished: number }>`
          SELECT count(*)::int AS n, count(DISTINCT tenant_id)::int AS tenants, count(DISTINCT (finished_at AT TIME ZONE 'UTC')::date)::int AS days,
            count(*) FILTER (WHERE finished_at IS NULL OR status NOT IN ('completed', 'failed'))::int AS unfinished FROM download_jobs`.execute(db)).rows[0]!;
        expect(jobs.n).toBe(3000);
        expect(jobs.unfinished).toBe(0);
        expect(jobs.tenants).toBeLessThanOrEqual(7);
        expect(jobs.tenants).toBeGreaterThanOrEqual(5);
        expect(jobs.days).toBeGreaterThanOrEqual(30);
        expect(jobs.days).toBeLessThanOrEqual(31);
        const stats = (await sql<{ n: number }>`SELECT sum(requests + failed)::int AS n FROM cache_daily_stats`.execute(db)).rows[0]!;
        expect(stats.n).toBe(3000);
      } finally {
        await db.destroy();
      }
    } finally {
      await dropDatabase(url);
    }
  });
});

describe('the demo database', () => {
  const urls: string[] = [];
  afterAll(async () => {
    for (const url of urls) await dropDatabase(url);
  });

  it('an unmarked database of that name is refused and left as it was; a marked one is recreated', async () => {
    const url = testDatabaseUrl(uniqueTestDatabaseName());
    urls.push(url);
    await createDatabase(url);
    const db = createDb(url, { max: 1 });
    try {
      await sql`CREATE TABLE precious (v text)`.execute(db);
      await sql`INSERT INTO precious VALUES ('keep me')`.execute(db);
    } finally {
      await db.destroy();
    }
    await expect(recreateDemoDatabase(url)).rejects.toThrow(/exists and was not made by the demo/);
    const still = createDb(url, { max: 1 });
    try {
      expect((await sql<{ v: string }>`SELECT v FROM precious`.execute(still)).rows).toEqual([{ v: 'keep me' }]);
    } finally {
      await still.destroy();
    }

    // The demo's own database (made by it, so marked) is dropped and made again, empty and marked.
    await dropDatabase(url);
    await recreateDemoDatabase(url);
    const made = createDb(url, { max: 1 });
    try {
      await sql`CREATE TABLE leftover (v text)`.execute(made);
      const mark = await sql<{ mark: string }>`SELECT shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE datname = current_database()`.execute(made);
      expect(mark.rows[0]?.mark).toBe(DEMO_DATABASE_MARK);
    } finally {
      await made.destroy();
    }
    await recreateDemoDatabase(url);
    const again = createDb(url, { max: 1 });
    try {
      expect((await again.introspection.getTables()).map((t) => t.name)).toEqual([]);
    } finally {
      await again.destroy();
    }
  });
});
