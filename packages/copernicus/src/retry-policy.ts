/**
 * Retry policy for CDSE requests: budgets, exponential backoff with full jitter, `Retry-After`.
 *
 * CDSE documents no `Retry-After` on its 429 (`{"code":"DAT-ZIP-100","message":"Max session number
 * exceeded"}`, fixture `zipper_429_max_session_exceeded.txt`; limits on
 * documentation.dataspace.copernicus.eu/Quotas.html), so we back off with full jitter
 * (`random(0, min(cap, base·2^n))`, the AWS Architecture Blog's "Exponential Backoff And Jitter") and
 * honour `Retry-After` (RFC 9110 §10.2.3: delay-seconds or an HTTP date) whenever a server sends it.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Retry budgets and delays of one upstream request or file transfer. Units: ms. */
export interface RetryOptions {
  /**
   * Tries of one request against 5xx answers and network errors (the first try included); for a
   * streamed file, also the resumes in a row that bring no byte (a cut after progress resumes
   * without counting).
   * @defaultValue 5
   */
  readonly attempts: number;
  /**
   * 429 answers one request absorbs (waiting in between) before it gives up with
   * `upstream_rate_limited`: a rate limit is then the caller's to wait out, not a failure.
   * @defaultValue 6
   */
  readonly rateLimitAttempts: number;
  /** First backoff step (ms); step n waits up to `baseDelayMs·2^n`. @defaultValue 1000 */
  readonly baseDelayMs: number;
  /**
   * Cap of one backoff step (ms). A `Retry-After` longer than this is not waited out in place: the
   * request fails at once with `upstream_rate_limited` carrying `retryAfterMs`.
   * @defaultValue 30000
   */
  readonly maxDelayMs: number;
  /** Range resumes one file may use in total, however much progress each makes. @defaultValue 20 */
  readonly maxResumes: number;
  /** No response headers within this long: the try counts as a network error (ms). @defaultValue 30000 */
  readonly responseTimeoutMs: number;
  /**
   * No body byte within this long while the consumer is reading: the connection counts as cut and
   * the file resumes (ms). Time spent waiting on a slow consumer (backpressure) does not count.
   * @defaultValue 60000
   */
  readonly idleTimeoutMs: number;
}

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY_OPTIONS: Readonly<RetryOptions> = Object.freeze({
  attempts: 5,
  rateLimitAttempts: 6,
  baseDelayMs: 1_000,
  maxDelayMs: 30_000,
  maxResumes: 20,
  responseTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
});

/**
 * Fill unset options with {@link DEFAULT_RETRY_OPTIONS}.
 * @throws RangeError when a value is negative or not finite, or `attempts` is below 1.
 */
export function resolveRetryOptions(options: Partial<RetryOptions> = {}): Readonly<RetryOptions> {
  const merged: RetryOptions = { ...DEFAULT_RETRY_OPTIONS };
  for (const [key, value] of Object.entries(options) as [keyof RetryOptions, number | undefined][]) {
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`retry option ${key} must be a finite number ≥ 0, got ${value}`);
    (merged as unknown as Record<string, number>)[key] = value;
  }
  if (merged.attempts < 1) throw new RangeError('retry option attempts must be ≥ 1');
  return Object.freeze(merged);
}

/**
 * Full-jitter exponential backoff: a uniform delay in `[0, min(maxDelayMs, baseDelayMs·2^step))`.
 *
 * @param step - 0 for the first retry, 1 for the second, …
 * @param random - a source in `[0, 1)`. @defaultValue `Math.random`
 * @returns the delay in ms (an integer).
 */
export function backoffDelayMs(
  step: number,
  options: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs'>,
  random: () => number = Math.random,
): number {
  // 2^step overflows to Infinity long before it matters; min() keeps the cap.
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, step));
  return Math.floor(random() * ceiling);
}

/**
 * The wait a `Retry-After` header asks for, in ms (RFC 9110 §10.2.3).
 *
 * @param value - the header: delay-seconds (`"120"`) or an HTTP date (`"Wed, 21 Oct 2015 07:28:00 GMT"`).
 * @param nowMs - the current time (epoch ms), for dates. @defaultValue `Date.now()`
 * @returns ms to wait (0 for a date in the past), or `undefined` when the header is absent or unparsable.
 */
export function parseRetryAfterMs(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Only date forms: Date.parse would also accept "1.5" or "-3" as odd dates.
  if (!/[A-Za-z]/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * Wait `ms`, or reject as soon as `signal` aborts (with the signal's reason).
 */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) {
    signal?.throwIfAborted();
    return;
  }
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    // timers/promises rejects with its own AbortError; surface the caller's reason instead.
    if (signal?.aborted) throw abortReason(signal);
    throw err;
  }
}

/** The reason a signal aborted, as an Error (a `name: 'AbortError'` Error when the reason is not one). */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const detail = typeof reason === 'string' ? `: ${reason}` : '';
  const err = new Error(`the operation was aborted${detail}`);
  err.name = 'AbortError';
  return err;
}
