/**
 * Every error reply is JSON `{error: {code, message, field?}}` with the right status: our own
 * {@link ScenecacheError}s carry both; Fastify's errors (body parsing, limits, routing) are mapped
 * here; connection failures of Postgres/Redis become 503; anything else is a 500 `internal` whose
 * details go to the log, not to the client.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ScenecacheError, type ErrorCode } from '@scenecache/core';
import { isUnavailableError } from './dependency-call.js';

/** Error codes of API replies: the domain's, plus HTTP-level ones. */
export type ApiErrorCode = ErrorCode | 'invalid_json' | 'payload_too_large' | 'unsupported_media_type' | 'method_not_allowed';

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

/** Fastify's own errors we answer with a specific code. */
const FASTIFY_ERRORS: Readonly<Record<string, { status: number; code: ApiErrorCode; message?: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload_too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type', message: 'the body must be JSON (Content-Type: application/json)' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is empty but Content-Type is application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_payload', message: 'Content-Length does not match the body' },
  FST_ERR_CTP_INVALID_TYPE: { status: 415, code: 'unsupported_media_type' },
  FST_ERR_CTP_EMPTY_TYPE: { status: 415, code: 'unsupported_media_type' },
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
  const fastifyErr = err as Partial<FastifyError> | null;
  const known = typeof fastifyErr?.code === 'string' ? FASTIFY_ERRORS[fastifyErr.code] : undefined;
  if (known) return { status: known.status, body: errorBody(known.code, known.message ?? fastifyErr?.message ?? 'bad request') };
  if (isUnavailableError(err)) {
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
