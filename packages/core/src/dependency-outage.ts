/**
 * One answer, shared by the API and the worker, to "is a dependency of ours unavailable?" —
 * Postgres, Redis or S3 unreachable, overloaded, timing out or restarting — as opposed to a
 * failure of the request or job itself (bad input, a bug, a constraint, the upstream CDSE).
 *
 * The API answers such a failure 503 `service_unavailable`; the worker hands the job back to the
 * queue without spending an attempt, however long the outage lasts (DESIGN.md, "an outage of our
 * own dependencies is not a job failure").
 *
 * Recognised:
 * - network errors (`ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`, `EPIPE`, DNS failures, …), also
 *   inside an `AggregateError` (Node's dual-stack connect) or as an error's `cause`;
 * - Postgres SQLSTATE classes 08 (connection exception), 53 (insufficient resources, e.g. 53300
 *   too many connections), 28 (authentication: the server side is misconfigured), 57P01–57P05
 *   (shutdown, crash, cannot connect now), 57014 (statement timeout), 3D000 (no such database)
 *   — postgresql.org/docs/current/errcodes-appendix.html — and pg/pg-pool's own connection
 *   messages ("Connection terminated", "Query read timeout", "timeout exceeded when trying to connect");
 * - ioredis connection errors ("Connection is closed", "Command timed out", "Stream isn't
 *   writeable", "Reached the max retries per request", "Socket timeout");
 * - S3 (AWS SDK v3): no answer at all (network error, `TimeoutError`, `RequestTimeout`), an HTTP
 *   5xx answer, or the throttling/unavailable codes `SlowDown`, `ServiceUnavailable`,
 *   `InternalError`, `RequestTimeout` (docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
 *   An S3 4xx (`NoSuchKey`, `AccessDenied`, …) is not an outage;
 * - our own {@link ScenecacheError}s: `service_unavailable` is; `storage_error` is when its cause
 *   is (an S3 failure above); every other code (upstream, validation, `lock_lost`, …) is not,
 *   whatever its cause — a connection reset by CDSE is the upstream's failure, not ours.
 */
import { ScenecacheError } from './errors.js';

/** Node and libuv network error codes meaning "could not reach it / it went away". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED', 'ESOCKETTIMEDOUT',
]);

// SQLSTATE classes/codes meaning "the database can't serve you right now" (see the module comment).
const SQLSTATE_RE = /^(08|53|28)[0-9A-Z]{3}$|^57P0[1-5]$|^57014$|^3D000$/;

// pg, pg-pool and ioredis report connection trouble as plain Errors, recognisable by message only.
const MESSAGE_RE =
  /Connection terminated|Query read timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is closed|Stream isn't writeable|Command timed out|Reached the max retries per request|Socket timeout|getaddrinfo/i;

/** S3 error codes (and SDK error names) that mean "S3 cannot serve now", whatever the status. */
const S3_UNAVAILABLE_CODES = new Set(['SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'TimeoutError', 'RequestTimeTooSkewed']);

/**
 * Whether `err` (or what caused it) says one of our own dependencies — Postgres, Redis, S3 — is
 * unavailable, rather than that the request or job is at fault. See the module comment for what
 * counts. Never throws; looks at most 5 causes deep.
 */
export function isDependencyUnavailable(err: unknown, depth = 0): boolean {
  if (depth > 5 || typeof err !== 'object' || err === null) return false;
  if (err instanceof ScenecacheError) {
    if (err.code === 'service_unavailable') return true;
    return err.code === 'storage_error' && isDependencyUnavailable(err.cause, depth + 1);
  }
  const e = err as { code?: unknown; Code?: unknown; name?: unknown; message?: unknown; cause?: unknown; errors?: unknown; $metadata?: { httpStatusCode?: unknown }; $fault?: unknown };
  if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || SQLSTATE_RE.test(e.code))) return true;
  // An AWS SDK error: S3 answered (status known) or the SDK gave up waiting.
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === 'number') return status >= 500 || (typeof e.Code === 'string' && S3_UNAVAILABLE_CODES.has(e.Code)) || (typeof e.name === 'string' && S3_UNAVAILABLE_CODES.has(e.name));
  if (typeof e.name === 'string' && S3_UNAVAILABLE_CODES.has(e.name)) return true;
  if (typeof e.message === 'string' && MESSAGE_RE.test(e.message)) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => isDependencyUnavailable(x, depth + 1))) return true;
  return isDependencyUnavailable(e.cause, depth + 1);
}
