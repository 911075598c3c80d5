/**
 * Issue 3, "Bad input: a clear error, nothing lost, nothing downloaded" — one table, on the real
 * pipeline (API, Postgres, Redis, s3rver, cdse-sim, and a worker consuming the queue, so anything
 * wrongly enqueued would really run).
 *
 * Every malformed request content (product names, bands, tenant ids, shapes, types) goes through
 * three doors:
 * 1. `POST /v1/downloads` → 400 `{error: {code, message, field}}`, the message naming the field;
 * 2. as one item of `POST /v1/downloads/batch` → the same code, the field as `jobs[1].<field>`;
 * 3. as BullMQ job data added straight to the queue (the worker validates again) → the job fails
 *    after exactly one attempt (UnrecoverableError, though 5 are allowed) and its `download_jobs`
 *    row is `failed` with the code.
 * HTTP-level bad input (media types, malformed or oversized bodies, garbage or missing
 * `Idempotency-Key` — control characters included, which Node's HTTP parser rejects before any
 * route runs — and batch shapes) gets its 400/413/415 (431 for headers over the parser's limit)
 * with the same error body.
 *
 * After each case: no `download_jobs` row and no queue entry (doors 1–2; door 3 leaves exactly its
 * failed job and row, no retry scheduled), and no upstream call at all: the sim's catalogue,
 * manifest and download counters stay 0 for the whole file.
 */
import { connect } from 'node:net';
import { QueueEvents, type Job } from 'bullmq';
import { buildApp } from '../../api/src/app.js';
import { createProducerRedis } from '../../api/src/download-queue.js';
import { createLogger, DOWNLOAD_JOB_OPTIONS, MAX_BANDS_PER_JOB, MAX_BATCH_SIZE, SCENE_DOWNLOAD_QUEUE } from '@scenecache/core';
import { findJobById } from '@scenecache/db';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const L1C = 'S2A_MSIL1C_20240324T101651_N0510_R065_T32TNS_20240324T122424';
/** A valid request: each case changes one thing. */
const ok = { tenant_id: 'acme', scene_id: L2A, bands: ['B04'] };

/** The harness's TENANT_BUCKET_PREFIX is `t<8 hex>-`: 10 characters. */
const PREFIX_LENGTH = 10;

/**
 * A request content that is wrong: the body of `POST /v1/downloads`.
 * - `code`/`field`: the API's answer (`field` undefined: the body as a whole);
 * - `job`: the code when the same content is BullMQ job data (default `code`; the API's schema
 *   bounds string lengths, the worker names the semantic fault), `false` where the payload has no
 *   such field (priority is a BullMQ option, not job data).
 */
interface ContentCase {
  what: string;
  body: unknown;
  code: string;
  field?: string;
  job?: string | false;
  /** Not a valid API body in the first place: only door 3. */
  jobOnly?: true;
}

const content: ContentCase[] = [
  // Product names.
  { what: 'a truncated product name', body: { ...ok, scene_id: L2A.slice(0, 30) }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a name without its discriminator', body: { ...ok, scene_id: L2A.slice(0, L2A.lastIndexOf('_')) }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a name that is no product name', body: { ...ok, scene_id: 'hello world' }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a Sentinel-1 product', body: { ...ok, scene_id: 'S1A_IW_GRDH_1SDV_20240324T101649_20240324T101714_053123_067012_1A2B' }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'an unknown mission (S2E)', body: { ...ok, scene_id: L2A.replace('S2B', 'S2E') }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'an impossible sensing date (month 13)', body: { ...ok, scene_id: L2A.replace('20240324T101649', '20241324T101649') }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'relative orbit R000', body: { ...ok, scene_id: L2A.replace('R065', 'R000') }, code: 'invalid_product_name', field: 'scene_id' },
  { what: '.. after the name', body: { ...ok, scene_id: `${L2A}..` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: '../ before the name', body: { ...ok, scene_id: `../${L2A}` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a / inside the name', body: { ...ok, scene_id: `S2B_MSIL2A/${L2A.slice(11)}` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a backslash path', body: { ...ok, scene_id: `..\\${L2A}` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a path through .SAFE/..', body: { ...ok, scene_id: `${L2A}.SAFE/../x` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a URL-encoded slash', body: { ...ok, scene_id: `${L2A}%2F..` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a lower-case name', body: { ...ok, scene_id: L2A.toLowerCase() }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a lower-case .safe suffix', body: { ...ok, scene_id: `${L2A}.safe` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'a trailing newline', body: { ...ok, scene_id: `${L2A}\n` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'surrounding spaces', body: { ...ok, scene_id: ` ${L2A} ` }, code: 'invalid_product_name', field: 'scene_id' },
  { what: 'an empty product name', body: { ...ok, scene_id: '' }, code: 'invalid_payload', field: 'scene_id', job: 'invalid_product_name' },
  { what: 'a product name over 100 characters', body: { ...ok, scene_id: `${L2A}_${'X'.repeat(50)}` }, code: 'invalid_payload', field: 'scene_id', job: 'invalid_product_name' },
  { what: 'a number for scene_id', body: { ...ok, scene_id: 42 }, code: 'invalid_payload', field: 'scene_id' },
  { what: 'an array for scene_id', body: { ...ok, scene_id: [L2A] }, code: 'invalid_payload', field: 'scene_id' },
  { what: 'no scene_id', body: { tenant_id: 'acme', bands: ['B04'] }, code: 'invalid_payload', field: 'scene_id' },

  // Bands.
  { what: 'an unknown band (B13)', body: { ...ok, bands: ['B04', 'B13'] }, code: 'unknown_band', field: 'bands[1]' },
  { what: 'a lower-case band', body: { ...ok, bands: ['b04'] }, code: 'unknown_band', field: 'bands[0]' },
  { what: 'a band without its zero (B4)', body: { ...ok, bands: ['B4'] }, code: 'unknown_band', field: 'bands[0]' },
  { what: 'an unknown resolution (B04_15m)', body: { ...ok, bands: ['B04_15m'] }, code: 'unknown_band', field: 'bands[0]' },
  { what: 'a band with a trailing space', body: { ...ok, bands: ['B04 '] }, code: 'unknown_band', field: 'bands[0]' },
  { what: 'a band name over 16 characters', body: { ...ok, bands: ['B04_10m_and_more!'] }, code: 'invalid_payload', field: 'bands[0]', job: 'unknown_band' },
  { what: 'B10 (cirrus) for L2A', body: { ...ok, bands: ['B10'] }, code: 'band_not_in_level', field: 'bands[0]' },
  { what: 'SCL for L1C', body: { ...ok, scene_id: L1C, bands: ['B02', 'SCL'] }, code: 'band_not_in_level', field: 'bands[1]' },
  { what: 'a resolution suffix for L1C', body: { ...ok, scene_id: L1C, bands: ['B04_20m'] }, code: 'band_not_in_level', field: 'bands[0]' },
  { what: 'B01 at 10 m for L2A', body: { ...ok, bands: ['B01_10m'] }, code: 'band_not_in_level', field: 'bands[0]' },
  { what: 'the same band twice', body: { ...ok, bands: ['B04', 'B08', 'B04'] }, code: 'duplicate_band', field: 'bands[2]' },
  { what: 'B04 and B04_10m (one file) on L2A', body: { ...ok, bands: ['B04', 'B04_10m'] }, code: 'duplicate_band', field: 'bands[1]' },
  { what: 'B8A and B8A_20m (one file) on L2A', body: { ...ok, bands: ['B8A_20m', 'B8A'] }, code: 'duplicate_band', field: 'bands[1]' },
  { what: 'no bands at all (empty list)', body: { ...ok, bands: [] }, code: 'invalid_payload', field: 'bands' },
  { what: `more than ${MAX_BANDS_PER_JOB} bands`, body: { ...ok, bands: Array.from({ length: MAX_BANDS_PER_JOB + 1 }, () => 'B04') }, code: 'invalid_payload', field: 'bands' },
  { what: 'a string for bands', body: { ...ok, bands: 'B04' }, code: 'invalid_payload', field: 'bands' },
  { what: 'a number in bands', body: { ...ok, bands: ['B04', 8] }, code: 'invalid_payload', field: 'bands[1]' },
  { what: 'null bands', body: { ...ok, bands: null }, code: 'invalid_payload', field: 'bands' },

  // Tenant ids that make no valid bucket name.
  { what: 'an upper-case tenant id', body: { ...ok, tenant_id: 'Acme' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'a tenant id one too long for a bucket name', body: { ...ok, tenant_id: 'a'.repeat(63 - PREFIX_LENGTH + 1) }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'a tenant id over 63 characters', body: { ...ok, tenant_id: 'a'.repeat(64) }, code: 'invalid_payload', field: 'tenant_id', job: 'invalid_tenant_id' },
  { what: 'dots in the tenant id', body: { ...ok, tenant_id: 'acme.corp' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'an xn-- tenant id', body: { ...ok, tenant_id: 'xn--acme' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'an sthree- tenant id', body: { ...ok, tenant_id: 'sthree-acme' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'a bucket name ending in -s3alias', body: { ...ok, tenant_id: 'acme-s3alias' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'an underscore in the tenant id', body: { ...ok, tenant_id: 'acme_corp' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'a tenant id starting with a hyphen', body: { ...ok, tenant_id: '-acme' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'a tenant id ending in a hyphen', body: { ...ok, tenant_id: 'acme-' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'a path as tenant id', body: { ...ok, tenant_id: '../acme' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'a space in the tenant id', body: { ...ok, tenant_id: 'acme corp' }, code: 'invalid_tenant_id', field: 'tenant_id' },
  { what: 'an empty tenant id', body: { ...ok, tenant_id: '' }, code: 'invalid_payload', field: 'tenant_id', job: 'invalid_tenant_id' },
  { what: 'a number for tenant_id', body: { ...ok, tenant_id: 7 }, code: 'invalid_payload', field: 'tenant_id' },
  { what: 'no tenant_id', body: { scene_id: L2A, bands: ['B04'] }, code: 'invalid_payload', field: 'tenant_id' },

  // Shape.
  { what: 'an unknown field (band for bands)', body: { ...ok, band: ['B04'] }, code: 'invalid_payload', field: 'band' },
  { what: 'a string priority', body: { ...ok, priority: '1' }, code: 'invalid_payload', field: 'priority', job: false },
  { what: 'priority 0', body: { ...ok, priority: 0 }, code: 'invalid_payload', field: 'priority', job: false },
  { what: 'a fractional priority', body: { ...ok, priority: 1.5 }, code: 'invalid_payload', field: 'priority', job: false },
  { what: 'a priority above the BullMQ maximum', body: { ...ok, priority: 2_097_153 }, code: 'invalid_payload', field: 'priority', job: false },
  { what: 'an array instead of an object', body: [ok], code: 'invalid_payload' },
  { what: 'null instead of an object', body: null, code: 'invalid_payload' },
  { what: 'a string instead of an object', body: L2A, code: 'invalid_payload' },

  // Job data only: what the API always writes, missing or wrong.
  { what: 'job data without bands (the API fills in the defaults)', body: { tenant_id: 'acme', scene_id: L2A, enqueued_at: new Date().toISOString() }, code: 'invalid_payload', field: 'bands', jobOnly: true },
  { what: 'job data without enqueued_at', body: { ...ok }, code: 'invalid_payload', field: 'enqueued_at', jobOnly: true },
  { what: 'job data with a number for enqueued_at', body: { ...ok, enqueued_at: 1 }, code: 'invalid_payload', field: 'enqueued_at', jobOnly: true },
  { what: 'job data with a priority (a BullMQ option, not data)', body: { ...ok, priority: 1, enqueued_at: new Date().toISOString() }, code: 'invalid_payload', field: 'priority', jobOnly: true },
];

/** An HTTP request that is wrong before (or besides) its content. */
interface HttpCase {
  what: string;
  path?: '/v1/downloads' | '/v1/downloads/batch';
  headers?: Record<string, string>;
  /** Sent as is (`json` is serialised with `content-type: application/json`). */
  body?: string;
  json?: unknown;
  /** Raw bytes of a whole request (for what fetch refuses to send). */
  raw?: Buffer;
  /** Which API answers: the harness's, one with REQUIRE_IDEMPOTENCY_KEY=true, or one with TENANT_BUCKET_PREFIX=x. */
  app?: 'default' | 'requireKey' | 'prefixX';
  status: number;
  code: string;
  field?: string;
  /** Also required in the message. */
  message?: RegExp;
}

const pad = 'x'.repeat(300 * 1024);
const item = { tenant_id: 'acme', scene_id: L2A };

/** A POST /v1/downloads with a valid JSON body and the header line `Idempotency-Key: <value>` as bytes. */
function rawWithKey(value: Buffer): Buffer {
  const body = JSON.stringify(ok);
  return Buffer.concat([
    Buffer.from(`POST /v1/downloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nIdempotency-Key: `),
    value,
    Buffer.from(`\r\nConnection: close\r\n\r\n${body}`),
  ]);
}

const http: HttpCase[] = [
  // Media types.
  { what: 'a text/plain body', headers: { 'content-type': 'text/plain' }, body: 'tenant_id=acme', status: 415, code: 'unsupported_media_type' },
  { what: 'a form body', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'tenant_id=acme', status: 415, code: 'unsupported_media_type' },
  { what: 'an XML body', headers: { 'content-type': 'application/xml' }, body: '<download tenant_id="acme"/>', status: 415, code: 'unsupported_media_type' },
  { what: 'a multipart body', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x\r\n\r\nacme\r\n--x--', status: 415, code: 'unsupported_media_type' },
  { what: 'a JSON body without Content-Type', headers: { 'content-type': '' }, body: JSON.stringify(ok), status: 415, code: 'unsupported_media_type' },
  { what: 'a text/plain batch', path: '/v1/downloads/batch', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ jobs: [item] }), status: 415, code: 'unsupported_media_type' },

  // Bodies that are no JSON object.
  { what: 'malformed JSON', headers: { 'content-type': 'application/json' }, body: '{"tenant_id": "acme",', status: 400, code: 'invalid_json' },
  { what: 'an empty JSON body', headers: { 'content-type': 'application/json' }, body: '', status: 400, code: 'invalid_json' },
  { what: 'a __proto__ key', headers: { 'content-type': 'application/json' }, body: `{"tenant_id":"acme","scene_id":"${L2A}","__proto__":{"bands":["B04"]}}`, status: 400, code: 'invalid_json' },
  { what: 'a POST without a body', status: 400, code: 'invalid_payload', message: /^the body must be a JSON object$/ },
  { what: 'malformed JSON in a batch', path: '/v1/downloads/batch', headers: { 'content-type': 'application/json' }, body: '{"jobs": [', status: 400, code: 'invalid_json' },

  // Size.
  { what: 'a body over the size limit', json: { ...ok, padding: pad }, status: 413, code: 'payload_too_large' },
  { what: 'a batch over the size limit', path: '/v1/downloads/batch', json: { jobs: [{ ...item, scene_id: `${L2A}${pad}` }] }, status: 413, code: 'payload_too_large' },

  // Idempotency-Key.
  { what: 'an Idempotency-Key over 200 characters', headers: { 'idempotency-key': 'k'.repeat(201) }, json: ok, status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'a non-ASCII Idempotency-Key', headers: { 'idempotency-key': 'clé-1' }, json: ok, status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'an empty Idempotency-Key', headers: { 'idempotency-key': '' }, json: ok, status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'a blank Idempotency-Key', headers: { 'idempotency-key': '   ' }, json: ok, status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'a tab in the Idempotency-Key', headers: { 'idempotency-key': 'order\t42' }, json: ok, status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'a control character (0x01) in the Idempotency-Key', raw: rawWithKey(Buffer.from('order\x0142', 'latin1')), status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'an escape (0x1b) in the Idempotency-Key', raw: rawWithKey(Buffer.from('order\x1b[2J', 'latin1')), status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'a DEL (0x7f) in the Idempotency-Key', raw: rawWithKey(Buffer.from('order\x7f', 'latin1')), status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'a NUL in the Idempotency-Key', raw: rawWithKey(Buffer.from('order\x0042', 'latin1')), status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'an Idempotency-Key too large for the HTTP parser (20 kB)', headers: { 'idempotency-key': 'k'.repeat(20_000) }, json: ok, status: 431, code: 'headers_too_large' },
  { what: 'a request the HTTP parser rejects (Content-Length: abc)', raw: Buffer.from('POST /v1/downloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}'), status: 400, code: 'invalid_payload' },
  { what: 'no Idempotency-Key where one is required', app: 'requireKey', json: ok, status: 400, code: 'idempotency_key_required', field: 'Idempotency-Key' },
  { what: 'a garbage Idempotency-Key where one is required', app: 'requireKey', headers: { 'idempotency-key': 'k'.repeat(201) }, json: ok, status: 400, code: 'invalid_payload', field: 'Idempotency-Key' },
  { what: 'bad content where an Idempotency-Key is required and given', app: 'requireKey', headers: { 'idempotency-key': 'order-42' }, json: { ...ok, bands: ['B13'] }, status: 400, code: 'unknown_band', field: 'bands[0]' },

  // A tenant id whose bucket name would start with xn-- (TENANT_BUCKET_PREFIX `x`).
  { what: 'a tenant id making an xn-- bucket name', app: 'prefixX', json: { ...ok, tenant_id: 'n--acme' }, status: 400, code: 'invalid_tenant_id', field: 'tenant_id', message: /xn--/ },

  // Batch shapes.
  { what: 'an empty batch', path: '/v1/downloads/batch', json: { jobs: [] }, status: 400, code: 'invalid_payload', field: 'jobs' },
  { what: `a batch of ${MAX_BATCH_SIZE + 1}`, path: '/v1/downloads/batch', json: { jobs: Array.from({ length: MAX_BATCH_SIZE + 1 }, () => item) }, status: 400, code: 'invalid_payload', field: 'jobs' },
  { what: 'a batch without jobs', path: '/v1/downloads/batch', json: {}, status: 400, code: 'invalid_payload', field: 'jobs' },
  { what: 'a batch whose jobs is an object', path: '/v1/downloads/batch', json: { jobs: item }, status: 400, code: 'invalid_payload', field: 'jobs' },
  { what: 'a batch whose jobs is a string', path: '/v1/downloads/batch', json: { jobs: 'all' }, status: 400, code: 'invalid_payload', field: 'jobs' },
  { what: 'a bare array as batch', path: '/v1/downloads/batch', json: [item], status: 400, code: 'invalid_payload' },
  { what: 'a null batch item', path: '/v1/downloads/batch', json: { jobs: [null] }, status: 400, code: 'invalid_payload', field: 'jobs[0]' },
  { what: 'an unknown top-level batch field', path: '/v1/downloads/batch', json: { jobs: [item], dry_run: true }, status: 400, code: 'invalid_payload', field: 'dry_run' },
  { what: 'a bad item after good ones (all or none)', path: '/v1/downloads/batch', json: { jobs: [item, item, item, { ...item, bands: ['B99'] }] }, status: 400, code: 'unknown_band', field: 'jobs[3].bands[0]' },
];

interface Reply {
  status: number;
  body: unknown;
}

async function send(baseUrl: string, path: string, init: { headers?: Record<string, string>; body?: string }): Promise<Reply> {
  const res = await fetch(`${baseUrl}${path}`, { method: 'POST', headers: init.headers, body: init.body });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

/** Send raw bytes, read the whole answer (the server closes the connection). */
function sendRaw(baseUrl: string, bytes: Buffer): Promise<Reply> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      try {
        resolve({ status, body: JSON.parse(body) as unknown });
      } catch {
        resolve({ status, body });
      }
    });
  });
}

/** The error body, with the field named in the message when there is one. */
function expectError(reply: Reply, status: number, code: string, field: string | undefined): void {
  expect(reply).toEqual({ status, body: { error: { code, message: expect.any(String) as string, ...(field === undefined ? {} : { field }) } } });
  if (field !== undefined) expect((reply.body as { error: { message: string } }).error.message).toContain(field);
}

/** `field` of a single request as the batch names it in item 1. */
function batchField(field: string | undefined): string {
  if (field === undefined) return 'jobs[1]';
  return field.startsWith('[') ? `jobs[1]${field}` : `jobs[1].${field}`;
}

describe('bad input: a clear error, nothing lost, nothing downloaded', () => {
  let h: PipelineHarness;
  let events: QueueEvents;
  const extraApps: Array<{ close(): Promise<unknown> }> = [];
  const urls: Record<'default' | 'requireKey' | 'prefixX', string> = { default: '', requireKey: '', prefixX: '' };

  beforeAll(async () => {
    h = await startPipelineHarness();
    await h.startWorker();
    expect(h.settings.tenantBucketPrefix).toHaveLength(PREFIX_LENGTH);
    urls.default = h.apiUrl;
    const logger = createLogger('bad-input', 'silent');
    const redis = createProducerRedis(h.settings.redisUrl, logger);
    extraApps.push({ close: () => redis.quit() });
    for (const [name, settings] of [
      ['requireKey', { ...h.settings, requireIdempotencyKey: true }],
      ['prefixX', { ...h.settings, tenantBucketPrefix: 'x' }],
    ] as const) {
      const app = buildApp({ settings, db: h.db, queue: h.queue, redis, logger });
      urls[name] = await app.listen({ port: 0, host: '127.0.0.1' });
      extraApps.unshift(app);
    }
    events = new QueueEvents(SCENE_DOWNLOAD_QUEUE, { connection: { url: h.settings.redisUrl }, prefix: h.settings.queuePrefix });
    await events.waitUntilReady();
  });
  afterAll(async () => {
    await events?.close();
    for (const app of extraApps) await app.close();
    await h?.close();
  });

  async function rowCount(): Promise<number> {
    const { n } = await h.db.selectFrom('download_jobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(n);
  }

  async function queueCounts() {
    return h.queue.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'waiting-children');
  }

  /** Nothing ever reached CDSE in this file. */
  function expectNoUpstreamCall(): void {
    const c = h.sim.counters();
    expect({ catalogue: c.catalogueRequests, manifest: c.manifestRequests, started: c.totals.started, logins: c.tokenLogins }).toEqual({ catalogue: 0, manifest: 0, started: 0, logins: 0 });
  }

  /** Run `request`; afterwards no new row, no new queue entry, no upstream call. */
  async function refused(request: () => Promise<Reply>): Promise<Reply> {
    const [rowsBefore, queueBefore] = [await rowCount(), await queueCounts()];
    const reply = await request();
    expect(await rowCount()).toBe(rowsBefore);
    expect(await queueCounts()).toEqual(queueBefore);
    expectNoUpstreamCall();
    return reply;
  }

  const api = content.filter((c) => !c.jobOnly);

  describe('door 1: POST /v1/downloads', () => {
    it.each(api)('$what → 400 $code', async ({ body, code, field }) => {
      const reply = await refused(() => send(urls.default, '/v1/downloads', { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }));
      expectError(reply, 400, code, field);
    });
  });

  describe('door 2: one item of POST /v1/downloads/batch', () => {
    it.each(api)('$what → 400 $code', async ({ body, code, field }) => {
      const reply = await refused(() => send(urls.default, '/v1/downloads/batch', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jobs: [ok, body, ok] }) }));
      expectError(reply, 400, code, batchField(field));
    });
  });

  describe('door 3: the same data added straight to BullMQ, with a worker running', () => {
    const jobCases = content.filter((c) => c.job !== false).map((c) => ({ ...c, expected: c.job === undefined ? c.code : c.job }));

    it.each(jobCases)('$what → failed at once: $expected', async ({ body, expected, field, jobOnly }) => {
      const data = !jobOnly && typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body, enqueued_at: new Date().toISOString() } : body;
      const [rowsBefore, queueBefore] = [await rowCount(), await queueCounts()];

      const job = (await h.queue.add(SCENE_DOWNLOAD_QUEUE, data as never, { ...DOWNLOAD_JOB_OPTIONS })) as Job;
      const failure = await job.waitUntilFinished(events, 30_000).then(
        () => undefined,
        (err: unknown) => err as Error,
      );

      // BullMQ: failed after one of its five attempts, with the code in the reason; no retry pending.
      expect(failure?.message).toMatch(new RegExp(`^${expected}: `));
      const failed = (await h.queue.getJob(job.id!))!;
      expect(await failed.getState()).toBe('failed');
      expect(failed.attemptsMade).toBe(1);
      expect(failed.opts.attempts).toBe(DOWNLOAD_JOB_OPTIONS.attempts);
      expect(await queueCounts()).toEqual({ ...queueBefore, failed: queueBefore.failed! + 1 });

      // The row: failed with the code, after one attempt, the message naming the field.
      const row = await findJobById(h.db, job.id!);
      expect(row).toMatchObject({ status: 'failed', error_code: expected, attempts: 1, cache_status: null });
      if (field !== undefined) expect(row!.error_message).toContain(field.replace(/\[.*$/, ''));
      expect(await rowCount()).toBe(rowsBefore + 1);
      expectNoUpstreamCall();
    });
  });

  describe('HTTP-level bad input', () => {
    it.each(http)('$what → $status $code', async ({ path = '/v1/downloads', headers, body, json, raw, app = 'default', status, code, field, message }) => {
      const reply = await refused(() => {
        if (raw) return sendRaw(urls[app], raw);
        if (json !== undefined) return send(urls[app], path, { headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(json) });
        return send(urls[app], path, { headers, body });
      });
      expectError(reply, status, code, field);
      if (message) expect((reply.body as { error: { message: string } }).error.message).toMatch(message);
    });
  });

  it('nothing reached the upstream, and the worker is still consuming', async () => {
    expectNoUpstreamCall();
    expect(h.sim.counters().totals).toMatchObject({ started: 0, completed: 0, bytes: 0 });
    expect(await h.queue.getJobCounts('wait', 'delayed', 'active', 'prioritized')).toEqual({ wait: 0, delayed: 0, active: 0, prioritized: 0 });
  });
});
