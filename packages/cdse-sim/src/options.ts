/** The sim's options, their defaults, and the state its routes share. */
import type { Logger } from '@scenecache/core';
import type { CounterStore } from './counters.js';
import type { ChaosOptions, FaultInjector } from './fault-injection.js';
import type { ProductCatalogue } from './product-catalogue.js';
import type { SimUser, TokenService } from './token-service.js';

/**
 * Where the fixtures are by default: the repository's `fixtures/cdse` (a verbatim copy of the
 * project's shared fixtures), three levels above this module both as
 * `packages/cdse-sim/src/*.ts` (ts-jest) and as `packages/cdse-sim/dist/*.js` (node).
 */
export const DEFAULT_FIXTURES_DIR: URL = new URL('../../../fixtures/cdse/', import.meta.url);

/** The default account: `demo@scenecache.dev` / `demo`. */
export const DEFAULT_USER: Readonly<SimUser> = Object.freeze({ username: 'demo@scenecache.dev', password: 'demo' });

/** Options of `startCdseSim`. Sizes in bytes, rates in bytes per second, lifetimes in seconds. */
export interface CdseSimOptions {
  /** TCP port; 0 picks a free one. @defaultValue 0 */
  port: number;
  /** Interface to listen on. @defaultValue `127.0.0.1` */
  host: string;
  /** Directory of the fixture manifests. @defaultValue {@link DEFAULT_FIXTURES_DIR} */
  fixturesDir: string | URL;
  /** Band file sizes are the real ones times this (rounded, minimum 1 byte); 0.001 keeps tests fast. @defaultValue 1 */
  sizeScale: number;
  /** Band streams allowed at once per sim (CDSE: 4 per account); the next one gets 429 DAT-ZIP-100. @defaultValue 4 */
  maxConcurrentDownloads: number;
  /**
   * Whether `manifest.safe` and metadata file (`MTD_TL.xml`, `MTD_MSIL*.xml`) downloads also take a
   * download slot (and can get 429). Real CDSE likely counts every `$value` stream, but these small
   * files take milliseconds. @defaultValue false
   */
  manifestCountsAsDownload: boolean;
  /** Answer `Range` with 206; when false, ignore it and send the whole file with 200. @defaultValue true */
  rangeSupport: boolean;
  /** Access token lifetime. @defaultValue 600 (CDSE) */
  accessTokenTtlSeconds: number;
  /** Refresh token lifetime. @defaultValue 3600 (CDSE) */
  refreshTokenTtlSeconds: number;
  /** Accepted accounts. @defaultValue [{@link DEFAULT_USER}] */
  users: SimUser[];
  /** Product names (with or without `.SAFE`) the catalogue does not have. @defaultValue [] */
  unknownProducts: Iterable<string>;
  /**
   * Discriminators (`YYYYMMDDTHHMMSS`, the name's last field) whose products the catalogue does not
   * have, so a test can name a missing product without configuring the sim. @defaultValue ['99991231T235959']
   */
  missingDiscriminators: Iterable<string>;
  /**
   * Per-stream rate limit (CDSE: ~20 MB/s); `undefined` = unlimited. Metadata files, served at
   * their real size, stream at this rate divided by `sizeScale`. @defaultValue undefined
   */
  bytesPerSecond: number | undefined;
  /** Seeded random faults from the start (see fault-injection.ts). @defaultValue undefined (off) */
  chaos: ChaosOptions | undefined;
  /** pino level. @defaultValue `warn` */
  logLevel: string;
  /** Use this logger instead of creating one (logLevel is then ignored). */
  logger: Logger | undefined;
}

/**
 * Defaults merged with `options`, validated.
 * @throws TypeError naming the first bad option.
 */
export function resolveOptions(options: Partial<CdseSimOptions> = {}): CdseSimOptions {
  const o: CdseSimOptions = {
    port: 0,
    host: '127.0.0.1',
    fixturesDir: DEFAULT_FIXTURES_DIR,
    sizeScale: 1,
    maxConcurrentDownloads: 4,
    manifestCountsAsDownload: false,
    rangeSupport: true,
    accessTokenTtlSeconds: 600,
    refreshTokenTtlSeconds: 3600,
    users: [{ ...DEFAULT_USER }],
    unknownProducts: [],
    missingDiscriminators: ['99991231T235959'],
    bytesPerSecond: undefined,
    chaos: undefined,
    logLevel: 'warn',
    logger: undefined,
  };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  const check = (ok: boolean, what: string): void => {
    if (!ok) throw new TypeError(`cdse-sim: invalid option ${what}`);
  };
  check(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535, `port ${o.port}`);
  check(o.sizeScale > 0 && Number.isFinite(o.sizeScale), `sizeScale ${o.sizeScale} (must be > 0)`);
  check(Number.isInteger(o.maxConcurrentDownloads) && o.maxConcurrentDownloads >= 1, `maxConcurrentDownloads ${o.maxConcurrentDownloads}`);
  check(o.accessTokenTtlSeconds > 0, `accessTokenTtlSeconds ${o.accessTokenTtlSeconds}`);
  check(o.refreshTokenTtlSeconds > 0, `refreshTokenTtlSeconds ${o.refreshTokenTtlSeconds}`);
  check(o.bytesPerSecond === undefined || o.bytesPerSecond > 0, `bytesPerSecond ${o.bytesPerSecond}`);
  check(Array.isArray(o.users) && o.users.length > 0, 'users (at least one account)');
  return o;
}

/** Everything the routes share (internal). */
export interface SimContext {
  readonly options: CdseSimOptions;
  readonly catalogue: ProductCatalogue;
  readonly tokens: TokenService;
  readonly counters: CounterStore;
  readonly faults: FaultInjector;
  readonly log: Logger;
  /** Band streams holding a download slot now. */
  slotsInUse: number;
}
