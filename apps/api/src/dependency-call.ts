/**
 * Time-bound calls to Postgres and Redis. A request never hangs on a dependency that is down or
 * unreachable: the call gives up after a deadline, and connection-level failures become
 * `service_unavailable` (HTTP 503, retryable). Anything else (a bug, a constraint violation) is
 * passed through and answered as the error it is.
 */
import { ScenecacheError } from '@scenecache/core';

/** The dependencies the API calls. */
export type Dependency = 'Postgres' | 'Redis';

/** `service_unavailable` (HTTP 503, retryable). */
export function serviceUnavailable(message: string, cause?: unknown): ScenecacheError {
  return new ScenecacheError('service_unavailable', message, { retryable: true, httpStatus: 503, cause });
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED',
]);

// SQLSTATE classes/codes meaning "the database can't serve you right now": 08 connection
// exception, 53 insufficient resources, 57P01–57P05 shutdown/crash, 57014 query cancelled
// (statement_timeout), 28 authentication, 3D000 no such database (both: misconfigured server side).
const SQLSTATE_RE = /^(08|53|28)...$|^57P0[1-5]$|^57014$|^3D000$/;

// pg-pool, pg and ioredis report connection trouble as plain Errors, recognisable by message only.
const MESSAGE_RE =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is closed|Stream isn't writeable|Command timed out|Reached the max retries per request|getaddrinfo/i;

/** Whether an error (or its cause) says a dependency is unreachable or overloaded, not that the request was wrong. */
export function isUnavailableError(err: unknown, depth = 0): boolean {
  if (depth > 4 || typeof err !== 'object' || err === null) return false;
  if (err instanceof ScenecacheError) return err.code === 'service_unavailable';
  const { code, message, cause, errors } = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || SQLSTATE_RE.test(code))) return true;
  if (typeof message === 'string' && MESSAGE_RE.test(message)) return true;
  // Node reports a failed dual-stack connect (::1 and 127.0.0.1) as an AggregateError.
  if (Array.isArray(errors) && errors.some((e) => isUnavailableError(e, depth + 1))) return true;
  return isUnavailableError(cause, depth + 1);
}

/**
 * Run one dependency call under a deadline.
 *
 * @param dependency - named in the error message.
 * @param timeoutMs - deadline (ms). The call itself is not cancelled: its result is ignored.
 * @param call - the call.
 * @param options.anyFailure - every failure (not just connection errors) is `service_unavailable`:
 *   for Redis enqueues, where any failure means "not enqueued, try again".
 * @throws ScenecacheError `service_unavailable` on timeout or a connection failure; the call's own
 *   error otherwise.
 */
export async function callDependency<T>(
  dependency: Dependency,
  timeoutMs: number,
  call: () => Promise<T>,
  options: { anyFailure?: boolean } = {},
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(serviceUnavailable(`${dependency} did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([call(), deadline]);
  } catch (err) {
    if (err instanceof ScenecacheError) throw err;
    if (options.anyFailure || isUnavailableError(err)) {
      const reason = err instanceof Error ? err.message : String(err);
      throw serviceUnavailable(`${dependency} is unavailable: ${reason}`, err);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
