/**
 * Faults on demand: the upstream misbehaviours a CDSE client must survive (DESIGN.md "The
 * upstream: CDSE"): 5xx bursts, 429 with or without `Retry-After`, a connection cut mid-stream,
 * a slow stream, an access token that expires mid-run, and a file whose bytes or length differ
 * from what the manifest says.
 *
 * Faults wait in a list; each request takes the first fault that matches it (target, product and
 * file substrings), and a fault applies to `count` requests (default 1) or, with `probability`,
 * to each matching request with that probability (unlimited count unless one is given). When no
 * listed fault matches a band download, seeded chaos may roll one (see {@link ChaosOptions}).
 */

/**
 * Which requests a fault applies to: band file downloads, `manifest.safe`, metadata file
 * downloads (`MTD_TL.xml`, `MTD_MSIL*.xml`), Nodes listings, catalogue requests, token requests, or
 * any of them. @defaultValue `band`
 */
export type FaultTarget = 'band' | 'manifest' | 'metadata' | 'listing' | 'catalogue' | 'token' | 'any';

/** What a fault does. */
export type FaultEffect =
  /** Answer `status` (e.g. 500/502/503) at once; 5xx bodies are nginx-style HTML unless `body` is given. */
  | { kind: 'status'; status: number; body?: string; retryAfterSeconds?: number }
  /** Answer the real 429 `DAT-ZIP-100` body, with `Retry-After: <seconds>` when given. */
  | { kind: 'status429'; retryAfterSeconds?: number }
  /** Send the headers and `bytes` body bytes, then destroy the socket. */
  | { kind: 'cutAfterBytes'; bytes: number }
  /** Stream at most `bytesPerSecond` bytes per second. */
  | { kind: 'slowBytesPerSecond'; bytesPerSecond: number }
  /** Answer 401 as if the access token had expired, and invalidate that token. */
  | { kind: 'expireToken' }
  /** Serve the file with the byte at `offset` (default: the middle) flipped: SHA3 mismatch. */
  | { kind: 'corrupt'; offset?: number }
  /** Serve `bytes` (default 1) fewer bytes, with a Content-Length that agrees: size mismatch. */
  | { kind: 'truncate'; bytes?: number };

/** Which requests a fault matches, and how often it applies. */
export interface FaultMatch {
  /** @defaultValue `band` */
  target?: FaultTarget;
  /** Substring of the product's scene id (e.g. the full name, or `T32TNS`). */
  product?: string;
  /** Substring of the SAFE-relative file path (e.g. `_B04`, `manifest.safe`). */
  file?: string;
  /** How many requests the fault applies to. @defaultValue 1, or unlimited with `probability` */
  count?: number;
  /** Apply to each matching request with this probability (0–1], drawn from the seeded PRNG. */
  probability?: number;
}

/** A fault to inject: an effect and where it applies. */
export type Fault = FaultEffect & FaultMatch;

/** A listed fault: `remaining` is `null` when unlimited. */
export type ActiveFault = Fault & { id: number; remaining: number | null; applied: number };

/**
 * Seeded random faults on band downloads, for chaos tests. Each probability is per request
 * (0–1, default 0); rolls happen in this order and the first hit wins: 429, 503, cut, slow.
 */
export interface ChaosOptions {
  /** PRNG seed: the same seed and the same request order give the same faults. */
  seed: number;
  rate429Probability?: number;
  errorProbability?: number;
  /** Cut the connection after a random number of bytes (uniform over the file). */
  cutProbability?: number;
  slowProbability?: number;
  /** Rate of a slow stream, bytes/s. @defaultValue 65536 */
  slowBytesPerSecond?: number;
}

/** The request a fault is sought for. */
export interface FaultRequest {
  target: Exclude<FaultTarget, 'any'>;
  sceneId?: string;
  path?: string;
  /** Size in bytes of the file served (band, manifest, metadata), for chaos cut offsets. */
  size?: number;
}

const KINDS = ['status', 'status429', 'cutAfterBytes', 'slowBytesPerSecond', 'expireToken', 'corrupt', 'truncate'];
const TARGETS = ['band', 'manifest', 'metadata', 'listing', 'catalogue', 'token', 'any'];
/** The targets that are file downloads (stream faults apply to them only). */
const FILE_TARGETS: ReadonlySet<string> = new Set(['band', 'manifest', 'metadata']);
const FILE_ONLY = new Set(['cutAfterBytes', 'slowBytesPerSecond', 'expireToken', 'corrupt', 'truncate']);

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Validate a fault given as JSON (`POST /__sim/faults`) or in-process.
 * @throws TypeError naming the bad field.
 */
export function parseFault(input: unknown): Fault {
  if (typeof input !== 'object' || input === null) throw new TypeError('a fault must be an object');
  const f = input as Record<string, unknown>;
  const isNum = (k: string, min: number, max = Number.MAX_SAFE_INTEGER): boolean =>
    typeof f[k] === 'number' && f[k] >= min && f[k] <= max;
  const need = (ok: boolean, what: string): void => {
    if (!ok) throw new TypeError(`fault ${JSON.stringify(input)}: ${what}`);
  };
  need(typeof f.kind === 'string' && KINDS.includes(f.kind), `kind must be one of ${KINDS.join(', ')}`);
  need(f.target === undefined || TARGETS.includes(f.target as string), `target must be one of ${TARGETS.join(', ')}`);
  need(f.product === undefined || typeof f.product === 'string', 'product must be a string');
  need(f.file === undefined || typeof f.file === 'string', 'file must be a string');
  need(f.count === undefined || isNum('count', 1), 'count must be a number >= 1');
  need(f.probability === undefined || (isNum('probability', 0, 1) && (f.probability as number) > 0), 'probability must be in (0, 1]');
  need(f.retryAfterSeconds === undefined || isNum('retryAfterSeconds', 0), 'retryAfterSeconds must be a number >= 0');
  if (f.kind === 'status') need(isNum('status', 100, 599), 'status must be an HTTP status 100–599');
  if (f.kind === 'status') need(f.body === undefined || typeof f.body === 'string', 'body must be a string');
  if (f.kind === 'cutAfterBytes') need(isNum('bytes', 0), 'bytes must be a number >= 0');
  if (f.kind === 'slowBytesPerSecond') need(isNum('bytesPerSecond', 1), 'bytesPerSecond must be a number >= 1');
  if (f.kind === 'corrupt') need(f.offset === undefined || isNum('offset', 0), 'offset must be a number >= 0');
  if (f.kind === 'truncate') need(f.bytes === undefined || isNum('bytes', 1), 'bytes must be a number >= 1');
  const target = (f.target as FaultTarget | undefined) ?? 'band';
  need(!FILE_ONLY.has(f.kind as string) || FILE_TARGETS.has(target) || target === 'any', `${f.kind as string} applies to file downloads only (target band, manifest, metadata or any)`);
  return { ...(f as unknown as Fault), target };
}

/** The fault list and chaos settings of one sim. */
export class FaultInjector {
  private faults: ActiveFault[] = [];
  private nextId = 1;
  private chaos: ChaosOptions | undefined;
  private random: () => number;

  constructor(chaos?: ChaosOptions) {
    this.random = seededRandom(chaos?.seed ?? 1);
    this.setChaos(chaos);
  }

  /** List a fault. @throws TypeError when it is invalid (see {@link parseFault}). */
  add(fault: Fault): ActiveFault {
    const f = parseFault(fault);
    const remaining = f.count ?? (f.probability === undefined ? 1 : null);
    const active: ActiveFault = { ...f, id: this.nextId++, remaining, applied: 0 };
    this.faults.push(active);
    return active;
  }

  /** Remove every listed fault and turn chaos off. */
  clear(): void {
    this.faults = [];
    this.chaos = undefined;
  }

  /** The listed faults still able to apply. */
  list(): ActiveFault[] {
    return this.faults.map((f) => ({ ...f }));
  }

  /** Turn seeded chaos on (reseeding the PRNG) or off (`undefined`). */
  setChaos(chaos: ChaosOptions | undefined): void {
    if (chaos !== undefined && (typeof chaos.seed !== 'number' || !Number.isFinite(chaos.seed))) throw new TypeError('chaos.seed must be a number');
    this.chaos = chaos === undefined ? undefined : { ...chaos };
    if (chaos) this.random = seededRandom(chaos.seed);
  }

  /** The chaos settings, if on. */
  chaosOptions(): ChaosOptions | undefined {
    return this.chaos ? { ...this.chaos } : undefined;
  }

  /** The fault to apply to `req` (consuming one use of it), or `undefined`. Tagged `chaos:` when rolled. */
  take(req: FaultRequest): (FaultEffect & { source: 'listed' | 'chaos' }) | undefined {
    for (const f of this.faults) {
      const target = f.target ?? 'band';
      if (target !== 'any' && target !== req.target) continue;
      if (target === 'any' && FILE_ONLY.has(f.kind) && !FILE_TARGETS.has(req.target)) continue;
      if (f.product !== undefined && !(req.sceneId ?? '').includes(f.product.replace(/\.SAFE$/, ''))) continue;
      if (f.file !== undefined && !(req.path ?? '').includes(f.file)) continue;
      if (f.probability !== undefined && this.random() >= f.probability) continue;
      f.applied++;
      if (f.remaining !== null && --f.remaining <= 0) this.faults = this.faults.filter((x) => x !== f);
      return { ...f, source: 'listed' };
    }
    return req.target === 'band' ? this.rollChaos(req) : undefined;
  }

  private rollChaos(req: FaultRequest): (FaultEffect & { source: 'chaos' }) | undefined {
    const c = this.chaos;
    if (!c) return undefined;
    if (this.random() < (c.rate429Probability ?? 0)) return { kind: 'status429', source: 'chaos' };
    if (this.random() < (c.errorProbability ?? 0)) return { kind: 'status', status: 503, source: 'chaos' };
    if (this.random() < (c.cutProbability ?? 0)) return { kind: 'cutAfterBytes', bytes: Math.floor(this.random() * (req.size ?? 0)), source: 'chaos' };
    if (this.random() < (c.slowProbability ?? 0)) return { kind: 'slowBytesPerSecond', bytesPerSecond: c.slowBytesPerSecond ?? 65_536, source: 'chaos' };
    return undefined;
  }
}
