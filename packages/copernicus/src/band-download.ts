/**
 * Streaming one file of a product (a band's JPEG2000) from CDSE, verified against `manifest.safe`.
 *
 * The stream resumes a cut connection with `Range: bytes=<received>-` when the server answers 206
 * (Range support is not documented by CDSE: documentation.dataspace.copernicus.eu/APIs/OData.html
 * #product-download), and asks the caller to restart the file when it answers 200 instead. Rate
 * limits (429 `DAT-ZIP-100`, fixture `zipper_429_max_session_exceeded.txt`), 5xx answers and expired
 * tokens (401) are retried by `authorizedGet`. Every byte goes through SHA3-256 on its way out, and
 * the size and digest are compared with the manifest **before** the stream ends: a consumer (an S3
 * multipart upload) sees an error instead of an end and never completes a bad object.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Response } from 'node-fetch';
import { UpstreamError, type Logger, type SafeFile } from '@scenecache/core';
import { authorizedGet, type AccessTokenSource, type AuthorizedGetStats } from './authorized-request.js';
import { nodeValueUrl } from './nodes-path.js';
import { abortReason, backoffDelayMs, resolveRetryOptions, sleep, type RetryOptions } from './retry-policy.js';
import { parseContentRange, RestartRequiredError } from './range-resume.js';
import { linkedController, type AgentChooser, type LinkedController } from './upstream-http.js';

/** Buffered between the upstream socket and the consumer, at most (bytes). */
const STREAM_HIGH_WATER_MARK = 1024 * 1024;

/** What every file download needs: where, with which token, how patiently. */
export interface FileDownloadContext {
  /** Download service base URL, e.g. `https://download.dataspace.copernicus.eu/odata/v1`. */
  readonly downloadUrl: string;
  readonly tokens: AccessTokenSource;
  /** Budgets and delays; see {@link RetryOptions} for each default. */
  readonly retry?: Partial<RetryOptions> | undefined;
  readonly agent?: AgentChooser | undefined;
  readonly logger?: Logger | undefined;
  /** Jitter source in `[0, 1)`. @defaultValue `Math.random` */
  readonly random?: (() => number) | undefined;
  /** `User-Agent` of file requests, naming the process (operators and the sim see who downloads). */
  readonly userAgent?: string | undefined;
  /** Called on every 429 answer (see `AuthorizedGetOptions.onRateLimited`). */
  readonly onRateLimited?: (() => void) | undefined;
}

/** One file to stream. */
export interface VerifiedFileRequest {
  /** OData product `Id`. */
  readonly productId: string;
  /** `<sceneId>.SAFE`. */
  readonly safeName: string;
  /** The file's manifest entry: SAFE-relative path, size (bytes), SHA3-256 (lower-case hex). */
  readonly file: SafeFile;
  /** Aborts everything (request, body, backoff waits); the stream is destroyed with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /** Called after each chunk with the bytes received so far and the file size (bytes). */
  readonly onProgress?: ((bytesReceived: number, totalBytes: number) => void) | undefined;
}

/** A verified file: what was received and what it took. */
export interface VerifiedFileResult {
  /** SAFE-relative path. */
  readonly path: string;
  /** Bytes received (= the manifest size). */
  readonly bytes: number;
  /** SHA3-256 of the bytes, lower-case hex (= the manifest's). */
  readonly sha3_256: string;
  /** HTTP requests sent for this file. */
  readonly requests: number;
  /** Range resumes after a cut connection. */
  readonly resumes: number;
  /** 429 answers absorbed. */
  readonly rateLimited: number;
  /** Token refreshes after a 401. */
  readonly tokenRefreshes: number;
}

/**
 * A Node Readable producing exactly one file's bytes, verified against its manifest entry.
 *
 * It starts downloading on the first read and respects backpressure (at most ~1 MiB buffered; the
 * socket is not read while the consumer is behind). It fails (is destroyed) with:
 * - `upstream_integrity` (retryable): more bytes than the manifest size (as soon as they arrive), a
 *   size or `Content-Length`/`Content-Range` total that disagrees with the manifest, or a SHA3-256
 *   mismatch (checked before the stream ends);
 * - {@link RestartRequiredError} (`upstream_unavailable`, retryable): a resume the server cannot serve;
 * - `upstream_unavailable` (retryable): `retry.attempts` resumes in a row without a byte, more than
 *   `retry.maxResumes` resumes, or `authorizedGet`'s 5xx/network budget spent;
 * - `upstream_rate_limited` (retryable, `retryAfterMs`), `upstream_auth` (not retryable),
 *   `product_not_found` (not retryable) as `authorizedGet` raises them;
 * - the signal's reason when `signal` aborts.
 */
export class VerifiedFileStream extends Readable {
  /** The file being streamed. */
  readonly file: SafeFile;
  /** The `…/$value` URL on the download host. */
  readonly url: string;
  /** Resolves (before `end`) when the file is complete and verified; rejects with the stream's error. */
  readonly result: Promise<VerifiedFileResult>;

  readonly #ctx: FileDownloadContext;
  readonly #req: VerifiedFileRequest;
  readonly #retry: Readonly<RetryOptions>;
  readonly #abort: LinkedController;
  readonly #hash = createHash('sha3-256');
  readonly #stats: AuthorizedGetStats = { requests: 0, rateLimited: 0, tokenRefreshes: 0 };
  #received = 0;
  #resumes = 0;
  #sha3: string | undefined;
  #started = false;
  #settled = false;
  #wake: (() => void) | undefined;
  #resolve!: (r: VerifiedFileResult) => void;
  #reject!: (e: Error) => void;

  constructor(ctx: FileDownloadContext, req: VerifiedFileRequest) {
    super({ highWaterMark: STREAM_HIGH_WATER_MARK });
    this.#ctx = ctx;
    this.#req = req;
    this.#retry = resolveRetryOptions(ctx.retry);
    this.file = req.file;
    this.url = nodeValueUrl(ctx.downloadUrl, req.productId, req.safeName, req.file.path);
    this.result = new Promise<VerifiedFileResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Nobody has to await `result`; its rejection is also the stream's 'error'.
    this.result.catch(() => undefined);
    this.#abort = linkedController(req.signal);
    // The caller's abort destroys the stream at once, whatever it is doing (waiting included).
    this.#abort.signal.addEventListener('abort', () => {
      if (!this.destroyed && !this.#settled) this.destroy(abortReason(this.#abort.signal));
    }, { once: true });
  }

  /** Bytes received and hashed so far. */
  get bytesReceived(): number {
    return this.#received;
  }

  /** The verified SHA3-256 (lower-case hex), once the file is complete; `undefined` before. */
  get sha3_256(): string | undefined {
    return this.#sha3;
  }

  override _read(): void {
    if (!this.#started) {
      this.#started = true;
      void this.#run();
      return;
    }
    this.#wakeReader();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const reason = error ?? new Error('the download stream was destroyed before it ended');
    if (!this.#abort.signal.aborted) this.#abort.controller.abort(reason);
    this.#abort.dispose();
    this.#wakeReader();
    this.#fail(reason);
    callback(error);
  }

  async #run(): Promise<void> {
    try {
      await this.#transfer();
      const sha3 = this.#hash.digest('hex');
      const { size, sha3_256: expected, path } = this.file;
      if (this.#received !== size) {
        throw this.#integrity(`received ${this.#received} bytes, manifest.safe says ${size}`);
      }
      if (sha3 !== expected) throw this.#integrity(`SHA3-256 is ${sha3}, manifest.safe says ${expected}`);
      this.#sha3 = sha3;
      const result: VerifiedFileResult = Object.freeze({
        path,
        bytes: this.#received,
        sha3_256: sha3,
        requests: this.#stats.requests,
        resumes: this.#resumes,
        rateLimited: this.#stats.rateLimited,
        tokenRefreshes: this.#stats.tokenRefreshes,
      });
      this.#settled = true;
      this.#resolve(result);
      this.#abort.dispose();
      this.#ctx.logger?.debug({ ...result }, 'CDSE file verified');
      // Only now may the stream end: every check above failed the stream instead.
      this.push(null);
    } catch (err) {
      const error = this.#abort.signal.aborted && !(err instanceof UpstreamError) ? abortReason(this.#abort.signal) : toError(err);
      if (!this.destroyed) this.destroy(error);
      else this.#fail(error);
    }
  }

  /** Receive bytes until the file is complete, resuming cut connections. */
  async #transfer(): Promise<void> {
    const retry = this.#retry;
    const what = `download of ${this.#req.safeName}/${this.file.path}`;
    let cutsWithoutProgress = 0;
    for (;;) {
      const offset = this.#received;
      const attempt = linkedController(this.#abort.signal);
      try {
        const response = await authorizedGet(
          this.url,
          {
            tokens: this.#ctx.tokens,
            retry,
            agent: this.#ctx.agent,
            signal: attempt.signal,
            headers: {
              ...(this.#ctx.userAgent === undefined ? {} : { 'User-Agent': this.#ctx.userAgent }),
              ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}),
            },
            what,
            logger: this.#ctx.logger,
            random: this.#ctx.random,
            onRateLimited: this.#ctx.onRateLimited,
          },
          this.#stats,
        );
        this.#checkStart(response, offset);
        await this.#pump(response.body as Readable, attempt);
        if (this.#received === this.file.size) return;
        // A clean end before the size: the server closed early without saying so.
        throw new Error(`the body ended after ${this.#received} of ${this.file.size} bytes`);
      } catch (err) {
        if (this.#abort.signal.aborted) throw abortReason(this.#abort.signal);
        if (err instanceof UpstreamError) {
          // Asked to resume past the server's end of file: it has fewer bytes than the manifest says.
          if (err.status === 416) throw this.#integrity(`the server has no bytes from ${offset} on (416), manifest.safe says ${this.file.size}`, err);
          throw err;
        }
        // All bytes in: the cut came after the last one, nothing to resume.
        if (this.#received === this.file.size) return;
        // A cut after progress starts a new streak; `attempts` tries in a row without a byte give up.
        cutsWithoutProgress = this.#received > offset ? 0 : cutsWithoutProgress + 1;
        this.#resumes++;
        if (this.#resumes > retry.maxResumes || cutsWithoutProgress >= retry.attempts) {
          throw new UpstreamError(
            'upstream_unavailable',
            `CDSE ${what} failed: connection cut at byte ${this.#received} of ${this.file.size} ` +
              `(${this.#resumes} cuts, ${cutsWithoutProgress} without progress): ${toError(err).message}`,
            { retryable: true, httpStatus: 503, cause: err },
          );
        }
        const wait = backoffDelayMs(Math.max(0, cutsWithoutProgress - 1), retry, this.#ctx.random);
        this.#ctx.logger?.warn(
          { err: toError(err).message, received: this.#received, size: this.file.size, resume: this.#resumes, waitMs: wait },
          `CDSE ${what}: connection cut, resuming`,
        );
        await sleep(wait, this.#abort.signal);
      } finally {
        attempt.dispose();
      }
    }
  }

  /** Check that a 2xx answer continues exactly where we are; otherwise fail before reading it. */
  #checkStart(response: Response, offset: number): void {
    const size = this.file.size;
    const fail = (err: Error): never => {
      (response.body as Readable | null)?.destroy();
      throw err;
    };
    if (response.status === 206) {
      const header = response.headers.get('content-range');
      const range = parseContentRange(header);
      if (!range || range.start !== offset) {
        fail(new RestartRequiredError(`CDSE answered Range bytes=${offset}- with Content-Range ${header ?? '(none)'}; restart ${this.file.path}`, offset, 206));
      }
      if (range && range.total !== undefined && range.total !== size) {
        fail(this.#integrity(`Content-Range total is ${range.total} bytes, manifest.safe says ${size}`));
      }
      return;
    }
    if (response.status === 200) {
      if (offset > 0) {
        fail(new RestartRequiredError(`CDSE ignored Range bytes=${offset}- (HTTP 200, no range support): restart ${this.file.path}`, offset, 200));
      }
      const length = response.headers.get('content-length');
      if (length !== null && Number(length) !== size) fail(this.#integrity(`Content-Length is ${length} bytes, manifest.safe says ${size}`));
      return;
    }
    fail(new UpstreamError('upstream_unavailable', `CDSE answered HTTP ${response.status} to a file download`, { status: response.status, retryable: true, httpStatus: 503 }));
  }

  /** Hash, count and push one body's bytes; an idle timer cuts a stalled connection. */
  async #pump(body: Readable, attempt: LinkedController): Promise<void> {
    const idleMs = this.#retry.idleTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => attempt.controller.abort(new Error(`no data for ${idleMs} ms`)), idleMs);
    };
    arm();
    try {
      for await (const chunk of body) {
        const buf = chunk as Buffer;
        if (this.#received + buf.length > this.file.size) {
          throw this.#integrity(`the server sent more than the ${this.file.size} bytes manifest.safe lists`);
        }
        this.#hash.update(buf);
        this.#received += buf.length;
        this.#progress();
        if (!this.push(buf)) {
          // Backpressure: stop reading the socket (and the idle clock) until the consumer asks.
          clearTimeout(timer);
          await this.#waitForRead();
          if (this.#abort.signal.aborted) throw abortReason(this.#abort.signal);
        }
        arm();
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #progress(): void {
    const onProgress = this.#req.onProgress;
    if (!onProgress) return;
    try {
      onProgress(this.#received, this.file.size);
    } catch (err) {
      this.#ctx.logger?.warn({ err }, 'onProgress callback threw; ignored');
    }
  }

  #waitForRead(): Promise<void> {
    if (this.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #fail(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#reject(error);
  }

  #integrity(why: string, cause?: unknown): UpstreamError {
    return new UpstreamError('upstream_integrity', `CDSE file ${this.#req.safeName}/${this.file.path} failed verification: ${why}`, {
      retryable: true,
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/**
 * Open a verified stream of one product file (see {@link VerifiedFileStream}). Nothing is requested
 * until the stream is first read.
 */
export function openVerifiedFileStream(ctx: FileDownloadContext, req: VerifiedFileRequest): VerifiedFileStream {
  return new VerifiedFileStream(ctx, req);
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
