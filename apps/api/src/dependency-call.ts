/**
 * Time-bound calls to Postgres and Redis. A request never hangs on a dependency that is down or
 * unreachable: the call gives up after a deadline, and connection-level failures become
 * `service_unavailable` (HTTP 503, retryable). Anything else (a bug, a constraint violation) is
 * passed through and answered as the error it is.
 */
import { isDependencyUnavailable, ScenecacheError } from '@scenecache/core';

/** The dependencies the API calls (what counts as their outage: `isDependencyUnavailable`). */
export type Dependency = 'Postgres' | 'Redis';

/** `service_unavailable` (HTTP 503, retryable). */
export function serviceUnavailable(message: string, cause?: unknown): ScenecacheError {
  return new ScenecacheError('service_unavailable', message, { retryable: true, httpStatus: 503, cause });
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
    if (options.anyFailure || isDependencyUnavailable(err)) {
      const reason = err instanceof Error ? err.message : String(err);
      throw serviceUnavailable(`${dependency} is unavailable: ${reason}`, err);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
