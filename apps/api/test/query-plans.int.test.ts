/**
 * Issue 14: every read the API and the dashboard make uses an index — none scans `download_jobs`
 * from end to end, which at a year of history (millions of rows) is what made `/v1/cache/stats`
 * time out. The table is seeded with a year of finished jobs (db `seedHistory`, then ANALYZE); the
 * API runs on a pool that records every query; each route the dashboard and clients call is
 * requested, and each query it ran is `EXPLAIN`ed with its parameters: a `Seq Scan` on
 * `download_jobs` anywhere in a plan fails the test.
 */
import { sql, type CompiledQuery } from 'kysely';
import { createDb, seedHistory, type DB } from '@scenecache/db';
import { createTestDatabase, type TestDatabase } from '@scenecache/testing';
import type { Kysely } from 'kysely';
import { startTestApi, type TestApi } from './helpers.js';

/** Jobs seeded: enough that the planner prefers an index wherever one applies (a year, 200 tenants). */
const SEEDED_JOBS = 60_000;

type PlanNode = { 'Node Type': string; 'Relation Name'?: string; Plans?: PlanNode[] };

/** Every node of a plan tree. */
function nodesOf(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodesOf)];
}

describe('query plans of the API reads on a year of history', () => {
  let t: TestDatabase;
  let db: Kysely<DB>;
  let api: TestApi;
  let recorded: CompiledQuery[] = [];
  const explained: Array<{ request: string; sql: string; scans: string[]; relations: string[] }> = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedHistory(t.db, { jobs: SEEDED_JOBS, days: 365, tenants: 200, chunk: 20_000 });
    db = createDb(t.url, { max: 4, log: (event) => void (event.level === 'query' && recorded.push(event.query)) });
    api = await startTestApi({ db });
  }, 120_000);
  afterAll(async () => {
    await api?.close();
    await db?.destroy();
    await t?.drop();
  });

  /** Request `path`, then EXPLAIN every read it made (a view may read download_jobs too). @returns the reply. */
  async function explainRequest(method: 'GET' | 'POST', path: string, json?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    recorded = [];
    const res = await api.request(method, path, { json, headers });
    for (const query of recorded) {
      if (!/^\s*(select|with)\b/i.test(query.sql)) continue;
      const plan = await sql<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>`EXPLAIN (FORMAT JSON) ${sql.raw(inline(query))}`.execute(t.db);
      const scans = nodesOf(plan.rows[0]!['QUERY PLAN'][0]!.Plan)
        .filter((n) => n['Node Type'] === 'Seq Scan')
        .map((n) => n['Relation Name'] ?? '?');
      const relations = nodesOf(plan.rows[0]!['QUERY PLAN'][0]!.Plan).flatMap((n) => (n['Relation Name'] ? [n['Relation Name']] : []));
      explained.push({ request: `${method} ${path}`, sql: query.sql, scans, relations });
    }
    return res;
  }

  it('no route scans download_jobs sequentially', async () => {
    const since = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
    const one = (await sql<{ id: string; scene_id: string; tenant_id: string }>`SELECT id, scene_id, tenant_id FROM download_jobs ORDER BY id LIMIT 1 OFFSET 777`.execute(t.db)).rows[0]!;
    const requests: Array<[string, unknown?]> = [
      ['/v1/cache/stats'],
      [`/v1/cache/stats?since=${since}`],
      [`/v1/cache/stats?tenant_id=tenant-001`],
      [`/v1/cache/stats?tenant_id=${one.tenant_id}&since=${since}`],
      ['/v1/downloads?limit=20'],
      ['/v1/downloads?limit=500'],
      ['/v1/downloads?status=failed&limit=20'],
      ['/v1/downloads?status=completed&cache_status=reused&limit=20'],
      [`/v1/downloads?scene_id=${one.scene_id}`],
      [`/v1/downloads?since=${since}T00:00:00Z&until=${since}T12:00:00Z&limit=50`],
      [`/v1/downloads/${one.id}`],
      ['/v1/cache/scenes?order=most_reused&limit=10'],
      ['/v1/fleet'],
    ];
    for (const [path] of requests) expect({ path, status: (await explainRequest('GET', path)).status }).toEqual({ path, status: 200 });
    // One tenant's jobs, page after page with the cursor (the dashboard and clients do this).
    let cursor: string | null = null;
    for (let page = 0; page < 4; page++) {
      const res = await explainRequest('GET', `/v1/downloads?tenant_id=tenant-001&limit=50${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      cursor = res.body.next_cursor as string | null;
      expect(cursor).not.toBeNull();
    }
    // An enqueue with an Idempotency-Key looks the key up first.
    expect((await explainRequest('POST', '/v1/downloads', { tenant_id: 'tenant-001', scene_id: one.scene_id }, { 'idempotency-key': 'plan-test-1' })).status).toBe(202);

    // The test looked at real reads of download_jobs, from every kind of request.
    const readJobs = explained.filter((e) => e.relations.includes('download_jobs'));
    expect(new Set(readJobs.map((e) => e.request.split('?')[0]))).toEqual(new Set(['GET /v1/downloads', `GET /v1/downloads/${one.id}`]));
    expect(readJobs.length).toBeGreaterThanOrEqual(11);
    // The statistics read the daily rollups, not the job rows.
    const stats = explained.filter((e) => e.request.startsWith('GET /v1/cache/stats'));
    expect(stats.length).toBeGreaterThanOrEqual(4);
    const ROLLUPS = ['job_daily_rollups', 'job_daily_totals', 'job_tenant_totals'];
    expect(stats.filter((e) => !ROLLUPS.some((r) => e.relations.includes(r)) || e.relations.includes('download_jobs'))).toEqual([]);
    // All time, per day and per tenant come from the one-row-a-day and one-row-a-tenant sums.
    expect(new Set(stats.filter((e) => e.request === 'GET /v1/cache/stats').flatMap((e) => e.relations.filter((r) => ROLLUPS.includes(r))))).toEqual(new Set(['job_daily_totals', 'job_tenant_totals']));
    expect(explained.filter((e) => e.scans.includes('download_jobs')).map((e) => `${e.request}: ${e.sql}`)).toEqual([]);
  });
});

/** The query with its parameters written in as literals (EXPLAIN takes no bind parameters here). */
function inline(query: CompiledQuery): string {
  return query.sql.replace(/\$(\d+)/g, (_, n: string) => literal(query.parameters[Number(n) - 1]));
}

function literal(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (value instanceof Date) return `'${value.toISOString()}'::timestamptz`;
  if (Array.isArray(value)) return `ARRAY[${value.map(literal).join(', ')}]`;
  if (typeof value === 'string') return `'${value.replace(/'/g, "''")}'`;
  return `'${JSON.stringify(value).replace(/'/g, "''")}'::jsonb`;
}
