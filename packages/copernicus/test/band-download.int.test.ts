/**
 * VerifiedFileStream against a real node:http server that misbehaves on purpose: cuts, Range with
 * 206 or 200, 429, 5xx, 401, wrong or extra bytes, stalls, a slow consumer, an abort.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type http from 'node:http';
import { UpstreamError, type SafeFile } from '@scenecache/core';
import { openVerifiedFileStream, type FileDownloadContext, type VerifiedFileStream } from '../src/band-download.js';
import { isRestartRequired } from '../src/range-resume.js';
import { createKeepAliveAgents } from '../src/upstream-http.js';
import { drained, serveFile, sha3, startTestServer, testBytes, writeAll, type Handler, type TestServer } from './helpers/http-server.js';
import { CountingTokens } from './helpers/static-tokens.js';

const PRODUCT_ID = '0c104c0f-0508-5f5d-9997-1b61ea3b20d6';
const SAFE = 'S2B_MSIL2A_20230209T055009_N0509_R048_T43SBB_20230209T084058.SAFE';
const PATH = 'GRANULE/L2A_T43SBB_A030000_20230209T055009/IMG_DATA/R10m/T43SBB_20230209T055009_B04_10m.jp2';
const EXPECTED_URL_PATH = `/odata/v1/Products(${PRODUCT_ID})/Nodes(${SAFE})/Nodes(GRANULE)/Nodes(L2A_T43SBB_A030000_20230209T055009)/Nodes(IMG_DATA)/Nodes(R10m)/Nodes(T43SBB_20230209T055009_B04_10m.jp2)/$value`;
const ZIPPER_429 = readFileSync(fileURLToPath(new URL('../../../fixtures/cdse/zipper_429_max_session_exceeded.txt', import.meta.url)), 'utf8')
  .split('\n')
  .find((l) => l.startsWith('{'))!;

const DATA = testBytes(3 * 1024 * 1024 + 123, 7);
const FILE: SafeFile = { path: PATH, size: DATA.length, sha3_256: sha3(DATA) };
const FAST = { baseDelayMs: 1, maxDelayMs: 20, attempts: 3, rateLimitAttempts: 3, responseTimeoutMs: 2_000, idleTimeoutMs: 2_000 };

let server: TestServer | undefined;
const agents = createKeepAliveAgents();
afterEach(async () => {
  await server?.close();
  server = undefined;
});
afterAll(() => agents.destroy());

async function start(handler: Handler, retry: FileDownloadContext['retry'] = FAST): Promise<{ ctx: FileDownloadContext; tokens: CountingTokens; srv: TestServer }> {
  server = await startTestServer(handler);
  const tokens = new CountingTokens();
  return { ctx: { downloadUrl: `${server.url}/odata/v1`, tokens, retry, agent: agents.choose }, tokens, srv: server };
}

/** Consume a stream fully into memory (tests only: files are a few MB), noting whether it ended. */
async function collect(stream: VerifiedFileStream): Promise<{ data: Buffer; ended: boolean }> {
  const chunks: Buffer[] = [];
  let ended = false;
  stream.on('end', () => (ended = true));
  for await (const c of stream) chunks.push(c as Buffer);
  return { data: Buffer.concat(chunks), ended };
}

async function failure(stream: VerifiedFileStream): Promise<{ err: UpstreamError; ended: boolean; received: number }> {
  let ended = false;
  let received = 0;
  stream.on('end', () => (ended = true));
  try {
    for await (const c of stream) received += (c as Buffer).length;
  } catch (err) {
    await expect(stream.result).rejects.toBe(err);
    return { err: err as UpstreamError, ended, received };
  }
  throw new Error('expected the stream to fail');
}

const open = (ctx: FileDownloadContext, extra: Partial<Parameters<typeof openVerifiedFileStream>[1]> = {}): VerifiedFileStream =>
  openVerifiedFileStream(ctx, { productId: PRODUCT_ID, safeName: SAFE, file: FILE, ...extra });

describe('VerifiedFileStream', () => {
  it('streams a file, verifies it and reports bytes and sha3 before end', async () => {
    const { ctx, srv } = await start((req, res) => serveFile(req, res, DATA));
    const progress: number[] = [];
    const stream = open(ctx, { onProgress: (n, total) => progress.push(n, total) });
    let resolvedBeforeEnd = false;
    void stream.result.then(() => (resolvedBeforeEnd = !stream.readableEnded));
    const { data, ended } = await collect(stream);
    expect(ended).toBe(true);
    expect(data.equals(DATA)).toBe(true);
    await expect(stream.result).resolves.toEqual({ path: PATH, bytes: DATA.length, sha3_256: FILE.sha3_256, requests: 1, resumes: 0, rateLimited: 0, tokenRefreshes: 0 });
    expect(resolvedBeforeEnd).toBe(true);
    expect(stream.sha3_256).toBe(FILE.sha3_256);
    expect(stream.bytesReceived).toBe(DATA.length);
    expect(progress.at(-2)).toBe(DATA.length);
    expect(progress.at(-1)).toBe(DATA.length);
    expect(srv.requests).toHaveLength(1);
    expect(srv.requests[0]!.url).toBe(EXPECTED_URL_PATH);
    expect(srv.requests[0]!.headers.authorization).toBe('Bearer token-1');
    expect(srv.requests[0]!.headers.range).toBeUndefined();
  });

  it('requests nothing until read', async () => {
    const { ctx, srv } = await start((req, res) => serveFile(req, res, DATA));
    const stream = open(ctx);
    await new Promise((r) => setTimeout(r, 50));
    expect(srv.requests).toHaveLength(0);
    stream.destroy();
  });

  it('resumes a cut connection with Range when the server answers 206', async () => {
    const cuts = [1_000_000, 500_000];
    const { ctx, srv } = await start((req, res, _s, i) => serveFile(req, res, DATA, { cutAfter: cuts[i] }));
    const stream = open(ctx);
    const { data } = await collect(stream);
    expect(data.equals(DATA)).toBe(true);
    const result = await stream.result;
    expect(result).toMatchObject({ requests: 3, resumes: 2, bytes: DATA.length });
    expect(srv.requests.map((r) => r.headers.range)).toEqual([undefined, 'bytes=1000000-', 'bytes=1500000-']);
  });

  it('fails with restartRequired when the server answers a resume with 200 (no range support)', async () => {
    const { ctx, srv } = await start((req, res, _s, i) => serveFile(req, res, DATA, { rangeSupport: false, cutAfter: i === 0 ? 800_000 : undefined }));
    const { err, ended, received } = await failure(open(ctx));
    expect(isRestartRequired(err)).toBe(true);
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryable: true, restartRequired: true, bytesReceived: 800_000, status: 200 });
    expect(ended).toBe(false);
    expect(received).toBe(800_000);
    expect(srv.requests).toHaveLength(2);
  });

  it('fails with restartRequired when Content-Range does not start where we are', async () => {
    const { ctx } = await start((req, res, _s, i) => {
      if (i === 0) return serveFile(req, res, DATA, { cutAfter: 100_000 });
      res.writeHead(206, { 'Content-Range': `bytes 0-${DATA.length - 1}/${DATA.length}`, 'Content-Length': DATA.length });
      return writeAll(res, DATA);
    });
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_unavailable', restartRequired: true });
  });

  it('gives up after `attempts` cuts without progress', async () => {
    const { ctx, srv } = await start((req, res, _s, i) => {
      if (i === 0) return serveFile(req, res, DATA, { cutAfter: 200_000 });
      // Later tries: headers, then a cut before any byte of the body.
      res.writeHead(206, { 'Content-Range': `bytes 200000-${DATA.length - 1}/${DATA.length}`, 'Content-Length': DATA.length - 200_000 });
      res.flushHeaders();
      setTimeout(() => req.socket.destroy(), 10);
    });
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryable: true });
    expect(err.message).toContain('connection cut at byte 200000');
    // One cut with progress, then `attempts` (3) cuts in a row without.
    expect(srv.requests).toHaveLength(1 + FAST.attempts);
  });

  it('gives up after `attempts` network errors before any answer', async () => {
    const { ctx, srv } = await start((req, res, _s, i) => {
      if (i === 0) return serveFile(req, res, DATA, { cutAfter: 200_000 });
      req.socket.destroy();
    });
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryable: true });
    expect(err.message).toContain('(3 tries)');
    expect(srv.requests).toHaveLength(1 + FAST.attempts);
  });

  it('gives up after maxResumes resumes even with progress', async () => {
    const { ctx, srv } = await start((req, res) => serveFile(req, res, DATA, { cutAfter: 100_000 }), { ...FAST, maxResumes: 4 });
    const { err, received } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryable: true });
    expect(received).toBe(500_000);
    expect(srv.requests).toHaveLength(5);
  });

  it('resumes after a stalled body (idle timeout)', async () => {
    const { ctx, srv } = await start(
      async (req, res, _s, i) => {
        if (i > 0) return serveFile(req, res, DATA);
        res.writeHead(200, { 'Content-Length': DATA.length });
        await writeAll(res, DATA.subarray(0, 300_000), { end: false }); // then nothing: a stall
      },
      { ...FAST, idleTimeoutMs: 150 },
    );
    const stream = open(ctx);
    const { data } = await collect(stream);
    expect(data.equals(DATA)).toBe(true);
    expect((await stream.result).resumes).toBe(1);
    expect(srv.requests[1]!.headers.range).toBe('bytes=300000-');
  });

  it('backs off on 429 (real DAT-ZIP-100 body) and then succeeds', async () => {
    const { ctx, srv } = await start((req, res, _s, i) => {
      if (i < 2) {
        res.writeHead(429, { 'Content-Type': 'application/json', ...(i === 1 ? { 'Retry-After': '0' } : {}) });
        return void res.end(ZIPPER_429);
      }
      return serveFile(req, res, DATA);
    });
    const stream = open(ctx);
    const { data } = await collect(stream);
    expect(data.equals(DATA)).toBe(true);
    expect(await stream.result).toMatchObject({ requests: 3, rateLimited: 2 });
    expect(srv.requests).toHaveLength(3);
  });

  it('honours Retry-After (seconds) before the next try', async () => {
    const { ctx, srv } = await start(
      (req, res, _s, i) => {
        if (i === 0) {
          res.writeHead(429, { 'Retry-After': '1' });
          return void res.end(ZIPPER_429);
        }
        return serveFile(req, res, DATA);
      },
      { ...FAST, maxDelayMs: 5_000 },
    );
    const t0 = Date.now();
    await collect(open(ctx));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(srv.requests).toHaveLength(2);
  });

  it('turns an exhausted 429 budget into upstream_rate_limited (retryable, retryAfterMs)', async () => {
    const { ctx, srv } = await start((_req, res) => {
      res.writeHead(429, { 'Content-Type': 'application/json' });
      res.end(ZIPPER_429);
    });
    const { err } = await failure(open(ctx));
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code: 'upstream_rate_limited', retryable: true, status: 429 });
    expect(err.retryAfterMs).toBeGreaterThan(0);
    expect(err.message).toContain('DAT-ZIP-100: Max session number exceeded');
    expect(srv.requests).toHaveLength(FAST.rateLimitAttempts + 1);
  });

  it('does not wait out a Retry-After longer than maxDelayMs: rate limited at once, with that delay', async () => {
    const { ctx, srv } = await start((_req, res) => {
      res.writeHead(429, { 'Retry-After': '120' });
      res.end(ZIPPER_429);
    });
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_rate_limited', retryable: true, retryAfterMs: 120_000 });
    expect(srv.requests).toHaveLength(1);
  });

  it('retries 5xx with backoff, then succeeds', async () => {
    const { ctx, srv } = await start((req, res, _s, i) => {
      if (i < 2) {
        res.writeHead(i === 0 ? 502 : 503);
        return void res.end('{"detail":"upstream down"}');
      }
      return serveFile(req, res, DATA);
    });
    const { data } = await collect(open(ctx));
    expect(data.equals(DATA)).toBe(true);
    expect(srv.requests).toHaveLength(3);
  });

  it('gives up on 5xx after `attempts` with upstream_unavailable (retryable) and the detail', async () => {
    const { ctx, srv } = await start((_req, res) => {
      res.writeHead(500);
      res.end('{"detail":"Internal error"}');
    });
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryable: true, status: 500 });
    expect(err.message).toContain('Internal error');
    expect(srv.requests).toHaveLength(FAST.attempts);
  });

  /** A handler answering 401 `Expired signature!` to every token but `token`, which gets the file. */
  const expiredBut = (token: string): Handler => (req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401);
      return void res.end('{"detail":"Expired signature!"}');
    }
    return serveFile(req, res, DATA);
  };

  it('on 401 invalidates the token and retries once with a fresh one', async () => {
    const { ctx, tokens, srv } = await start(expiredBut('token-2'));
    const stream = open(ctx);
    const { data } = await collect(stream);
    expect(data.equals(DATA)).toBe(true);
    expect(tokens.invalidations).toEqual(['token-1']);
    expect((await stream.result).tokenRefreshes).toBe(1);
    expect(srv.requests.map((r) => r.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
  });

  /** A handler answering every request 401 with `detail`. */
  const always401 = (detail: string): Handler => (_req, res) => {
    res.writeHead(401);
    res.end(JSON.stringify({ detail }));
  };

  it('a 401 right after a renewal is a race: fresh logins and more tries; 3 tokens refused in a row then a 4th is upstream_auth (not retryable)', async () => {
    const { ctx, tokens, srv } = await start(always401('Unauthorized'));
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_auth', retryable: false, status: 401 });
    expect(srv.requests.map((r) => r.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2', 'Bearer token-3', 'Bearer token-4']);
    expect(tokens.invalidations).toEqual(['token-1', 'token-2', 'token-3']);
    // A refresh first, then fresh password logins; then the account is remembered as refused.
    expect(tokens.logins).toEqual([false, true, true]);
    expect(tokens.refusedReasons).toHaveLength(1);
  });

  it('tokens rejected as expired are renewed up to 8 times in a row and never count as a refused account', async () => {
    const { ctx, tokens, srv } = await start(always401('Expired signature!'));
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_auth', retryable: true, status: 401 });
    expect(srv.requests).toHaveLength(9);
    expect(tokens.invalidations).toHaveLength(8);
    expect(tokens.refusedReasons).toEqual([]);
  });

  it('three tokens expiring in a row are absorbed: the fourth streams the file', async () => {
    const { ctx, tokens, srv } = await start(expiredBut('token-4'));
    const stream = open(ctx);
    const { data } = await collect(stream);
    expect(data.equals(DATA)).toBe(true);
    expect(tokens.invalidations).toEqual(['token-1', 'token-2', 'token-3']);
    expect((await stream.result).tokenRefreshes).toBe(3);
    expect(srv.requests).toHaveLength(4);
  });

  it('404 is product_not_found (not retryable)', async () => {
    const { ctx } = await start((_req, res) => {
      res.writeHead(404);
      res.end('{"detail":"Node not found"}');
    });
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'product_not_found', retryable: false });
  });

  it('wrong bytes of the right size: upstream_integrity, and the stream errors instead of ending', async () => {
    const corrupt = Buffer.from(DATA);
    corrupt[corrupt.length - 10]! ^= 0xff;
    const { ctx } = await start((req, res) => serveFile(req, res, corrupt));
    const { err, ended, received } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_integrity', retryable: true });
    expect(err.message).toContain('SHA3-256');
    expect(ended).toBe(false);
    expect(received).toBe(DATA.length);
  });

  it('a consumer pipeline fails before its final step on wrong bytes (an upload never completes)', async () => {
    const corrupt = Buffer.from(DATA);
    corrupt[0]! ^= 1;
    const { ctx } = await start((req, res) => serveFile(req, res, corrupt));
    let finalCalled = false;
    let written = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        written += chunk.length;
        cb();
      },
      final(cb) {
        finalCalled = true; // CompleteMultipartUpload would happen here
        cb();
      },
    });
    await expect(pipeline(open(ctx), sink)).rejects.toMatchObject({ code: 'upstream_integrity' });
    expect(finalCalled).toBe(false);
    expect(written).toBe(DATA.length);
  });

  it('fails as soon as the server sends more bytes than the manifest size', async () => {
    // The server would send 64× the file; the client must stop it long before. (Not "before 2×":
    // loopback socket buffers can absorb several MB the client never read — issue 18.)
    const chunk = testBytes(65_536, 9);
    const total = DATA.length * 64;
    let serverWrote = 0;
    const { ctx } = await start(async (_req, res) => {
      res.writeHead(200); // chunked: no Content-Length to catch it early
      while (serverWrote < total && !res.destroyed) {
        serverWrote += chunk.length;
        if (!res.write(chunk)) await drained(res);
      }
      res.end();
    });
    const { err, received } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_integrity', retryable: true });
    expect(err.message).toContain('more than');
    expect(received).toBeLessThanOrEqual(DATA.length);
    expect(serverWrote).toBeLessThan(total / 4);
  });

  it('a Content-Length that disagrees with the manifest fails before reading the body', async () => {
    const { ctx } = await start((_req, res) => {
      res.writeHead(200, { 'Content-Length': DATA.length - 1 });
      res.end(DATA.subarray(1));
    });
    const { err, received } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_integrity' });
    expect(err.message).toContain('Content-Length');
    expect(received).toBe(0);
  });

  it('a server with fewer bytes than the manifest (416 on resume) is upstream_integrity', async () => {
    const short = DATA.subarray(0, DATA.length - 1000);
    const { ctx } = await start((req, res) => {
      if (req.headers.range) {
        res.writeHead(416, { 'Content-Range': `bytes */${short.length}` });
        return void res.end();
      }
      res.writeHead(200); // chunked, ends cleanly but short
      return writeAll(res, short);
    });
    const { err } = await failure(open(ctx));
    expect(err).toMatchObject({ code: 'upstream_integrity', retryable: true });
  });

  it('respects backpressure: the server cannot push the file while the consumer does not read', async () => {
    const big = testBytes(48 * 1024 * 1024, 3);
    let serverWrote = 0;
    const { ctx } = await start(async (_req, res) => {
      res.writeHead(200, { 'Content-Length': big.length });
      for (let i = 0; i < big.length && !res.destroyed; i += 65_536) {
        serverWrote += 65_536;
        if (!res.write(big.subarray(i, i + 65_536))) await drained(res);
      }
      res.end();
    });
    const stream = openVerifiedFileStream(ctx, { productId: PRODUCT_ID, safeName: SAFE, file: { path: PATH, size: big.length, sha3_256: sha3(big) } });
    stream.once('readable', () => undefined); // start the download, then read nothing
    await new Promise((r) => setTimeout(r, 500));
    // Our buffer (1 MiB) + socket buffers; far from the 48 MiB of the file.
    expect(serverWrote).toBeLessThan(16 * 1024 * 1024);
    expect(stream.readableLength).toBeLessThanOrEqual(2 * 1024 * 1024);
    let n = 0;
    for await (const c of stream) n += (c as Buffer).length;
    expect(n).toBe(big.length);
    await expect(stream.result).resolves.toMatchObject({ bytes: big.length });
  });

  it('abort: the signal destroys the stream with its reason and closes the connection', async () => {
    let closed: Promise<void> = Promise.resolve();
    const { ctx } = await start(async (_req, res: http.ServerResponse) => {
      closed = new Promise((r) => res.once('close', () => r()));
      res.writeHead(200, { 'Content-Length': DATA.length });
      await writeAll(res, DATA.subarray(0, 100_000), { end: false });
    });
    const ac = new AbortController();
    const stream = open(ctx, { signal: ac.signal, onProgress: () => ac.abort(new Error('lock lost')) });
    const { err } = await failure(stream);
    expect((err as Error).message).toBe('lock lost');
    await closed;
  });

  it('abort during a backoff wait ends it at once', async () => {
    const { ctx } = await start(
      (_req, res) => {
        res.writeHead(503);
        res.end();
      },
      { ...FAST, baseDelayMs: 60_000, maxDelayMs: 60_000 },
    );
    const ac = new AbortController();
    const stream = open(ctx, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('shutdown')), 100);
    const t0 = Date.now();
    const { err } = await failure(stream);
    expect((err as Error).message).toBe('shutdown');
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('a consumer that destroys the stream stops the download', async () => {
    let closed: Promise<void> = Promise.resolve();
    const { ctx } = await start(async (_req, res) => {
      closed = new Promise((r) => res.once('close', () => r()));
      res.writeHead(200, { 'Content-Length': DATA.length });
      await writeAll(res, DATA.subarray(0, 100_000), { end: false });
    });
    const stream = open(ctx);
    stream.once('data', () => stream.destroy());
    await expect(stream.result).rejects.toThrow(/destroyed/);
    await closed;
  });

  it('a zero-byte file verifies', async () => {
    const empty = Buffer.alloc(0);
    const { ctx } = await start((req, res) => serveFile(req, res, empty));
    const stream = openVerifiedFileStream(ctx, { productId: PRODUCT_ID, safeName: SAFE, file: { path: 'x/empty.xml', size: 0, sha3_256: sha3(empty) } });
    const { data, ended } = await collect(stream);
    expect(data.length).toBe(0);
    expect(ended).toBe(true);
  });
});
