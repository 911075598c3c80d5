/**
 * The error hierarchy shared by the API and the worker.
 *
 * Every failure that crosses a module boundary is a {@link ScenecacheError}: it carries a stable
 * machine-readable `code` (written to `download_jobs.error_code` and to API error bodies), whether
 * retrying can help (`retryable`: BullMQ retries, non-retryable errors become `UnrecoverableError`),
 * and the HTTP status the API answers with.
 */

/** Stable error codes. Dashboards and clients match on these; never rename one. */
export type ErrorCode =
  | 'invalid_payload'
  | 'invalid_product_name'
  | 'unknown_band'
  | 'band_not_in_level'
  | 'duplicate_band'
  | 'invalid_tenant_id'
  | 'invalid_settings'
  | 'product_not_found'
  | 'band_not_in_product'
  | 'upstream_integrity'
  | 'upstream_unavailable'
  | 'upstream_rate_limited'
  | 'upstream_auth'
  | 'storage_error'
  | 'lock_lost'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'expired'
  | 'conflict'
  | 'service_unavailable'
  | 'idempotency_key_required'
  | 'rate_limited'
  | 'worker_lost'
  | 'failpoint'
  | 'job_finished'
  | 'cancelled'
  | 'invalid_callback_url'
  | 'callback_secret_missing'
  | 'internal';

/** Options of {@link ScenecacheError}. */
export interface ScenecacheErrorOptions {
  /** Whether a retry may succeed. @defaultValue `false` */
  retryable?: boolean;
  /** HTTP status the API maps this error to. @defaultValue 500 */
  httpStatus?: number;
  /** The request or payload field at fault, e.g. `bands[2]`. */
  field?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** Base class of every error scenecache raises on purpose. */
export class ScenecacheError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly httpStatus: number;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: ScenecacheErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.httpStatus = options.httpStatus ?? 500;
    this.field = options.field;
  }

  /** The JSON error body of the API: `{error: {code, message, field?}}`. */
  toJSON(): { error: { code: ErrorCode; message: string; field?: string } } {
    return {
      error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) },
    };
  }
}

/** Bad input (payload, product name, band, tenant id): HTTP 400, never retried. */
export class ValidationError extends ScenecacheError {
  constructor(code: ErrorCode, message: string, field?: string) {
    super(code, message, { retryable: false, httpStatus: 400, ...(field ? { field } : {}) });
  }
}

/**
 * The upstream (CDSE) refused or failed. `retryAfterMs` is set for rate limits (429), from the
 * `Retry-After` header when the server sent one.
 */
export class UpstreamError extends ScenecacheError {
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: ScenecacheErrorOptions & { status?: number; retryAfterMs?: number } = {},
  ) {
    super(code, message, { httpStatus: 502, ...options });
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Narrow an unknown thrown value to a {@link ScenecacheError}, wrapping anything else as `internal`. */
export function toScenecacheError(err: unknown): ScenecacheError {
  if (err instanceof ScenecacheError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ScenecacheError('internal', message, { retryable: true, cause: err });
}
