/**
 * HTTP plumbing shared by every CDSE call: keep-alive agents, linked abort signals, reading an
 * error body's message, and mapping HTTP statuses to scenecache error codes.
 *
 * Error bodies differ per CDSE service: the catalogue answers `{"detail": …}`
 * (documentation.dataspace.copernicus.eu/APIs/OData.html), the download service (zipper)
 * `{"code":"DAT-ZIP-100","message":…}` (fixture `zipper_429_max_session_exceeded.txt`), Keycloak
 * `{"error":"invalid_grant","error_description":…}` (documentation.dataspace.copernicus.eu/APIs/Token.html).
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { Response } from 'node-fetch';
import { UpstreamError } from '@scenecache/core';

/** Picks the agent of a request URL (node-fetch's `agent` option). */
export type AgentChooser = (url: URL) => http.Agent;

/** Keep-alive agents for http and https, and the chooser node-fetch takes. */
export interface KeepAliveAgents {
  readonly choose: AgentChooser;
  /** Close every idle socket; call once when the client shuts down. */
  destroy(): void;
}

/**
 * Keep-alive agents: one TLS handshake per connection instead of per request.
 * @param maxSockets - concurrent sockets per host. @defaultValue 64
 */
export function createKeepAliveAgents(maxSockets = 64): KeepAliveAgents {
  const options = { keepAlive: true, maxSockets, scheduling: 'lifo' as const };
  const httpAgent = new http.Agent(options);
  const httpsAgent = new https.Agent(options);
  return {
    choose: (url) => (url.protocol === 'https:' ? httpsAgent : httpAgent),
    destroy: () => {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

/** An AbortController that also aborts when `parent` does; `dispose()` unhooks it from the parent. */
export interface LinkedController {
  readonly controller: AbortController;
  readonly signal: AbortSignal;
  dispose(): void;
}

/** A child controller of `parent` (or a standalone one when there is no parent). */
export function linkedController(parent?: AbortSignal): LinkedController {
  const controller = new AbortController();
  if (!parent) return { controller, signal: controller.signal, dispose: () => undefined };
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { controller, signal: controller.signal, dispose: () => undefined };
  }
  const onAbort = (): void => controller.abort(parent.reason);
  parent.addEventListener('abort', onAbort, { once: true });
  return { controller, signal: controller.signal, dispose: () => parent.removeEventListener('abort', onAbort) };
}

const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * Read at most `limit` bytes of a body as UTF-8 text; the rest is discarded (the body destroyed).
 * @param limit - bytes. @defaultValue 65536
 */
export async function readBodyText(body: NodeJS.ReadableStream | null, limit = MAX_ERROR_BODY_BYTES): Promise<string> {
  if (!body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as Readable) {
    const buf = chunk as Buffer;
    chunks.push(buf);
    size += buf.length;
    if (size >= limit) break; // leaving the loop destroys the body
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/**
 * The human-readable message of a CDSE error body: `detail` (catalogue; a string, `{message}` or a
 * list of `{msg}`), `code: message` (download service), `error_description` / `error` (Keycloak),
 * else the text itself, trimmed to 300 characters.
 */
export function describeErrorBody(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return '';
  try {
    const body = JSON.parse(trimmed) as unknown;
    const message = messageOf(body);
    if (message) return message;
  } catch {
    // not JSON: fall through to the raw text
  }
  const flat = trimmed.replace(/\s+/g, ' ');
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat;
}

function messageOf(body: unknown): string | undefined {
  if (typeof body === 'string') return body;
  if (typeof body !== 'object' || body === null) return undefined;
  if (Array.isArray(body)) {
    const parts = body.map(messageOf).filter((m): m is string => Boolean(m));
    return parts.length > 0 ? parts.join('; ') : undefined;
  }
  const o = body as Record<string, unknown>;
  if (o.detail !== undefined) return messageOf(o.detail);
  const code = typeof o.code === 'string' ? o.code : undefined;
  const message = typeof o.message === 'string' ? o.message : typeof o.msg === 'string' ? o.msg : undefined;
  if (message) return code ? `${code}: ${message}` : message;
  if (typeof o.error_description === 'string') return typeof o.error === 'string' ? `${o.error}: ${o.error_description}` : o.error_description;
  if (typeof o.error === 'string') return o.error;
  return code;
}

/** Read an error response's body and describe it (see {@link describeErrorBody}). Never throws. */
export async function readErrorDetail(response: Response): Promise<string> {
  try {
    return describeErrorBody(await readBodyText(response.body));
  } catch {
    return '';
  }
}

/**
 * The scenecache error for a non-2xx CDSE answer:
 * 404 → `product_not_found` (not retryable, HTTP 404); 401/403 → `upstream_auth` (not retryable);
 * 429 → `upstream_rate_limited` (retryable, `retryAfterMs`); 408 and 5xx → `upstream_unavailable`
 * (retryable); any other status → `upstream_unavailable` (not retryable: repeating the same request
 * cannot help).
 *
 * @param what - what was asked, for the message, e.g. `product lookup of S2A_….SAFE`.
 */
export function errorForStatus(status: number, what: string, detail: string, retryAfterMs?: number): UpstreamError {
  const message = `CDSE ${what} failed: HTTP ${status}${detail ? ` ${detail}` : ''}`;
  const base = { status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  if (status === 404) return new UpstreamError('product_not_found', message, { ...base, retryable: false, httpStatus: 404 });
  if (status === 401 || status === 403) return new UpstreamError('upstream_auth', message, { ...base, retryable: false });
  if (status === 429) return new UpstreamError('upstream_rate_limited', message, { ...base, retryable: true, httpStatus: 503 });
  if (status === 408 || status >= 500) return new UpstreamError('upstream_unavailable', message, { ...base, retryable: true, httpStatus: 503 });
  return new UpstreamError('upstream_unavailable', message, { ...base, retryable: false });
}

/** Whether an HTTP status is worth retrying in place after a backoff (408 and 5xx). */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status >= 500;
}

/** `upstream_unavailable` (retryable) for a network error (refused, reset, DNS, timeout). */
export function networkError(what: string, cause: unknown): UpstreamError {
  const reason = cause instanceof Error ? `${(cause as NodeJS.ErrnoException).code ?? cause.name}: ${cause.message}` : String(cause);
  return new UpstreamError('upstream_unavailable', `CDSE ${what} failed: ${reason}`, { retryable: true, httpStatus: 503, cause });
}
