/**
 * Every error reply is JSON `{error: {code, message, field?}}` with the right status: our own
 * {@link ScenecacheError}s carry both; Fastify's errors (body parsing, limits, routing) are mapped
 * here; connection failures of Postgres/Redis become 503; anything else is a 500 `internal` whose
 * details go to the log, not to the client.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import contentType from 'content-type';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isDependencyUnavailable, ScenecacheError, type ErrorCode } from '@scenecache/core';

/**
 * Error codes of API replies: the domain's, HTTP-level ones, and the API's own conflicts
 * (`maintenance_running`: another cache maintenance run holds its lock; `tenant_busy`: a tenant to
 * offboard still has queued or active jobs).
 */
export type ApiErrorCode =
  | ErrorCode
  | 'invalid_json'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'headers_too_large'
  | 'uri_too_long'
  | 'maintenance_running'
  | 'tenant_busy';

/** The error reply body. */
export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; field?: string };
}

/** The error reply, for route schemas (OpenAPI). */
export const errorReplySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});

/** Build an error body. */
export function errorBody(code: ApiErrorCode, message: string, field?: string): ApiErrorBody {
  return { error: { code, message, ...(field === undefined ? {} : { field }) } };
}

/**
 * An error only the API raises, with a code of its own ({@link ApiErrorCode}) that the domain's
 * {@link ScenecacheError} codes do not name; answered as `{error: {code, message}}` with `status`.
 */
export class ApiError extends Error {
  /**
   * @param status - the HTTP status (4xx or 5xx).
   * @param code - the reply's `error.code`.
   */
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Fastify's own errors we answer with a specific code. */
const FASTIFY_ERRORS: Readonly<Record<string, { status: number; code: ApiErrorCode; message?: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload_too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type', message: 'the body must be JSON (Content-Type: application/json)' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is empty but Content-Type is application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_payload', message: 'Content-Length does not match the body' },
  FST_ERR_CTP_INVALID_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_EMPTY_TYPE: { status: 415, code: 'unsupported_media_type' },
  // The router's refusals (frameworkErrors); the path is not echoed (the client's own input, possibly huge).
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_payload', message: 'the URL path holds invalid percent-encoding' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'uri_too_long', message: 'a path segment of the URL is too long' },
};

/** A 4xx status we have no specific code for. */
function codeForStatus(status: number): ApiErrorCode {
  if (status === 404) return 'not_found';
  if (status === 405) return 'method_not_allowed';
  if (status === 409) return 'conflict';
  if (status === 413) return 'payload_too_large';
  if (status === 415) return 'unsupported_media_type';
  return 'invalid_payload';
}

/** Map any thrown value to a status and body. */
export function toErrorReply(err: unknown): { status: number; body: ApiErrorBody } {
  if (err instanceof ScenecacheError) {
    return { status: err.httpStatus, body: err.toJSON() };
  }
  if (err instanceof ApiError) return { status: err.status, body: errorBody(err.code, err.message) };
  const fastifyErr = err as Partial<FastifyError> | null;
  const known = typeof fastifyErr?.code === 'string' ? FASTIFY_ERRORS[fastifyErr.code] : undefined;
  if (known) return { status: known.status, body: errorBody(known.code, known.message ?? fastifyErr?.message ?? 'bad request') };
  if (isDependencyUnavailable(err)) {
    return { status: 503, body: errorBody('service_unavailable', 'a dependency of the service is unavailable; retry later') };
  }
  const status = fastifyErr?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, body: errorBody(codeForStatus(status), fastifyErr?.message ?? 'bad request') };
  }
  return { status: 500, body: errorBody('internal', 'internal error') };
}

/** Install the error and not-found handlers. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body } = toErrorReply(err);
    // A dependency outage fails every request: warn with the reason, keep error for real faults.
    if (status === 503) request.log.warn({ status, error: body.error }, 'request failed: dependency unavailable');
    else if (status >= 500) request.log.error({ err, status }, 'request failed');
    else request.log.info({ status, error: body.error }, 'request rejected');
    if (status === 503) void reply.header('retry-after', '5');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
}

/**
 * Fastify's `frameworkErrors`: URLs its router refuses before any route or hook runs get the API's
 * JSON error body (through {@link toErrorReply}, like every other error) instead of Fastify's
 * `{error, code, message, statusCode}`: `FST_ERR_BAD_URL` (invalid percent-encoding) 400
 * `invalid_payload`, `FST_ERR_MAX_PARAM_LENGTH` (a path parameter over `MAX_PATH_PARAM_LENGTH`
 * characters) 414 `uri_too_long`.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toErrorReply(error);
  request.log.info({ code: error.code, status, error: body.error }, 'request rejected by the router');
  void reply.code(status).send(body);
}

/**
 * `onRequest` hook: a request body declared in a charset other than UTF-8
 * (`Content-Type: application/json; charset=utf-16`) is refused with 415 `unsupported_media_type`
 * — JSON exchanged between systems must be UTF-8 (RFC 8259 §8.1), and the body parser would read
 * it as UTF-8 anyway. `charset=utf-8` (any case, quoted or not) and no charset pass; a
 * Content-Type that does not parse is left to the body parser (415 too).
 */
export function rejectNonUtf8Charset(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  const header = request.headers['content-type'];
  if (header !== undefined) {
    let charset: string | undefined;
    try {
      charset = contentType.parse(header).parameters.charset;
    } catch {
      charset = undefined;
    }
    if (charset !== undefined && charset.toLowerCase() !== 'utf-8') {
      void reply.code(415).send(errorBody('unsupported_media_type', `the body must be UTF-8 JSON (Content-Type: application/json; charset=utf-8), not charset ${JSON.stringify(charset.slice(0, 40))}`));
      return;
    }
  }
  done();
}

/** The header whose value Node's parser stopped in (`bytesParsed` points at the bad byte). */
function headerAt(raw: Buffer, offset: number): string | undefined {
  const head = raw.subarray(0, offset).toString('latin1');
  const line = head.slice(head.lastIndexOf('\r\n') + 2);
  const name = line.slice(0, line.indexOf(':'));
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) ? name : undefined;
}

/**
 * Fastify's `clientErrorHandler`: requests Node's HTTP parser rejects before any route sees them
 * (a control character in a header value, a malformed request line, headers too large, a
 * request that arrives too slowly) get the API's JSON error body too — naming the header for a bad
 * header value — instead of Fastify's `{"error": "Bad Request", "message": "Client Error"}`.
 */
export function clientErrorHandler(this: FastifyInstance, err: ConnectionError, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let body: ApiErrorBody;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    body = errorBody('request_timeout', 'the request did not arrive in time');
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    body = errorBody('headers_too_large', 'the request headers are too large');
  } else {
    const raw: unknown = err.rawPacket;
    const reason = (err as { reason?: unknown }).reason;
    const header = reason === 'Invalid header value char' && Buffer.isBuffer(raw) ? headerAt(raw, err.bytesParsed) : undefined;
    body = header
      ? errorBody('invalid_payload', `${header} header: contains a character HTTP does not allow in a header value (a control character)`, header)
      : errorBody('invalid_payload', `malformed HTTP request: ${typeof reason === 'string' ? reason : err.message}`);
  }
  // Never the error itself: Node attaches the whole rejected request (credentials included) as
  // `rawPacket`. Its code and reason say what was wrong.
  this.log.info({ code: err.code, reason: (err as { reason?: unknown }).reason, status, error: body.error }, 'request rejected by the HTTP parser');
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const json = JSON.stringify(body);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`);
}
