/**
 * The whole CdseClient against cdse-sim (a CDSE-compatible upstream) with the token shared through
 * real Redis: lookup, manifest, verified band downloads, faults, token sharing and refresh.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Redis } from 'ioredis';
import { startCdseSim, type CdseSim, type CdseSimOptions } from '@scenecache/cdse-sim';
import { createLogger, parseProductName, resolveBand, UpstreamError, type SafeFile } from '@scenecache/core';
import { CdseClient, type CdseClientOptions } from '../src/cdse-client.js';
import type { VerifiedFileStream } from '../src/band-download.js';
import { isRestartRequired } from '../src/range-resume.js';
import { testRedis } from './helpers/redis.js';

const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const L1C = 'S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414';
const MISSING = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_99991231T235959';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const logger = createLogger('copernicus-test', 'silent');
const FAST = { baseDelayMs: 5, maxDelayMs: 100, attempts: 4, rateLimitAttempts: 50, responseTimeoutMs: 5_000, idleTimeoutMs: 5_000 };

let sim: CdseSim;
let redis: Redis;
let prefix: string;
let cleanup: () => Promise<void>;
const clients: CdseClient[] = [];
const extraRedis: Redis[] = [];

async function startSim(options: Partial<CdseSimOptions> = {}): Promise<void> {
  await sim?.close();
  sim = await startCdseSim({ sizeScale: 0.01, logLevel: 'silent', ...options });
}

function client(extra: Partial<CdseClientOptions> = {}): CdseClient {
  const c = new CdseClient({
    settings: {
      cdseTokenUrl: sim.urls.tokenUrl,
      cdseCatalogueUrl: sim.urls.catalogueUrl,
      cdseDownloadUrl: sim.urls.downloadUrl,
      cdseUsername: sim.credentials.username,
      cdsePassword: sim.credentials.password,
      cdseTotp: undefined,
      queuePrefix: prefix,
    },
    redis,
    logger,
    retry: FAST,
    token: { lockPollMs: 10 },
    ...extra,
  });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  ({ redis, prefix, cleanup } = testRedis());
  await startSim();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const r of extraRedis.splice(0)) await r.quit();
  await sim.close();
  await cleanup();
});

/** Poll `check` every 10 ms for up to 2 s. */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** Look up, read the manifest, locate the band: what the worker does before streaming. */
async function bandOf(c: CdseClient, name: string, bandId: string): Promise<{ productId: string; safeName: string; file: SafeFile }> {
  const product = parseProductName(name);
  const entry = await c.lookupProduct(product);
  const files = await c.getManifest(entry.Id, entry.Name);
  return { productId: entry.Id, safeName: entry.Name, file: c.locateBandFile(files, resolveBand(product.level, bandId), entry.Name) };
}

/** Drain a stream through sha3, as an upload would. */
async function drain(stream: VerifiedFileStream): Promise<{ sha3: string; bytes: number }> {
  const hash = createHash('sha3-256');
  let bytes = 0;
  await pipeline(stream, new Writable({
    write(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb();
    },
  }));
  return { sha3: hash.digest('hex'), bytes };
}

describe('CdseClient against cdse-sim', () => {
  it('looks a product up by name', async () => {
    const c = client();
    const p = await c.lookupProduct(parseProductName(L2A));
    expect(p.Name).toBe(`${L2A}.SAFE`);
    expect(p.Id).toBe(sim.productId(L2A));
    expect(p.Online).toBe(true);
    expect(p.ContentLength).toBeGreaterThan(0);
    await expect(c.lookupProduct(`${L1C}.SAFE`)).resolves.toMatchObject({ Name: `${L1C}.SAFE` });
  });

  it('an unknown product is product_not_found (not retryable)', async () => {
    await expect(client().lookupProduct(MISSING)).rejects.toMatchObject({ code: 'product_not_found', retryable: false });
  });

  it('remembers a product the catalogue does not have: the repeat, from any client of the fleet, asks nothing upstream', async () => {
    await expect(client().lookupProduct(MISSING)).rejects.toMatchObject({ code: 'product_not_found' });
    const asked = sim.counters().catalogueRequests;
    await expect(client().lookupProduct(MISSING)).rejects.toMatchObject({ code: 'product_not_found', retryable: false, message: expect.stringContaining('no catalogue request made') as string });
    expect(sim.counters().catalogueRequests).toBe(asked);
    expect(await redis.ttl(`${prefix}:cdse:not-found:${MISSING}.SAFE`)).toBeGreaterThan(3_500);
    // Products the catalogue has are not affected, and with a TTL of 0 every lookup asks.
    await expect(client().lookupProduct(L2A)).resolves.toMatchObject({ Name: `${L2A}.SAFE` });
    const off = client({ notFoundTtlSeconds: 0, keyPrefix: `${prefix}-off` });
    await expect(off.lookupProduct(MISSING)).rejects.toMatchObject({ code: 'product_not_found' });
    await expect(off.lookupProduct(MISSING)).rejects.toMatchObject({ code: 'product_not_found' });
    expect(sim.counters().catalogueRequests).toBe(asked + 3);
  });

  it('reads the manifest: every band file the sim serves, with its size and sha3', async () => {
    const c = client();
    const p = await c.lookupProduct(L2A);
    const files = await c.getManifest(p.Id, p.Name);
    const served = await sim.productFiles(L2A);
    expect(served.length).toBeGreaterThan(10);
    for (const f of served) expect(files).toContainEqual(f);
    expect(sim.counters().manifestRequests).toBe(1);
  });

  it('downloads a band verified against the manifest; one login, one download', async () => {
    const c = client();
    const { productId, safeName, file } = await bandOf(c, L2A, 'B04');
    expect(file.path).toMatch(/IMG_DATA\/R10m\/.*_B04_10m\.jp2$/);
    const stream = c.openBandFile({ productId, safeName, file });
    const { sha3, bytes } = await drain(stream);
    const served = (await sim.productFiles(L2A)).find((f) => f.path === file.path)!;
    expect(bytes).toBe(served.size);
    expect(sha3).toBe(served.sha3_256);
    await expect(stream.result).resolves.toMatchObject({ bytes: file.size, sha3_256: file.sha3_256, requests: 1, resumes: 0 });
    // Byte-identical with what the sim serves without faults.
    const expected = createHash('sha3-256');
    for await (const chunk of sim.fileBytes(L2A, file.path)) expected.update(chunk as Buffer);
    expect(sha3).toBe(expected.digest('hex'));
    await until(() => sim.downloadsOf(L2A, '_B04_10m.jp2').completed === 1);
    expect(sim.downloadsOf(L2A, '_B04_10m.jp2')).toMatchObject({ started: 1, completed: 1 });
    expect(sim.counters().tokenLogins).toBe(1);
  });

  it('an L1C band works the same way', async () => {
    const c = client();
    const { productId, safeName, file } = await bandOf(c, L1C, 'B8A');
    const { sha3 } = await drain(c.openBandFile({ productId, safeName, file }));
    expect(sha3).toBe(file.sha3_256);
  });

  it('corrupt bytes → upstream_integrity (retryable) and the stream never ends', async () => {
    const c = client();
    const band = await bandOf(c, L2A, 'B03');
    sim.addFault({ kind: 'corrupt', file: '_B03_10m' });
    const stream = c.openBandFile(band);
    let ended = false;
    stream.on('end', () => (ended = true));
    const err = await drain(stream).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code: 'upstream_integrity', retryable: true });
    expect(ended).toBe(false);
    // The caller retries the file: the next try is clean.
    const again = await drain(c.openBandFile(band));
    expect(again.sha3).toBe(band.file.sha3_256);
  });

  it('truncated bytes (Content-Length agrees with the short body) → upstream_integrity', async () => {
    const c = client();
    const band = await bandOf(c, L2A, 'B02');
    sim.addFault({ kind: 'truncate', bytes: 10, file: '_B02_10m' });
    await expect(drain(c.openBandFile(band))).rejects.toMatchObject({ code: 'upstream_integrity' });
  });

  it('a connection cut mid-stream resumes with Range (206)', async () => {
    const c = client();
    const band = await bandOf(c, L2A, 'B08');
    sim.addFault({ kind: 'cutAfterBytes', bytes: Math.floor(band.file.size / 3), file: '_B08_10m' });
    const stream = c.openBandFile(band);
    const { sha3 } = await drain(stream);
    expect(sha3).toBe(band.file.sha3_256);
    expect((await stream.result).resumes).toBe(1);
    await until(() => sim.downloadsOf(L2A, '_B08_10m.jp2').completed === 1);
    expect(sim.downloadsOf(L2A, '_B08_10m.jp2')).toMatchObject({ started: 2, ranged: 1, completed: 1 });
  });

  it('without range support, a cut asks the caller to restart the file', async () => {
    await startSim({ rangeSupport: false });
    const c = client();
    const band = await bandOf(c, L2A, 'B08');
    sim.addFault({ kind: 'cutAfterBytes', bytes: 1000, file: '_B08_10m' });
    const err = await drain(c.openBandFile(band)).catch((e: unknown) => e);
    expect(isRestartRequired(err)).toBe(true);
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryable: true, restartRequired: true });
    // The restart succeeds.
    expect((await drain(c.openBandFile(band))).sha3).toBe(band.file.sha3_256);
  });

  it('429 and 503 answers are retried in place', async () => {
    const c = client();
    const band = await bandOf(c, L2A, 'B04');
    sim.addFault({ kind: 'status429', count: 2, file: '_B04_10m' });
    sim.addFault({ kind: 'status', status: 503, count: 2, file: '_B04_10m' });
    const stream = c.openBandFile(band);
    expect((await drain(stream)).sha3).toBe(band.file.sha3_256);
    expect(await stream.result).toMatchObject({ rateLimited: 2, requests: 5 });
  });

  it('a 429 storm beyond the budget is upstream_rate_limited (retryable), not a failure', async () => {
    const c = client({ retry: { ...FAST, rateLimitAttempts: 2 } });
    const band = await bandOf(c, L2A, 'B04');
    sim.addFault({ kind: 'status429', count: 10, file: '_B04_10m' });
    const err = await drain(c.openBandFile(band)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'upstream_rate_limited', retryable: true, status: 429 });
    expect((err as UpstreamError).retryAfterMs).toBeGreaterThan(0);
  });

  it('more concurrent downloads than slots: 429s are absorbed, every file verifies', async () => {
    await startSim({ sizeScale: 0.01, maxConcurrentDownloads: 2, bytesPerSecond: 4 * 1024 * 1024 });
    const c = client();
    const bands = await Promise.all(['B02', 'B03', 'B04', 'B08'].map((b) => bandOf(c, L2A, b)));
    const results = await Promise.all(bands.map(async (band) => drain(c.openBandFile(band))));
    results.forEach((r, i) => expect(r.sha3).toBe(bands[i]!.file.sha3_256));
    // The sim counts a completion after its last write returns, which may be after we read it.
    await until(() => sim.counters().totals.completed === 4);
    const counters = sim.counters();
    expect(counters.peakConcurrentDownloads).toBeLessThanOrEqual(2);
    expect(counters.rejected429).toBeGreaterThan(0);
    expect(counters.totals.completed).toBe(4);
  });

  it('a token the server expires mid-run (401) is refreshed once and the download goes on', async () => {
    const c = client();
    const band = await bandOf(c, L2A, 'B04');
    sim.addFault({ kind: 'expireToken', file: '_B04_10m' });
    const stream = c.openBandFile(band);
    expect((await drain(stream)).sha3).toBe(band.file.sha3_256);
    expect((await stream.result).tokenRefreshes).toBe(1);
    const counters = sim.counters();
    expect(counters.tokenLogins).toBe(1);
    expect(counters.tokenRefreshes).toBe(1);
  });

  it('an access token past its lifetime is renewed with ONE refresh grant, not a login', async () => {
    await startSim({ accessTokenTtlSeconds: 2 });
    const c = client({ token: { refreshMarginMs: 500, lockPollMs: 10 } });
    const first = await c.tokens.getAccessToken();
    await new Promise((r) => setTimeout(r, 1_700));
    const others = await Promise.all(Array.from({ length: 5 }, () => client({ token: { refreshMarginMs: 500, lockPollMs: 10 } }).tokens.getAccessToken()));
    expect(new Set(others).size).toBe(1);
    expect(others[0]).not.toBe(first);
    const counters = sim.counters();
    expect(counters.tokenLogins).toBe(1);
    expect(counters.tokenRefreshes).toBe(1);
    // And the refreshed token works.
    const band = await bandOf(c, L2A, 'B02');
    expect((await drain(c.openBandFile(band))).sha3).toBe(band.file.sha3_256);
  });

  it('many concurrent getAccessToken calls from several processes share ONE login', async () => {
    const procs = Array.from({ length: 4 }, () => {
      const r = new Redis(REDIS_URL);
      extraRedis.push(r);
      return client({ redis: r });
    });
    const tokens = await Promise.all(procs.flatMap((p) => Array.from({ length: 8 }, () => p.tokens.getAccessToken())));
    expect(new Set(tokens).size).toBe(1);
    expect(sim.counters().tokenLogins).toBe(1);
    // Every process downloads with it, still one login.
    const band = await bandOf(procs[0]!, L2A, 'B03');
    await Promise.all(procs.slice(0, 2).map(async (p) => expect((await drain(p.openBandFile(band))).sha3).toBe(band.file.sha3_256)));
    expect(sim.counters().tokenLogins).toBe(1);
  });

  it('wrong credentials are upstream_auth (not retryable)', async () => {
    const c = new CdseClient({
      settings: { cdseTokenUrl: sim.urls.tokenUrl, cdseCatalogueUrl: sim.urls.catalogueUrl, cdseDownloadUrl: sim.urls.downloadUrl, cdseUsername: 'nobody@example.com', cdsePassword: 'nope', cdseTotp: undefined, queuePrefix: prefix },
      redis,
      logger,
    });
    clients.push(c);
    const p = await c.lookupProduct(L2A);
    await expect(c.getManifest(p.Id, p.Name)).rejects.toMatchObject({ code: 'upstream_auth', retryable: false });
  });

  it('an abort signal stops a slow download at once', async () => {
    const c = client();
    const band = await bandOf(c, L2A, 'B04');
    sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 50_000, file: '_B04_10m' });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('lock lost')), 200);
    const t0 = Date.now();
    await expect(drain(c.openBandFile({ ...band, signal: ac.signal }))).rejects.toThrow('lock lost');
    expect(Date.now() - t0).toBeLessThan(2_000);
  });
});
