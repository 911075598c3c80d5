/**
 * The error every {@link ScenecacheClient} call rejects with when the API answers with an error
 * status: the API's `{error: {code, message, field?}}` body as typed fields, with the status.
 */
import type { components } from './openapi.js';

/** The API's error reply body. */
export type ApiErrorBody = components['schemas']['Error'];

/** Whether `body` has the API's error shape `{error: {code: string, message: string}}`. */
function isApiErrorBody(body: unknown): body is ApiErrorBody {
  if (body === null || typeof body !== 'object') return false;
  const error = (body as { error?: unknown }).error;
  return error !== null && typeof error === 'object' && typeof (error as { code?: unknown }).code === 'string' && typeof (error as { message?: unknown }).message === 'string';
}

/**
 * An error reply of the scenecache API (any status ≥ 400, or a reply the client cannot use).
 *
 * `code` is the API's machine-readable code, e.g. `invalid_payload`, `invalid_product_name`,
 * `unknown_band` (400), `unauthorized` (401), `forbidden` (403), `not_found` / `expired` (404),
 * `conflict` (409), `rate_limited` (429), `service_unavailable` (503). A reply without the API's error body (a proxy's HTML 502, say) gets
 * `code` `http_<status>` and the start of the body as `message`.
 */
export class ScenecacheApiError extends Error {
  override readonly name = 'ScenecacheApiError';
  /** HTTP status of the reply (e.g. 400, 404, 429, 503). */
  readonly status: number;
  /** The API's error code (`error.code`), or `http_<status>` when the body has none. */
  readonly code: string;
  /** The request field at fault (`error.field`, 400 only), e.g. `scene_id` or `bands[0]`. */
  readonly field: string | undefined;
  /** The request's id (`x-request-id` reply header): every server log line of it carries it. */
  readonly requestId: string | undefined;
  /** `Retry-After` of a 429 or 503, in seconds. */
  readonly retryAfterSeconds: number | undefined;

  /**
   * @param status - HTTP status
   * @param code - error code
   * @param message - human-readable message (the API's `error.message`)
   * @param details - the optional fields
   */
  constructor(status: number, code: string, message: string, details: { field?: string | undefined; requestId?: string | undefined; retryAfterSeconds?: number | undefined } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = details.field;
    this.requestId = details.requestId;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }

  /**
   * The error for an error reply.
   *
   * @param response - the reply (its status and headers are read; its body is not)
   * @param body - the body as openapi-fetch parsed it: the JSON value, or the text when it was not JSON
   */
  static fromResponse(response: Response, body: unknown): ScenecacheApiError {
    const retryAfter = Number(response.headers.get('retry-after') ?? Number.NaN);
    const details = {
      requestId: response.headers.get('x-request-id') ?? undefined,
      retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined,
    };
    if (isApiErrorBody(body)) return new ScenecacheApiError(response.status, body.error.code, body.error.message, { ...details, field: body.error.field });
    const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
    const snippet = text.length > 200 ? `${text.slice(0, 200)}…` : text;
    const message = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}${snippet ? `: ${snippet}` : ''}`;
    return new ScenecacheApiError(response.status, `http_${response.status}`, message, details);
  }
}

/**
 * {@link ScenecacheClient.wait} gave up: the job was not in a final state (completed, failed,
 * cancelled) when `timeoutMs` ran out. The job goes on; `job` is its last state seen.
 */
export class ScenecacheWaitTimeoutError<TJob = unknown> extends Error {
  override readonly name = 'ScenecacheWaitTimeoutError';
  /** The job as the last poll saw it (`status` queued or active). */
  readonly job: TJob;
  /** The timeout that ran out (ms). */
  readonly timeoutMs: number;

  /**
   * @param jobId - the job waited for
   * @param job - its last state seen
   * @param timeoutMs - the timeout that ran out (ms)
   */
  constructor(jobId: string, job: TJob, timeoutMs: number) {
    super(`download job ${jobId} did not finish within ${timeoutMs} ms`);
    this.job = job;
    this.timeoutMs = timeoutMs;
  }
}
