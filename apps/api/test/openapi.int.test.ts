/**
 * The OpenAPI document at `/docs/json`, generated from the route schemas, against the routes the
 * app really serves; Swagger UI at `/docs`. `redocly lint` (its recommended rules) finds no error
 * in it; every operation is named, open routes say so, reply headers are declared; and the reply
 * serializer enforces the response schemas.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { createLogger } from '@scenecache/core';
import { buildApp } from '../src/app.js';
import { startTestApi, type TestApi } from './helpers.js';

type Json = Record<string, unknown>;

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Every route in `app.printRoutes({ commonPrefix: false })`'s tree, as `METHOD /path` (HEAD left out). */
function routesOf(tree: string): Set<string> {
  const routes = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)(?:├── |└── )?(\S+?)(?: \(([A-Z, ]+)\))?$/.exec(line.replace(/\s+$/, ''));
    if (!match || match[2] === undefined) continue;
    const depth = (match[1] ?? '').length / 4 + (line.includes('── ') ? 1 : 0);
    stack.length = depth;
    stack[depth] = match[2];
    const methods = match[3];
    if (methods === undefined) continue;
    const path = stack.join('');
    for (const method of methods.split(',').map((m) => m.trim())) if (method !== 'HEAD') routes.add(`${method} ${path}`);
  }
  return routes;
}

/** Every `$ref` in `node`, with where it was found. */
function refsIn(node: unknown, at = '#'): Array<{ ref: string; at: string }> {
  if (Array.isArray(node)) return node.flatMap((item, i) => refsIn(item, `${at}/${i}`));
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node as Json).flatMap(([key, value]) =>
    key === '$ref' && typeof value === 'string' ? [{ ref: value, at }] : refsIn(value, `${at}/${key}`),
  );
}

/** The value a local JSON pointer (`#/components/schemas/Error`) points to, or undefined. */
function resolvePointer(document: Json, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = document;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(key in (node as Json))) return undefined;
    node = (node as Json)[key];
  }
  return node;
}

/** Follow a `$ref` if `schema` is one. */
function deref(document: Json, schema: unknown): Json {
  const ref = (schema as Json | undefined)?.$ref;
  return (typeof ref === 'string' ? resolvePointer(document, ref) : schema) as Json;
}

let api: TestApi;
let doc: Json;
let paths: Record<string, Record<string, Json>>;

beforeAll(async () => {
  api = await startTestApi();
  const res = await fetch(`${api.baseUrl}/docs/json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  doc = (await res.json()) as Json;
  paths = doc.paths as typeof paths;
});
afterAll(async () => {
  await api.close();
});

function operation(method: string, path: string): Json {
  const op = paths[path]?.[method];
  if (!op) throw new Error(`no ${method.toUpperCase()} ${path} in the document`);
  return op;
}

/** JSON schema of an operation's response for `status`, `$ref` followed. */
function responseSchema(method: string, path: string, status: string): Json {
  const responses = operation(method, path).responses as Record<string, Json>;
  const content = responses[status]?.content as Record<string, { schema: unknown }> | undefined;
  return deref(doc, content?.['application/json']?.schema);
}

describe('GET /docs/json', () => {
  it('is an OpenAPI 3 document with info, paths and the bearerAuth scheme', () => {
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    const info = doc.info as Json;
    expect([typeof info.title, typeof info.version]).toEqual(['string', 'string']);
    expect(Object.keys(paths).length).toBeGreaterThan(0);
    const components = doc.components as Json;
    expect((components.securitySchemes as Json).bearerAuth).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
  });

  it('lists every route the app serves, with its method, and nothing else', () => {
    const served = routesOf(api.app.printRoutes({ commonPrefix: false }));
    // Swagger UI's own routes (and bull-board's UI, declaring no schema) are hidden from the document.
    // Not API: Swagger UI, bull-board, and the dashboard page (`GET /`) with its assets.
    const expected = [...served].filter((r) => !/^[A-Z]+ \/(docs|admin\/queues|dashboard)(\/|$)|^[A-Z]+ \/$/.test(r)).map((r) => r.replace(/:(\w+)/g, '{$1}'));
    const documented = Object.entries(paths).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((key) => (HTTP_METHODS as readonly string[]).includes(key))
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(expected.sort());
    expect(expected).toEqual(
      expect.arrayContaining([
        'POST /v1/downloads',
        'POST /v1/downloads/batch',
        'GET /v1/downloads/{id}',
        'GET /v1/downloads',
        'GET /v1/cache/stats',
        'GET /v1/cache/scenes',
        'GET /v1/fleet',
        'POST /v1/admin/cache/invalidate',
        'POST /v1/admin/cache/cleanup',
        'GET /v1/admin/cache/entries',
        'GET /v1/cache/usage',
        'POST /v1/admin/cache/maintenance',
        'DELETE /v1/admin/tenants/{tenant_id}',
        'GET /healthz',
        'GET /readyz',
        'GET /metrics',
      ]),
    );
  });

  it('gives every operation a summary, tags and responses with descriptions', () => {
    for (const [path, item] of Object.entries(paths)) {
      for (const method of HTTP_METHODS) {
        const op = item[method];
        if (!op) continue;
        expect({ path, method, summary: typeof op.summary }).toEqual({ path, method, summary: 'string' });
        expect(op.tags).toEqual([expect.any(String)]);
        const responses = op.responses as Record<string, Json>;
        expect(Object.keys(responses).length).toBeGreaterThan(0);
        for (const [status, response] of Object.entries(responses)) {
          expect({ path, method, status, description: typeof response.description }).toEqual({ path, method, status, description: 'string' });
        }
      }
    }
  });

  it('POST /v1/downloads: the body requires tenant_id and scene_id and lists bands and priority', () => {
    const op = operation('post', '/v1/downloads');
    const body = op.requestBody as Json;
    expect(body.required).toBe(true);
    const schema = deref(doc, (body.content as Record<string, { schema: unknown }>)['application/json']?.schema);
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(expect.arrayContaining(['tenant_id', 'scene_id']));
    expect(schema.required).not.toContain('bands');
    expect(Object.keys(schema.properties as Json)).toEqual(expect.arrayContaining(['tenant_id', 'scene_id', 'bands', 'priority']));
    expect((schema.properties as Record<string, Json>).bands?.type).toBe('array');
    const parameters = op.parameters as Json[];
    expect(parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false })]));
  });

  it('POST /v1/downloads: 202 and 200 describe the job; errors use the shared Error schema', () => {
    const accepted = responseSchema('post', '/v1/downloads', '202');
    expect(accepted.type).toBe('object');
    expect(Object.keys(accepted.properties as Json)).toEqual(expect.arrayContaining(['job_id', 'status']));
    expect(responseSchema('post', '/v1/downloads', '200')).toEqual(accepted);

    const error = (doc.components as { schemas: Record<string, Json> }).schemas.Error!;
    expect(error).toMatchObject({ type: 'object', required: ['error'] });
    expect((error.properties as Record<string, Json>).error).toMatchObject({ type: 'object', required: ['code', 'message'] });
    const responses = operation('post', '/v1/downloads').responses as Record<string, Json>;
    for (const status of ['400', '401', '409', '413', '415', '503']) {
      expect((responses[status]?.content as Record<string, Json>)['application/json']?.schema).toEqual({ $ref: '#/components/schemas/Error' });
    }
  });

  it('GET /v1/downloads/{id}: declares its path parameter and the optional wait (0–60 s); 404 is an Error', () => {
    const op = operation('get', '/v1/downloads/{id}');
    expect(op.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ in: 'path', name: 'id', required: true }),
        expect.objectContaining({ in: 'query', name: 'wait', required: false, schema: { type: 'integer', minimum: 0, maximum: 60 } }),
      ]),
    );
    expect((op.parameters as Json[]).length).toBe(2);
    expect(responseSchema('get', '/v1/downloads/{id}', '404')).toEqual((doc.components as { schemas: Json }).schemas.Error);
    expect(Object.keys(responseSchema('get', '/v1/downloads/{id}', '200').properties as Json)).toEqual(
      expect.arrayContaining(['job_id', 'tenant_id', 'scene_id', 'status', 'cache_status']),
    );
  });

  it('GET /v1/downloads: query filters are optional parameters; the page has items and next_cursor', () => {
    const parameters = operation('get', '/v1/downloads').parameters as Json[];
    const query: Record<string, Json> = Object.fromEntries(parameters.filter((p) => p.in === 'query').map((p): [string, Json] => [String(p.name), p]));
    expect(Object.keys(query).sort()).toEqual(['cache_status', 'cursor', 'limit', 'scene_id', 'since', 'status', 'tenant_id', 'until']);
    for (const parameter of Object.values(query)) expect(parameter.required).toBeFalsy();
    expect((query.status?.schema as Json).enum).toEqual(['queued', 'active', 'completed', 'failed', 'cancelled']);
    expect(Object.keys(responseSchema('get', '/v1/downloads', '200').properties as Json).sort()).toEqual(['items', 'next_cursor']);
  });

  it('cache routes: query parameters and reply schemas', () => {
    const stats = operation('get', '/v1/cache/stats').parameters as Json[];
    expect(stats.map((p) => p.name).sort()).toEqual(['since', 'tenant_id', 'until']);
    expect(Object.keys(responseSchema('get', '/v1/cache/stats', '200').properties as Json).sort()).toEqual(['per_day', 'per_tenant', 'totals']);
    const scenes = operation('get', '/v1/cache/scenes').parameters as Json[];
    expect(scenes.map((p) => p.name).sort()).toEqual(['level', 'limit', 'order', 'tile']);
    expect(responseSchema('get', '/v1/cache/scenes', '200').properties).toHaveProperty('items');
  });

  it('cache life cycle: usage, maintenance and offboarding are documented with their options, replies and conflicts', () => {
    expect(operation('get', '/v1/cache/usage').parameters).toBeUndefined();
    expect(Object.keys(responseSchema('get', '/v1/cache/usage', '200').properties as Json).sort()).toEqual([
      'budget_bytes',
      'bytes',
      'bytes_over_budget',
      'eviction_target_bytes',
      'invalid_bytes',
      'invalid_products',
      'invalid_retention_days',
      'maintenance_interval_ms',
      'objects',
      'oldest_access_at',
      'products',
      'unused_ttl_days',
      'used_ratio',
    ]);

    const maintenance = operation('post', '/v1/admin/cache/maintenance');
    expect(maintenance.operationId).toBe('runCacheMaintenance');
    const body = deref(doc, ((maintenance.requestBody as Json).content as Record<string, { schema: unknown }>)['application/json']?.schema);
    expect(Object.keys(body.properties as Json)).toEqual(['dry_run']);
    const report = responseSchema('post', '/v1/admin/cache/maintenance', '200');
    expect(Object.keys(report.properties as Json)).toEqual(
      expect.arrayContaining(['dry_run', 'usage_before', 'usage_after', 'invalid_removed', 'expired', 'evicted', 'orphans', 'vanished', 'skipped', 'aborted']),
    );
    expect(responseSchema('post', '/v1/admin/cache/maintenance', '409')).toEqual((doc.components as { schemas: Json }).schemas.Error);

    const offboard = operation('delete', '/v1/admin/tenants/{tenant_id}');
    expect(offboard.operationId).toBe('offboardTenant');
    expect(offboard.requestBody).toBeUndefined();
    const parameters = offboard.parameters as Json[];
    expect(parameters.map((p) => `${String(p.in)}:${String(p.name)}:${String(p.required)}`).sort()).toEqual([
      'path:tenant_id:true',
      'query:delete_objects:false',
      'query:dry_run:false',
      'query:purge_jobs:false',
    ]);
    for (const p of parameters.filter((x) => x.in === 'query')) expect(p.schema).toEqual({ type: 'string', enum: ['true', 'false'] });
    expect(Object.keys(responseSchema('delete', '/v1/admin/tenants/{tenant_id}', '200').properties as Json).sort()).toEqual([
      'bucket',
      'busy',
      'delete_objects',
      'dry_run',
      'jobs',
      'objects',
      'purge_jobs',
      'tenant_id',
      'tenant_scenes',
    ]);
    expect((offboard.responses as Record<string, Json>)['409']?.description).toMatch(/tenant_busy/);
  });

  it('/v1 operations require bearerAuth; health and metrics do not', () => {
    for (const [path, item] of Object.entries(paths)) {
      for (const method of HTTP_METHODS) {
        const op = item[method];
        if (!op) continue;
        // The STAC API (/stac/v1) sits behind the same keys as /v1.
        if (path.startsWith('/v1/') || path.startsWith('/stac/v1')) expect({ path, security: op.security }).toEqual({ path, security: [{ bearerAuth: [] }] });
        else expect({ path, security: op.security }).toEqual({ path, security: [] });
      }
    }
  });

  it('health and metrics replies are documented', () => {
    expect(responseSchema('get', '/healthz', '200')).toMatchObject({ type: 'object', required: ['status'] });
    expect(responseSchema('get', '/readyz', '503').properties).toHaveProperty('checks');
    const metrics = (operation('get', '/metrics').responses as Record<string, Json>)['200'];
    expect(metrics?.content).toHaveProperty(['text/plain']);
  });

  it('is structurally sound: every $ref resolves, every path template parameter is declared, parameters are unique', () => {
    const refs = refsIn(doc);
    expect(refs.length).toBeGreaterThan(0);
    const unresolved = refs.filter(({ ref }) => resolvePointer(doc, ref) === undefined);
    expect(unresolved).toEqual([]);

    for (const [path, item] of Object.entries(paths)) {
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(path).not.toMatch(/:\w/);
      for (const method of HTTP_METHODS) {
        const op = item[method];
        if (!op) continue;
        const parameters = (op.parameters ?? []) as Json[];
        const declared = parameters.filter((p) => p.in === 'path').map((p) => p.name).sort();
        expect({ path, method, declared }).toEqual({ path, method, declared: templated });
        for (const parameter of parameters) {
          expect(['query', 'header', 'path', 'cookie']).toContain(parameter.in);
          expect(parameter.schema).toEqual(expect.any(Object));
          if (parameter.in === 'path') expect(parameter.required).toBe(true);
        }
        const keys = parameters.map((p) => `${String(p.in)}:${String(p.name)}`);
        expect(new Set(keys).size).toBe(keys.length);
        for (const status of Object.keys(op.responses as Json)) expect(status).toMatch(/^([1-5]\d\d|default)$/);
      }
    }
    // OpenAPI 3.0 schemas carry no JSON Schema dialect markers.
    expect(JSON.stringify(doc)).not.toMatch(/"\$schema"|"\$defs"/);
  });

  it('is served as YAML too', async () => {
    const res = await fetch(`${api.baseUrl}/docs/yaml`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^openapi: 3\./m);
  });
});

describe('GET /docs', () => {
  it('serves Swagger UI (HTML) pointing at the document', async () => {
    const res = await fetch(`${api.baseUrl}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toMatch(/swagger-ui/i);
    const initializer = await fetch(`${api.baseUrl}/docs/static/swagger-initializer.js`);
    expect(initializer.status).toBe(200);
    expect(await initializer.text()).toMatch(/json/);
  });
});

describe('the document as client generators and linters read it', () => {
  it('redocly lint (recommended rules): no error', () => {
    const dir = resolve(process.cwd(), '.ci/out');
    mkdirSync(dir, { recursive: true });
    const file = resolve(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc, null, 2));
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    const run = spawnSync(process.execPath, [resolve(process.cwd(), 'node_modules/@redocly/cli/bin/cli.js'), 'lint', file, '--format=json'], { encoding: 'utf8', timeout: 60_000, env: { ...env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } });
    const report = JSON.parse(run.stdout.slice(run.stdout.indexOf('{'))) as { problems: { severity: string; ruleId: string; message: string; location: { pointer: string }[] }[] };
    const errors = report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`);
    expect(errors).toEqual([]);
    // Named operations for generated clients (openapi-typescript, openapi-generator).
    expect(report.problems.filter((p) => p.ruleId === 'operation-operationId')).toEqual([]);
  });

  it('every operation has a unique operationId; the document names its server', () => {
    const ids = Object.values(paths).flatMap((item) => HTTP_METHODS.flatMap((m) => (item[m] ? [item[m].operationId as string] : [])));
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(operation('post', '/v1/downloads').operationId).toBe('enqueueDownload');
    expect(doc.servers).toEqual([{ url: '/', description: expect.any(String) as string }]);
  });

  it('declares the headers the replies carry', () => {
    const headersOf = (method: string, path: string, status: string) => Object.keys(((operation(method, path).responses as Record<string, Json>)[status]?.headers ?? {})).sort();
    expect(headersOf('post', '/v1/downloads', '202')).toEqual(['location', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-request-id']);
    expect(headersOf('post', '/v1/downloads', '429')).toEqual(['retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-request-id']);
    expect(headersOf('post', '/v1/downloads', '503')).toContain('retry-after');
    expect(headersOf('get', '/healthz', '200')).toEqual(['x-request-id']);
  });
});

describe('the reply serializer', () => {
  it('enforces the response schema: a reply that breaks it is a 500 in our error shape, never sent', async () => {
    const fresh = await startTestApi();
    try {
      // A second app on the same resources, with two routes added the way the API's routes are
      // (zod response schemas) whose handlers break their schema.
      const app = buildApp({ settings: fresh.settings, db: fresh.db, queue: fresh.queue, redis: fresh.redis, logger: createLogger('serializer-test', 'silent') });
      app.get('/probe-broken-reply', { schema: { hide: true, response: { 200: z.object({ count: z.number() }) } } }, () => ({ count: 'many' }));
      app.get('/probe-extra-field', { schema: { hide: true, response: { 200: z.object({ count: z.number() }) } } }, () => ({ count: 1, secret: 'internal' }));
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      try {
        const broken = await fetch(`${url}/probe-broken-reply`);
        expect({ status: broken.status, body: await broken.json() }).toEqual({ status: 500, body: { error: { code: 'internal', message: 'internal error' } } });
        // Fields the schema does not name are not sent.
        const extra = await fetch(`${url}/probe-extra-field`);
        expect({ status: extra.status, body: await extra.json() }).toEqual({ status: 200, body: { count: 1 } });
      } finally {
        await app.close();
      }
    } finally {
      await fresh.close();
    }
  });
});
