/**
 * `CdseClient`: the CDSE operations the download pipeline needs, wired from settings — catalogue
 * lookup, `manifest.safe`, locating a band's file, and verified band streaming — over one shared
 * token provider and one set of keep-alive agents.
 */
import type { Redis } from 'ioredis';
import { UpstreamError, type Band, type Logger, type SafeFile, type SentinelProduct, type Settings } from '@scenecache/core';
import { openVerifiedFileStream, type VerifiedFileRequest, type VerifiedFileStream } from './band-download.js';
import { CdseTokenProvider, type CdseTokenProviderOptions } from './cdse-token.js';
import { fetchProductManifest, locateBandFile } from './product-manifest.js';
import { lookupProduct, type CdseProduct } from './product-lookup.js';
import { resolveRetryOptions, type RetryOptions } from './retry-policy.js';
import { createKeepAliveAgents, type KeepAliveAgents } from './upstream-http.js';
import { IntegrityFailures } from './integrity-failures.js';
import { NotFoundCache } from './not-found-cache.js';

/** The settings a {@link CdseClient} reads. */
export type CdseSettings = Pick<
  Settings,
  'cdseTokenUrl' | 'cdseCatalogueUrl' | 'cdseDownloadUrl' | 'cdseUsername' | 'cdsePassword' | 'cdseTotp' | 'queuePrefix'
>;

/** Token tuning passed through to {@link CdseTokenProvider} (each option documents its default). */
export type CdseTokenTuning = Pick<
  CdseTokenProviderOptions,
  'refreshMarginMs' | 'lockTtlMs' | 'lockWaitMs' | 'lockPollMs' | 'requestTimeoutMs' | 'clientId'
>;

/** Options of {@link CdseClient}. */
export interface CdseClientOptions {
  readonly settings: CdseSettings;
  /** Holds the fleet's shared token (any connection; commands are short). */
  readonly redis: Redis;
  readonly logger: Logger;
  /** Prefix of the token's Redis keys; every process of a fleet must use the same. @defaultValue `settings.queuePrefix` */
  readonly keyPrefix?: string | undefined;
  /** Retry budgets and delays of downloads; see {@link RetryOptions} for each default. */
  readonly retry?: Partial<RetryOptions> | undefined;
  readonly token?: CdseTokenTuning | undefined;
  /** Timeout of a catalogue lookup (ms). @defaultValue 30000 */
  readonly lookupTimeoutMs?: number | undefined;
  /** Keep-alive sockets per upstream host. @defaultValue 64 */
  readonly maxSockets?: number | undefined;
  /** Jitter source in `[0, 1)`, for tests. @defaultValue `Math.random` */
  readonly random?: (() => number) | undefined;
  /** `User-Agent` of file downloads, e.g. `scenecache-worker (host:pid)`. @defaultValue `scenecache` */
  readonly userAgent?: string | undefined;
  /**
   * Seconds a "product not found" answer of the catalogue is remembered fleet-wide (setting
   * `PRODUCT_NOT_FOUND_TTL_SECONDS`); 0 = ask the catalogue every time. @defaultValue 3600
   */
  readonly notFoundTtlSeconds?: number | undefined;
  /**
   * Seconds a file's verification failures are remembered fleet-wide; two within it quarantine the
   * file (setting `UPSTREAM_INTEGRITY_TTL_SECONDS`, see integrity-failures.ts); 0 = off.
   * @defaultValue 3600
   */
  readonly integrityTtlSeconds?: number | undefined;
  /**
   * Called on every 429 answer of the catalogue, `manifest.safe` or a file download, whether the
   * client absorbed it by backing off or gave up (e.g. to count them in a metric).
   */
  readonly onRateLimited?: (() => void) | undefined;
}

/** Options common to the client's calls. */
export interface CdseCallOptions {
  readonly signal?: AbortSignal | undefined;
}

/**
 * The CDSE client. One per process; `close()` at shutdown.
 *
 * ```ts
 * const cdse = new CdseClient({ settings, redis, logger });
 * const product = parseProductName(sceneId);
 * const entry = await cdse.lookupProduct(product);
 * const files = await cdse.getManifest(entry.Id, product.safeName);
 * const file = cdse.locateBandFile(files, resolveBand(product.level, 'B04'), product.safeName);
 * const stream = cdse.openBandFile({ productId: entry.Id, safeName: product.safeName, file, signal });
 * await upload(stream); // fails, not ends, when the bytes do not match the manifest
 * ```
 */
export class CdseClient {
  /** The shared token provider (also for callers that talk to CDSE themselves). */
  readonly tokens: CdseTokenProvider;
  /** The fleet's memory of files that failed verification (quarantine after two failures). */
  readonly integrityFailures: IntegrityFailures;
  readonly #settings: CdseSettings;
  readonly #logger: Logger;
  readonly #retry: Readonly<RetryOptions>;
  readonly #agents: KeepAliveAgents;
  readonly #lookupTimeoutMs: number | undefined;
  readonly #random: (() => number) | undefined;
  readonly #userAgent: string;
  readonly #onRateLimited: (() => void) | undefined;
  readonly #notFound: NotFoundCache;

  constructor(options: CdseClientOptions) {
    this.#settings = options.settings;
    this.#logger = options.logger.child({ component: 'cdse' });
    this.#retry = resolveRetryOptions(options.retry);
    this.#agents = createKeepAliveAgents(options.maxSockets);
    this.#lookupTimeoutMs = options.lookupTimeoutMs;
    this.#random = options.random;
    this.#userAgent = options.userAgent ?? 'scenecache';
    this.#onRateLimited = options.onRateLimited;
    this.#notFound = new NotFoundCache(options.redis, options.keyPrefix ?? options.settings.queuePrefix, options.notFoundTtlSeconds ?? 3_600);
    this.integrityFailures = new IntegrityFailures(options.redis, options.keyPrefix ?? options.settings.queuePrefix, options.integrityTtlSeconds ?? 3_600);
    this.tokens = new CdseTokenProvider({
      ...options.token,
      redis: options.redis,
      tokenUrl: options.settings.cdseTokenUrl,
      username: options.settings.cdseUsername,
      password: options.settings.cdsePassword,
      totp: options.settings.cdseTotp,
      keyPrefix: options.keyPrefix ?? options.settings.queuePrefix,
      logger: this.#logger,
      agent: this.#agents.choose,
    });
  }

  /**
   * The catalogue entry of a product (no token needed).
   * @param product - a parsed name, or a SAFE name `<sceneId>.SAFE`.
   * A "not found" answer is remembered fleet-wide for `notFoundTtlSeconds`: a repeat fails the
   * same way without a catalogue request.
   * @throws UpstreamError `product_not_found` (not retryable), `upstream_unavailable`,
   *   `upstream_rate_limited` — see `lookupProduct`.
   */
  async lookupProduct(product: SentinelProduct | string, options: CdseCallOptions = {}): Promise<CdseProduct> {
    const safeName = typeof product === 'string' ? (product.endsWith('.SAFE') ? product : `${product}.SAFE`) : product.safeName;
    const known = await this.#notFound.get(safeName);
    if (known !== undefined) {
      throw new UpstreamError('product_not_found', `${known} (remembered for up to ${this.#notFound.ttlSeconds} s; no catalogue request made)`, { status: 404, retryable: false, httpStatus: 404 });
    }
    try {
      return await lookupProduct(safeName, {
        catalogueUrl: this.#settings.cdseCatalogueUrl,
        agent: this.#agents.choose,
        signal: options.signal,
        timeoutMs: this.#lookupTimeoutMs,
      });
    } catch (err) {
      if (err instanceof UpstreamError && err.code === 'product_not_found') await this.#notFound.remember(safeName, err.message);
      if (err instanceof UpstreamError && err.status === 429) this.#onRateLimited?.();
      throw err;
    }
  }

  /**
   * Every file of a product with its size and SHA3-256, from its `manifest.safe`.
   * @throws UpstreamError — see `fetchProductManifest`.
   */
  async getManifest(productId: string, safeName: string, options: CdseCallOptions = {}): Promise<SafeFile[]> {
    return fetchProductManifest(productId, safeName, {
      downloadUrl: this.#settings.cdseDownloadUrl,
      tokens: this.tokens,
      retry: this.#retry,
      agent: this.#agents.choose,
      signal: options.signal,
      logger: this.#logger,
      random: this.#random,
      onRateLimited: this.#onRateLimited,
    });
  }

  /**
   * The manifest entry of a band's file.
   * @throws UpstreamError `band_not_in_product` (not retryable) when the product lacks it.
   */
  locateBandFile(files: readonly SafeFile[], band: Band, safeName: string): SafeFile {
    return locateBandFile(files, band, safeName);
  }

  /**
   * A verified stream of one file (see `VerifiedFileStream` for its errors). Its `result` promise
   * gives the byte count and SHA3-256 once verified, before the stream ends.
   */
  openBandFile(request: VerifiedFileRequest): VerifiedFileStream {
    return openVerifiedFileStream(
      {
        downloadUrl: this.#settings.cdseDownloadUrl,
        tokens: this.tokens,
        retry: this.#retry,
        agent: this.#agents.choose,
        logger: this.#logger.child({ productId: request.productId, file: request.file.path }),
        random: this.#random,
        userAgent: this.#userAgent,
        onRateLimited: this.#onRateLimited,
      },
      request,
    );
  }

  /**
   * A small file of the product (a metadata file: `MTD_TL.xml`, `MTD_MSIL2A.xml`), read whole into
   * memory through the same verified stream as band files (size and the manifest's SHA3-256
   * checked, resumes, 429 backoff, token refresh).
   * @param file - its manifest entry; at most 16 MiB (metadata files are under 1 MB).
   * @throws RangeError when `file.size` is over 16 MiB; the stream's errors (see {@link VerifiedFileStream}).
   */
  async readSmallFile(productId: string, safeName: string, file: SafeFile, options: CdseCallOptions = {}): Promise<Buffer> {
    if (file.size > 16 * 1024 * 1024) throw new RangeError(`${file.path} is ${file.size} bytes: too large to read into memory`);
    const stream = this.openBandFile({ productId, safeName, file, signal: options.signal });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    await stream.result;
    return Buffer.concat(chunks);
  }

  /** Close idle keep-alive sockets. The Redis connection is the caller's. */
  close(): void {
    this.#agents.destroy();
  }
}
