/**
 * The OpenAPI 3 document at `GET /docs/json` (and `/docs/yaml`) and Swagger UI at `/docs`,
 * generated from the route schemas: `@fastify/swagger` collects the routes, and its `transform`
 * turns each route's zod schemas into JSON Schema with zod's own `z.toJSONSchema` (target
 * OpenAPI 3.0; request parts as the client sends them, `io: 'input'`, replies as the server writes
 * them, `io: 'output'`). Error replies share `#/components/schemas/Error`, and the `/v1` routes
 * require the `bearerAuth` scheme (`Authorization: Bearer <API key>`).
 *
 * Register it before any route: the plugin sees only the routes added after it has loaded.
 */
import swagger, { type SwaggerTransform, type SwaggerTransformObject } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { z } from 'zod';
import { errorReplySchema } from './error-handler.js';

/** Where Swagger UI is served; the document is at `${DOCS_PREFIX}/json`. */
export const DOCS_PREFIX = '/docs';

/** Name of the Bearer API key security scheme in `components.securitySchemes`. */
export const BEARER_AUTH = 'bearerAuth';

/** Name of the error reply schema in `components.schemas`. */
export const ERROR_SCHEMA_NAME = 'Error';

/** Marks converted error schemas so `transformObject` swaps them for the shared component. */
const ERROR_MARK = 'x-scenecache-error';

/** Request parts Fastify validates, converted as input schemas. */
const REQUEST_PARTS = ['body', 'querystring', 'params', 'headers'] as const;

/** Response descriptions by status code (the OpenAPI `description` every response needs). */
const STATUS_DESCRIPTIONS: Readonly<Record<string, string>> = {
  200: 'OK',
  202: 'Accepted: the job is queued',
  400: 'Invalid request: `error.field` names the field at fault',
  401: 'Missing or invalid API key',
  403: 'The API key is not allowed to do this',
  404: 'Not found (or not visible to this API key); `expired`: a job deleted by retention (DOWNLOAD_JOBS_RETENTION_DAYS)',
  409: 'Conflict, named by `error.code`: `conflict` (the Idempotency-Key was already used for a different request), `maintenance_running` (another cache maintenance run holds the lock), `tenant_busy` (the tenant still has queued or active jobs), `job_finished` (the job completed or failed: nothing to cancel)',
  413: 'Request body too large',
  415: 'The body must be JSON (Content-Type: application/json)',
  429: 'Rate limited: retry after `Retry-After` seconds',
  503: 'A dependency (Postgres, Redis) is unavailable or the server is shutting down; retry',
};

type JsonSchema = Record<string, unknown>;

/** Whether `value` is a zod schema (route schemas are; hidden plugin routes carry plain objects). */
function isZodSchema(value: unknown): value is z.ZodType {
  return value instanceof z.ZodType;
}

/**
 * JSON Schema (OpenAPI 3.0 dialect) of a zod schema. Transforms and refinements cannot be
 * expressed and are left out (the side `io` names is described); `$schema` is dropped.
 *
 * @param io - `input` for what a client sends (defaults optional, coercions' source), `output`
 *   for what the server replies.
 */
export function zodToOpenApiSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json: JsonSchema = z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' });
  delete json.$schema;
  return json;
}

/** Response headers as `@fastify/swagger` takes them (name → JSON Schema with a description). */
type HeaderSchemas = Readonly<Record<string, { type: string; description: string }>>;

/** On every reply (app.ts `onRequest`). */
const REQUEST_ID_HEADERS: HeaderSchemas = {
  'x-request-id': { type: 'string', description: "The request's id: the client's own `X-Request-Id` when it sent a sane one, else a UUID. Every log line of the request carries it." },
};
/** On every `/v1` reply (rate-limit.ts). */
const RATE_LIMIT_HEADERS: HeaderSchemas = {
  'x-ratelimit-limit': { type: 'integer', description: 'Requests allowed per window for this API key (RATE_LIMIT_MAX)' },
  'x-ratelimit-remaining': { type: 'integer', description: 'Requests left in the current window' },
  'x-ratelimit-reset': { type: 'integer', description: 'Seconds until the window ends' },
};
/** On 429 (rate-limit.ts) and 503 (error-handler.ts). */
const RETRY_AFTER_HEADERS: HeaderSchemas = {
  'retry-after': { type: 'integer', description: 'Seconds to wait before retrying (RFC 9110 §10.2.3)' },
};
/** On the enqueue reply (downloads.routes.ts). */
const LOCATION_HEADERS: HeaderSchemas = {
  location: { type: 'string', description: 'The job: `/v1/downloads/{job_id}`' },
};

/**
 * Whether `url` is behind the Bearer-auth hook and the rate limit (app.ts): the `/v1` routes and
 * the STAC API under `/stac/v1`.
 */
function isKeyedRoute(url: string): boolean {
  return url.startsWith('/v1/') || url === '/stac/v1' || url.startsWith('/stac/v1/');
}

/** The headers a reply of `status` to `method url` carries. */
function responseHeaders(method: string, url: string, status: string): HeaderSchemas {
  return {
    ...REQUEST_ID_HEADERS,
    ...(isKeyedRoute(url) ? RATE_LIMIT_HEADERS : {}),
    ...(status === '429' || status === '503' ? RETRY_AFTER_HEADERS : {}),
    ...(method === 'POST' && url === '/v1/downloads' && (status === '200' || status === '202') ? LOCATION_HEADERS : {}),
  };
}

/** A response's JSON Schema with the description OpenAPI requires and the headers the reply carries. */
function responseSchema(status: string, schema: unknown, headers: HeaderSchemas = REQUEST_ID_HEADERS): unknown {
  // A reply of another media type than JSON (the STAC API's `application/geo+json`) is declared as
  // Fastify's `{content: {<media type>: {schema}}}`: each zod schema converted in place.
  const content = (schema as { content?: Record<string, { schema?: unknown }> } | null)?.content;
  if (content !== undefined && Object.values(content).every((media) => isZodSchema(media.schema))) {
    const converted = Object.fromEntries(Object.entries(content).map(([type, media]) => [type, { schema: zodToOpenApiSchema(media.schema as z.ZodType, 'output') }]));
    return { 'x-response-description': STATUS_DESCRIPTIONS[status] ?? 'Response', headers, content: converted };
  }
  if (!isZodSchema(schema)) return schema;
  const json = zodToOpenApiSchema(schema, 'output');
  if (schema === errorReplySchema) json[ERROR_MARK] = true;
  // `@fastify/swagger` moves `x-response-description` to the response (a `description` would stay
  // in the schema too) and `headers` to the response's headers.
  return { 'x-response-description': STATUS_DESCRIPTIONS[status] ?? 'Response', headers, ...json };
}

/** The `/metrics` reply, documented here: the route has no response schema (it sends text). */
const METRICS_RESPONSE = {
  200: {
    description: 'Prometheus metrics, text exposition format 0.0.4',
    content: { 'text/plain': { schema: { type: 'string' } } },
  },
};

/**
 * `@fastify/swagger` route transform: zod schemas → JSON Schema, `bearerAuth` (and 401/429 replies)
 * on `/v1` routes, the `/metrics` text reply. Routes without any schema are hidden.
 */
export const openApiTransform: SwaggerTransform = ({ schema, url, route }) => {
  const method = String(Array.isArray(route.method) ? route.method[0] : route.method).toUpperCase();
  // Routes declaring no schema at all are not API (e.g. bull-board's UI): left out.
  if ((schema as FastifySchema | undefined) === undefined) return { schema: { hide: true }, url };
  const source = schema as Record<string, unknown>;
  const out: Record<string, unknown> = { ...source };
  for (const part of REQUEST_PARTS) {
    const value = source[part];
    if (isZodSchema(value)) out[part] = zodToOpenApiSchema(value, 'input');
  }
  const responses = source.response as Record<string, unknown> | undefined;
  const reply = (status: string, s: unknown) => responseSchema(status, s, responseHeaders(method, url, status));
  if (responses) out.response = Object.fromEntries(Object.entries(responses).map(([status, s]) => [status, reply(status, s)]));
  if (url === '/metrics' && !responses) out.response = METRICS_RESPONSE;
  if (isKeyedRoute(url)) {
    out.security = [{ [BEARER_AUTH]: [] }];
    // Every /v1 and /stac/v1 route may answer 401 (auth.ts) and 429 (rate-limit.ts).
    out.response = { 401: reply('401', errorReplySchema), 429: reply('429', errorReplySchema), ...(out.response as Record<string, unknown> | undefined) };
  } else {
    // Open routes say so: no key needed (an operation without `security` would inherit a global one).
    out.security = [];
  }
  return { schema: out, url };
};

/** Replace every marked error schema in `node` by a `$ref` to the shared component (in place). */
function referenceErrorSchemas(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) referenceErrorSchemas(item);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const record = node as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    if (value !== null && typeof value === 'object' && (value as Record<string, unknown>)[ERROR_MARK] === true) {
      record[key] = { $ref: `#/components/schemas/${ERROR_SCHEMA_NAME}` };
    } else {
      referenceErrorSchemas(value);
    }
  }
}

/**
 * Name the callback operations (a route's `callbacks`, e.g. the completion callback of
 * `POST /v1/downloads`) in place: `@fastify/swagger` copies only their body and responses, while
 * generators and linters want an `operationId` and a summary, and `security: []` says the request
 * the service makes carries no API key (it is signed). The id is the route's, plus the callback's name.
 */
function nameCallbackOperations(paths: unknown): void {
  type Operation = Record<string, unknown> & { operationId?: string; callbacks?: Record<string, Record<string, Record<string, Record<string, unknown>>>> };
  for (const item of Object.values((paths ?? {}) as Record<string, Record<string, Operation>>)) {
    for (const operation of Object.values(item)) {
      for (const [name, expressions] of Object.entries(operation.callbacks ?? {})) {
        for (const callbackItem of Object.values(expressions)) {
          for (const [method, callback] of Object.entries(callbackItem)) {
            callback.operationId ??= `${operation.operationId ?? 'operation'}${name[0]!.toUpperCase()}${name.slice(1)}`;
            callback.summary ??= `${method.toUpperCase()} ${name} callback`;
            callback.security ??= [];
          }
        }
      }
    }
  }
}

/** `@fastify/swagger` document transform: error replies reference `components.schemas.Error`; callback operations are named. */
export const openApiTransformObject: SwaggerTransformObject = (documentObject) => {
  const document = 'openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject;
  referenceErrorSchemas(document.paths);
  nameCallbackOperations(document.paths);
  return document;
};

/**
 * Serve the OpenAPI document (`/docs/json`, `/docs/yaml`) and Swagger UI (`/docs`) for every
 * route registered after this call. Call it on the root instance before any route.
 */
export function registerOpenApi(app: FastifyInstance): void {
  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'scenecache API',
        description:
          'Enqueue Sentinel-2 band downloads (each product is fetched from CDSE once and copied into tenant buckets), read job results and cache statistics. Errors are `{error: {code, message, field?}}`.',
        version: '1',
      },
      // Relative: the host that serves this document serves the API.
      servers: [{ url: '/', description: 'This API (the host serving this document)' }],
      tags: [
        { name: 'downloads', description: 'Enqueue download jobs and read their results' },
        { name: 'cache', description: 'Cache statistics, cached scenes and the global cache usage' },
        { name: 'fleet', description: 'Worker fleet: queue depth and upstream slots in use' },
        { name: 'admin', description: 'Cache administration: invalidate, clean up, list entries, run the maintenance; tenant offboarding (admin keys only)' },
        { name: 'health', description: 'Liveness and readiness probes' },
        { name: 'metrics', description: 'Prometheus metrics' },
        { name: 'STAC', description: 'STAC API 1.0 (core, collections, features, item search) over the cached products: STAC 1.1 items, one asset per band file; an admin key sees the global cache, a tenant key its own bucket (`?sign=true`: presigned HTTPS hrefs)' },
      ],
      components: {
        securitySchemes: {
          [BEARER_AUTH]: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer <key>` (tenant or admin key).' },
        },
        schemas: { [ERROR_SCHEMA_NAME]: zodToOpenApiSchema(errorReplySchema, 'output') as never },
      },
    },
    transform: openApiTransform,
    transformObject: openApiTransformObject,
  });
  void app.register(swaggerUi, { routePrefix: DOCS_PREFIX });
}
