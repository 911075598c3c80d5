/**
 * {@link ScenecacheClient}: the download job calls of the scenecache API (enqueue, get, wait, list,
 * cancel) over openapi-fetch, typed by the generated OpenAPI types, with the API's error replies
 * thrown as {@link ScenecacheApiError}. Every other operation is reachable, typed, through
 * {@link ScenecacheClient.api}.
 */
import createClient, { type Client } from 'openapi-fetch';
import { ScenecacheApiError, ScenecacheWaitTimeoutError } from './api-error.js';
import { isFinalStatus, type DownloadRequest, type EnqueuedJob, type Job, type JobPage, type ListFilters } from './download-types.js';
import type { paths } from './openapi.js';

/** Longest long-poll the API allows per request (`GET /v1/downloads/{id}?wait=S`), seconds. */
export const MAX_POLL_WAIT_SECONDS = 60;

/** Options of {@link ScenecacheClient}. */
export interface ScenecacheClientOptions {
  /** Where the API is served, without `/v1`, e.g. `http://localhost:8080`. */
  readonly baseUrl: string;
  /**
   * An API key (tenant or admin), sent as `Authorization: Bearer <apiKey>`. Omit it for an API
   * running `AUTH_MODE=open`.
   */
  readonly apiKey?: string | undefined;
  /**
   * The fetch implementation; it is given a `Request`. Inject one to add retries, tracing or a test
   * double. @defaultValue `globalThis.fetch`
   */
  readonly fetch?: ((input: Request) => Promise<Response>) | undefined;
  /** More headers sent with every request (e.g. `user-agent`, `x-request-id`). */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the call: it rejects with the signal's reason (an `AbortError` by default). */
  readonly signal?: AbortSignal | undefined;
}

/** Options of {@link ScenecacheClient.enqueue}. */
export interface EnqueueOptions extends CallOptions {
  /**
   * `Idempotency-Key` (1–200 printable ASCII characters): the same key and request again returns the
   * first job instead of a new one; the same key with another request is a 409 `conflict`.
   */
  readonly idempotencyKey?: string | undefined;
}

/** Options of {@link ScenecacheClient.wait}. */
export interface WaitOptions extends CallOptions {
  /**
   * Give up after this long (ms), with {@link ScenecacheWaitTimeoutError}; `Infinity` waits for ever.
   * @defaultValue 600000 (10 minutes)
   */
  readonly timeoutMs?: number | undefined;
  /**
   * How long each request asks the server to hold the reply until the job ends
   * (`GET /v1/downloads/{id}?wait=S`), whole seconds 0–60; never beyond the time left.
   * @defaultValue 20
   */
  readonly pollWaitSeconds?: number | undefined;
  /**
   * Least time (ms) between the starts of two polls: a reply that comes back sooner without the job
   * having ended (a server that does not hold the reply) is followed by a pause, not by a busy loop.
   * @defaultValue 1000
   */
  readonly minPollIntervalMs?: number | undefined;
}

/** An openapi-fetch result: `data` on success, `error` (the parsed body) on an error status. */
interface FetchResult<T> {
  readonly data?: T;
  readonly error?: unknown;
  readonly response: Response;
}

/** The data of a successful reply; an error reply (or an empty success) throws {@link ScenecacheApiError}. */
function unwrap<T>(result: FetchResult<T>): Exclude<T, undefined> {
  const { response } = result;
  if (result.error !== undefined || !response.ok) throw ScenecacheApiError.fromResponse(response, result.error);
  if (result.data === undefined) throw new ScenecacheApiError(response.status, 'empty_response', `HTTP ${response.status} without the expected JSON body`);
  return result.data as Exclude<T, undefined>;
}

/** Resolve after `ms`, or reject with the signal's reason once it aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Check a numeric option: a number in [min, max] (and whole when `integer`). */
function checkRange(name: string, value: number, min: number, max: number, integer = false): number {
  if (Number.isNaN(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, not ${value}`);
  }
  return value;
}

/**
 * A client of the scenecache API's download jobs.
 *
 * ```ts
 * const client = new ScenecacheClient({ baseUrl: 'http://localhost:8080', apiKey: process.env.SCENECACHE_API_KEY });
 * const { job_id } = await client.enqueue({ tenant_id: 'acme', scene_id: 'S2B_MSIL2A_…', bands: ['B04', 'B08'] });
 * const job = await client.wait(job_id);   // completed | failed | cancelled
 * ```
 *
 * Every method rejects with {@link ScenecacheApiError} when the API answers with an error status
 * (`status`, `code`, `message`), and with the fetch implementation's error (a `TypeError`) when the
 * API cannot be reached.
 */
export class ScenecacheClient {
  /**
   * The underlying openapi-fetch client, typed by the whole OpenAPI document, with the base URL and
   * the API key set: for the operations this class does not wrap (cache statistics, fleet, admin).
   * Its calls return `{data, error, response}` instead of throwing.
   */
  readonly api: Client<paths>;

  /** @param options - where the API is and how to call it; see {@link ScenecacheClientOptions}. */
  constructor(options: ScenecacheClientOptions) {
    if (typeof options.baseUrl !== 'string') throw new TypeError('baseUrl must be a string, e.g. http://localhost:8080');
    const injected = options.fetch;
    this.api = createClient<paths>({
      baseUrl: options.baseUrl,
      // openapi-fetch reads globalThis.fetch once, here, when none is given.
      ...(injected === undefined ? {} : { fetch: (request: Request) => injected(request) }),
      headers: {
        ...options.headers,
        ...(options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }),
      },
    });
  }

  /**
   * Enqueue one download job (`POST /v1/downloads`).
   *
   * @param request - `{tenant_id, scene_id, bands?, priority?, callback_url?}`; see {@link DownloadRequest}
   * @returns the job as enqueued (`status: queued`), or, for a repeated `idempotencyKey`, the first
   *   job with its current status
   * @throws ScenecacheApiError 400 (`invalid_product_name`, `unknown_band`, `invalid_tenant_id`,
   *   `invalid_callback_url`, `callback_secret_missing`, …,
   *   `field` names the field), 403 (another tenant than the key's), 409 (`conflict`: the key was
   *   used for another request), 429, 503
   */
  async enqueue(request: DownloadRequest, options: EnqueueOptions = {}): Promise<EnqueuedJob> {
    const header = options.idempotencyKey === undefined ? undefined : { 'idempotency-key': options.idempotencyKey };
    return unwrap(await this.api.POST('/v1/downloads', { body: request, params: { header }, signal: options.signal }));
  }

  /**
   * Enqueue up to 100 jobs at once, all or none (`POST /v1/downloads/batch`).
   *
   * @param requests - 1–100 requests; see {@link DownloadRequest}
   * @returns the jobs, in the order of `requests`
   * @throws ScenecacheApiError 400 when any request is invalid (nothing is enqueued; `field` is
   *   e.g. `jobs[3].scene_id`), 403, 429, 503
   */
  async enqueueBatch(requests: readonly DownloadRequest[], options: CallOptions = {}): Promise<EnqueuedJob[]> {
    const reply = unwrap(await this.api.POST('/v1/downloads/batch', { body: { jobs: [...requests] }, signal: options.signal }));
    return reply.jobs;
  }

  /**
   * A job and its result (`GET /v1/downloads/{id}`), answered at once.
   *
   * @param id - the `job_id` the enqueue returned
   * @throws ScenecacheApiError 404 `not_found` (no such job, or another tenant's for a tenant key),
   *   404 `expired` (deleted by retention), 400 (not a job id), 503
   */
  async get(id: string, options: CallOptions = {}): Promise<Job> {
    return this.poll(id, 0, options.signal);
  }

  /**
   * Wait until a job ends — `completed`, `failed` or `cancelled` — and return it. Long-polls
   * `GET /v1/downloads/{id}?wait=S` again and again (each request held by the server up to
   * `pollWaitSeconds`, never beyond the time left); against a server that answers at once, it polls
   * every `minPollIntervalMs`. A failed job is returned, not thrown: read its `error`.
   *
   * @param id - the `job_id` the enqueue returned
   * @param options - `timeoutMs` (default 10 min), `pollWaitSeconds` (0–60, default 20),
   *   `minPollIntervalMs` (default 1000), `signal`
   * @throws ScenecacheWaitTimeoutError when the job has not ended within `timeoutMs` (its `job` is
   *   the last state seen); ScenecacheApiError as {@link get} (404, 503, …): an error reply ends
   *   the wait
   */
  async wait(id: string, options: WaitOptions = {}): Promise<Job> {
    const timeoutMs = checkRange('timeoutMs', options.timeoutMs ?? 600_000, 0, Number.POSITIVE_INFINITY);
    const pollWaitSeconds = checkRange('pollWaitSeconds', options.pollWaitSeconds ?? 20, 0, MAX_POLL_WAIT_SECONDS, true);
    const minPollIntervalMs = checkRange('minPollIntervalMs', options.minPollIntervalMs ?? 1_000, 0, Number.POSITIVE_INFINITY);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const started = Date.now();
      // Whole seconds the server may hold the reply: never past the deadline.
      const waitSeconds = Math.max(0, Math.min(pollWaitSeconds, Math.floor((deadline - started) / 1000)));
      const job = await this.poll(id, waitSeconds, options.signal);
      if (isFinalStatus(job.status)) return job;
      const now = Date.now();
      if (now >= deadline) throw new ScenecacheWaitTimeoutError(id, job, timeoutMs);
      const pause = Math.min(minPollIntervalMs - (now - started), deadline - now);
      if (pause > 0) await sleep(pause, options.signal);
    }
  }

  /**
   * One page of jobs, newest first (`GET /v1/downloads`). A tenant key lists its own tenant only.
   *
   * @param filters - see {@link ListFilters}; `limit` 1–500 (default 50), `cursor` from the previous
   *   page's `next_cursor`
   * @returns `{items, next_cursor}`; `next_cursor` is `null` on the last page
   * @throws ScenecacheApiError 400 (a bad filter or cursor), 403 (another tenant than the key's), 503
   */
  async list(filters: ListFilters = {}, options: CallOptions = {}): Promise<JobPage> {
    return unwrap(await this.api.GET('/v1/downloads', { params: { query: filters }, signal: options.signal }));
  }

  /**
   * Every page of jobs matching `filters`, following `next_cursor` (from `filters.cursor`, if given).
   * Pages are fetched as the iteration asks for them.
   *
   * @throws ScenecacheApiError as {@link list}, from the iteration step that fetched the page
   */
  async *listPages(filters: ListFilters = {}, options: CallOptions = {}): AsyncGenerator<JobPage, void, undefined> {
    let cursor = filters.cursor;
    do {
      const page = await this.list({ ...filters, cursor }, options);
      yield page;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * Every job matching `filters`, newest first, across all pages (`for await (const job of
   * client.listAll({tenant_id: 'acme'}))`). `filters.limit` sets the page size.
   *
   * @throws ScenecacheApiError as {@link list}
   */
  async *listAll(filters: ListFilters = {}, options: CallOptions = {}): AsyncGenerator<Job, void, undefined> {
    for await (const page of this.listPages(filters, options)) yield* page.items;
  }

  /**
   * Cancel a job (`DELETE /v1/downloads/{id}`). A queued or delayed job is cancelled at once
   * (`status: cancelled`); an active one stops at its next step (`cancel_requested: true` now; its
   * status turns `cancelled`, or `completed` when it was past its last step — {@link wait} for it).
   * A download other jobs wait for is never aborted. Cancelling a cancelled job again is no error.
   *
   * @returns the job as the API answered the cancel
   * @throws ScenecacheApiError 409 `job_finished` (the job already completed or failed), 404
   *   `not_found` (no such job, or another tenant's), 503
   */
  async cancel(id: string, options: CallOptions = {}): Promise<Job> {
    return unwrap(await this.api.DELETE('/v1/downloads/{id}', { params: { path: { id } }, signal: options.signal }));
  }

  /** `GET /v1/downloads/{id}`, asking the server to hold the reply up to `waitSeconds` (0: at once). */
  private async poll(id: string, waitSeconds: number, signal: AbortSignal | undefined): Promise<Job> {
    return unwrap(
      await this.api.GET('/v1/downloads/{id}', {
        params: { path: { id }, query: waitSeconds > 0 ? { wait: waitSeconds } : undefined },
        signal,
      }),
    );
  }
}
