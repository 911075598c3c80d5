/**
 * Issue 13, bad input: a table of hostile requests, each answered with the API's own
 * `{error: {code, message}}` 4xx — never a 500, never Fastify's error shape — and nothing enqueued:
 * - NUL and control characters in path ids, query filters, cursors and bodies are refused by
 *   validation before any query (they used to reach Postgres: 22021, a 500);
 * - URLs the router refuses (an over-long path parameter, invalid percent-encoding) get our body;
 * - a JSON body declared in another charset than UTF-8 is 415;
 * - a client that declares a body and never sends it all gets 408 and its connection closed
 *   (it used to hold the connection forever).
 * Requests go over a real socket (fetch, or raw bytes where fetch would fix the request up).
 */
import { randomUUID } from 'node:crypto';
import { L2A, rawRequest, startTestApi, type TestApi, type TestReply } from './helpers.js';

const ADMIN_KEY = 'admin-key-hostile-input-0123456789';
/** The request deadline of this API (ms): short, so the stalled-body case is quick. */
const REQUEST_MS = 1_000;

const auth = { authorization: `Bearer ${ADMIN_KEY}` };
/** A cursor as the API makes them (base64url JSON of the last row's key, db page-cursor.ts), around any position. */
const cursorOf = (position: unknown[]) => Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');

interface Case {
  name: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  json?: unknown;
  headers?: Record<string, string>;
  body?: string;
  /** Expected status, code and (when validation names one) field. */
  expected: { status: number; code: string; field?: string };
}

const CASES: Case[] = [
  // Path ids.
  { name: 'NUL inside a job id', method: 'GET', path: '/v1/downloads/a%00b', expected: { status: 400, code: 'invalid_payload', field: 'id' } },
  { name: 'a job id that is only NUL', method: 'GET', path: '/v1/downloads/%00', expected: { status: 400, code: 'invalid_payload', field: 'id' } },
  { name: 'a control character in a job id', method: 'GET', path: '/v1/downloads/a%1Bb', expected: { status: 400, code: 'invalid_payload', field: 'id' } },
  { name: 'a job id with a colon (no BullMQ id has one)', method: 'GET', path: '/v1/downloads/a:b', expected: { status: 400, code: 'invalid_payload', field: 'id' } },
  { name: 'a job id of 101 characters', method: 'GET', path: `/v1/downloads/${'a'.repeat(101)}`, expected: { status: 400, code: 'invalid_payload', field: 'id' } },
  { name: 'a path parameter over the router limit', method: 'GET', path: `/v1/downloads/${'a'.repeat(300)}`, expected: { status: 414, code: 'uri_too_long' } },
  { name: 'invalid percent-encoding in the path', method: 'GET', path: '/v1/downloads/%E0%A4%A', expected: { status: 400, code: 'invalid_payload' } },
  { name: 'a lone % in the path', method: 'GET', path: '/v1/downloads/abc%', expected: { status: 400, code: 'invalid_payload' } },
  // Cursors and query filters.
  { name: 'a jobs cursor whose id holds NUL', method: 'GET', path: `/v1/downloads?cursor=${cursorOf(['2026-01-01T00:00:00.000000Z', 'a\u0000b'])}`, expected: { status: 400, code: 'invalid_payload', field: 'cursor' } },
  { name: 'a jobs cursor whose id is a control character', method: 'GET', path: `/v1/downloads?cursor=${cursorOf(['2026-01-01T00:00:00.000000Z', '\u0007'])}`, expected: { status: 400, code: 'invalid_payload', field: 'cursor' } },
  { name: 'a jobs cursor whose time holds NUL', method: 'GET', path: `/v1/downloads?cursor=${cursorOf(['2026-01-01T00:00:00.000000Z\u0000', randomUUID()])}`, expected: { status: 400, code: 'invalid_payload', field: 'cursor' } },
  { name: 'an entries cursor whose scene id holds NUL', method: 'GET', path: `/v1/admin/cache/entries?cursor=${cursorOf(['scene', `${L2A}\u0000`])}`, expected: { status: 400, code: 'invalid_payload', field: 'cursor' } },
  { name: 'NUL in a raw cursor', method: 'GET', path: '/v1/downloads?cursor=%00', expected: { status: 400, code: 'invalid_payload', field: 'cursor' } },
  { name: 'NUL in the tenant filter', method: 'GET', path: '/v1/downloads?tenant_id=a%00b', expected: { status: 400, code: 'invalid_payload', field: 'tenant_id' } },
  { name: 'NUL in the scene filter', method: 'GET', path: `/v1/downloads?scene_id=${L2A}%00`, expected: { status: 400, code: 'invalid_payload', field: 'scene_id' } },
  { name: 'NUL in the since filter', method: 'GET', path: '/v1/downloads?since=2026-01-01%00', expected: { status: 400, code: 'invalid_payload', field: 'since' } },
  { name: 'NUL in the stats tenant', method: 'GET', path: '/v1/cache/stats?tenant_id=%00', expected: { status: 400, code: 'invalid_payload', field: 'tenant_id' } },
  { name: 'NUL in the tile filter', method: 'GET', path: '/v1/cache/scenes?tile=32TN%00', expected: { status: 400, code: 'invalid_payload', field: 'tile' } },
  { name: 'NUL in a scene prefix', method: 'GET', path: '/v1/admin/cache/entries?scene_id_prefix=S2%00', expected: { status: 400, code: 'invalid_payload', field: 'scene_id_prefix' } },
  { name: 'NUL in a pattern', method: 'GET', path: '/v1/admin/cache/entries?pattern=S2A*%00', expected: { status: 400, code: 'invalid_payload', field: 'pattern' } },
  // Bodies.
  { name: 'NUL in a body tenant id', method: 'POST', path: '/v1/downloads', json: { tenant_id: 'acme\u0000', scene_id: L2A, bands: ['B04'] }, expected: { status: 400, code: 'invalid_tenant_id', field: 'tenant_id' } },
  { name: 'NUL in a body scene id', method: 'POST', path: '/v1/downloads', json: { tenant_id: 'acme', scene_id: `${L2A}\u0000`, bands: ['B04'] }, expected: { status: 400, code: 'invalid_product_name', field: 'scene_id' } },
  { name: 'NUL in a body band', method: 'POST', path: '/v1/downloads', json: { tenant_id: 'acme', scene_id: L2A, bands: ['B04\u0000'] }, expected: { status: 400, code: 'unknown_band', field: 'bands[0]' } },
  { name: 'NUL in an invalidation scene id', method: 'POST', path: '/v1/admin/cache/invalidate', json: { scene_id: `${L2A}\u0000` }, expected: { status: 400, code: 'invalid_product_name', field: 'scene_id' } },
  { name: 'NUL in an invalidation pattern', method: 'POST', path: '/v1/admin/cache/invalidate', json: { pattern: 'S2A_*\u0000' }, expected: { status: 400, code: 'invalid_payload', field: 'pattern' } },
  // Tenant offboarding and the cache maintenance.
  { name: 'NUL in a tenant id to offboard', method: 'DELETE', path: '/v1/admin/tenants/acme%00', expected: { status: 400, code: 'invalid_tenant_id', field: 'tenant_id' } },
  { name: 'a control character in a tenant id to offboard', method: 'DELETE', path: '/v1/admin/tenants/ac%1Bme', expected: { status: 400, code: 'invalid_tenant_id', field: 'tenant_id' } },
  { name: 'NUL in an offboarding flag', method: 'DELETE', path: '/v1/admin/tenants/acme?dry_run=true%00', expected: { status: 400, code: 'invalid_payload', field: 'dry_run' } },
  { name: 'a tenant id to offboard over the router limit', method: 'DELETE', path: `/v1/admin/tenants/${'a'.repeat(300)}`, expected: { status: 414, code: 'uri_too_long' } },
  { name: 'NUL in the maintenance body', method: 'POST', path: '/v1/admin/cache/maintenance', json: { dry_run: true, 'x\u0000': 1 }, expected: { status: 400, code: 'invalid_payload' } },
  { name: 'a query parameter on the cache usage', method: 'GET', path: '/v1/cache/usage?x=%00', expected: { status: 400, code: 'invalid_payload', field: 'x' } },
  // Charsets.
  {
    name: 'a JSON body declared UTF-16',
    method: 'POST',
    path: '/v1/downloads',
    headers: { 'content-type': 'application/json; charset=utf-16' },
    body: JSON.stringify({ tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }),
    expected: { status: 415, code: 'unsupported_media_type' },
  },
  {
    name: 'a JSON body declared ISO-8859-1, quoted',
    method: 'POST',
    path: '/v1/downloads',
    headers: { 'content-type': 'application/json; charset="ISO-8859-1"' },
    body: JSON.stringify({ tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }),
    expected: { status: 415, code: 'unsupported_media_type' },
  },
];

describe('hostile input', () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY: ADMIN_KEY }, timeouts: { requestMs: REQUEST_MS } });
  });
  afterAll(async () => {
    await api?.close();
  });

  it.each(CASES)('$name: $expected.status $expected.code, nothing enqueued', async ({ method, path, json, headers, body, expected }) => {
    const res: TestReply = await api.request(method, path, { json, body, headers: { ...auth, ...headers } });
    const error = res.body.error as { code: string; message: string; field?: string } | undefined;
    expect({ status: res.status, code: error?.code, ...(expected.field === undefined ? {} : { field: error?.field }) }).toEqual(expected);
    // Our shape only: no Fastify statusCode/error keys beside it, a message that says something.
    expect(Object.keys(res.body)).toEqual(['error']);
    expect(error!.message.length).toBeGreaterThan(10);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect({ rows: await api.rowCount(), jobs: await api.queueJobCount() }).toEqual({ rows: 0, jobs: 0 });
  });

  it('a JSON body declared UTF-8, in any spelling, is accepted', async () => {
    for (const contentType of ['application/json; charset=utf-8', 'application/json; charset=UTF-8', 'application/json;charset="utf-8"', 'application/json']) {
      const res = await api.request('POST', '/v1/downloads', { body: JSON.stringify({ tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }), headers: { ...auth, 'content-type': contentType } });
      expect({ contentType, status: res.status }).toEqual({ contentType, status: 202 });
    }
    expect(await api.rowCount()).toBe(4);
    await api.reset();
  });

  it('a valid id and cursor still work: the checks refuse only what no job has', async () => {
    const created = await api.request('POST', '/v1/downloads', { json: { tenant_id: 'acme', scene_id: L2A, bands: ['B04'] }, headers: auth });
    expect(created.status).toBe(202);
    const id = created.body.job_id as string;
    expect((await api.request('GET', `/v1/downloads/${id}`, { headers: auth })).status).toBe(200);
    expect((await api.request('GET', `/v1/downloads/${randomUUID()}`, { headers: auth })).status).toBe(404);
    const page = await api.request('GET', `/v1/downloads?limit=1&cursor=${cursorOf(['2099-01-01T00:00:00.000000Z', 'zzzz'])}`, { headers: auth });
    expect({ status: page.status, ids: (page.body.items as { job_id: string }[]).map((j) => j.job_id) }).toEqual({ status: 200, ids: [id] });
    await api.reset();
  });

  it('a body declared longer than sent: 408 request_timeout and the connection closed, nothing enqueued', async () => {
    const head = `POST /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"tenant`;
    const { reply, closedByServer, ms } = await rawRequest(api.baseUrl, Buffer.from(head, 'latin1'), 20 * REQUEST_MS);
    expect(closedByServer).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(REQUEST_MS - 50);
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: { code: 'request_timeout' } });
    expect({ rows: await api.rowCount(), jobs: await api.queueJobCount() }).toEqual({ rows: 0, jobs: 0 });
  });

  it('headers that never end: 408 and the connection closed', async () => {
    const { reply, closedByServer } = await rawRequest(api.baseUrl, Buffer.from('GET /v1/fleet HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n', 'latin1'), 20 * REQUEST_MS);
    expect(closedByServer).toBe(true);
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
  });
});
