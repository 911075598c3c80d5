/** Small HTTP helpers shared by the routes: JSON answers, request bodies, Range headers, real error bodies. */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';

/** Send `body` as JSON with `status` (and extra headers). Always sets Content-Length. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(text.length), ...headers });
  res.end(text);
}

/** Send a text body (HTML error pages, the 301 page). */
export function sendText(res: ServerResponse, status: number, body: string, contentType: string, headers: Record<string, string> = {}): void {
  const text = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(text.length), ...headers });
  res.end(text);
}

/** `{"detail": message}`: the error shape of CDSE's OData services (DESIGN.md: "Errors carry a `detail` field"). */
export function sendDetail(res: ServerResponse, status: number, detail: string): void {
  sendJson(res, status, { detail });
}

/**
 * nginx's error page for `status`, as CDSE's front proxies answer gateway errors (and the 301 of
 * fixture `catalogue_value_301_redirect_to_zipper_headers.txt`, `content-type: text/html`, 162 bytes).
 */
export function nginxPage(status: number): string {
  const title = `${status} ${status === 503 ? 'Service Temporarily Unavailable' : (STATUS_CODES[status] ?? 'Error')}`;
  return `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
}

/**
 * The real body of a download refused for too many concurrent sessions (fixture
 * `zipper_429_max_session_exceeded.txt`): `{"trace-id": <32 hex>, "code": "DAT-ZIP-100", "message":
 * "Max session number exceeded"}`. The real answer carries no `Retry-After`.
 */
export function maxSessionsBody(): Record<string, string> {
  return { 'trace-id': randomBytes(16).toString('hex'), code: 'DAT-ZIP-100', message: 'Max session number exceeded' };
}

/**
 * Read a request body (at most `limit` bytes).
 * @throws Error when the body is larger than `limit`.
 */
export async function readBody(req: IncomingMessage, limit = 1 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw new Error(`request body larger than ${limit} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** A byte range `[start, end]` (inclusive), or why none applies. */
export type RangeResult = { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Parse a `Range` header against a file of `size` bytes (RFC 9110 §14.1.2): `bytes=N-`, `bytes=N-M`
 * (M clamped to the last byte) and `bytes=-S` (the last S bytes). A malformed header or a list
 * of several ranges is ignored (`none`: the whole file, as RFC 9110 allows); a start beyond the
 * end is `unsatisfiable` (416).
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'none' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'none' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return { kind: 'unsatisfiable' };
    return size === 0 ? { kind: 'unsatisfiable' } : { kind: 'range', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return { kind: 'unsatisfiable' };
  return { kind: 'range', start, end };
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
