// Faults on demand, in-process and over /__sim/faults, and seeded chaos.
import { startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { accessToken, bandPath, getFile, L1C, L2A, login, nodeUrl, sha3 } from './helpers.js';

describe('fault injection', () => {
  let sim: CdseSim;
  let token: string;
  let b04: string;
  let size: number;
  let digest: string;
  beforeAll(async () => {
    sim = await startCdseSim({ sizeScale: 0.005, logLevel: 'silent' });
    token = await accessToken(sim);
    b04 = await bandPath(sim, L1C, '_B04.jp2');
    const file = (await sim.productFiles(L1C)).find((f) => f.path === b04)!;
    size = file.size;
    digest = file.sha3_256;
  });
  afterAll(() => sim.close());
  beforeEach(() => {
    sim.clearFaults();
    sim.resetCounters();
  });
  const download = (headers: Record<string, string> = {}, t = token): Promise<Response> => getFile(nodeUrl(sim, L1C, b04), t, headers);

  it('cutAfterBytes destroys the connection mid-stream', async () => {
    sim.addFault({ kind: 'cutAfterBytes', bytes: 10_000, file: '_B04' });
    const res = await download();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(size));
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(sim.downloadsOf(L1C, '_B04.jp2')).toMatchObject({ started: 1, completed: 0 });
    expect(sim.counters().faultsApplied).toEqual({ cutAfterBytes: 1 });
    // The fault was used up: the retry succeeds.
    const retry = await download();
    expect(sha3(Buffer.from(await retry.arrayBuffer()))).toBe(digest);
    expect(sim.downloadsOf(L1C, '_B04.jp2')).toMatchObject({ started: 2, completed: 1 });
  });

  it('a 503 burst of `count` requests, then service again', async () => {
    sim.addFault({ kind: 'status', status: 503, count: 2 });
    for (let i = 0; i < 2; i++) {
      const res = await download();
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toBe('text/html');
      await res.text();
    }
    expect((await download()).status).toBe(200);
    expect(sim.counters().faultsApplied).toEqual({ status: 2 });
  });

  it('status429 with Retry-After', async () => {
    sim.addFault({ kind: 'status429', retryAfterSeconds: 7 });
    const res = await download();
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(await res.json()).toMatchObject({ code: 'DAT-ZIP-100' });
  });

  it('corrupt serves bytes whose SHA3 differs from the manifest (same size)', async () => {
    sim.addFault({ kind: 'corrupt', product: L1C, file: '_B04.jp2' });
    const bytes = Buffer.from(await (await download()).arrayBuffer());
    expect(bytes.length).toBe(size);
    expect(sha3(bytes)).not.toBe(digest);
  });

  it('truncate serves a shorter file with a Content-Length that agrees', async () => {
    sim.addFault({ kind: 'truncate', bytes: 100 });
    const res = await download();
    expect(res.headers.get('content-length')).toBe(String(size - 100));
    expect((await res.arrayBuffer()).byteLength).toBe(size - 100);
  });

  it('expireToken answers 401 and kills the token; a refreshed token works', async () => {
    const session = (await (await login(sim)).json()) as Record<string, string>;
    sim.addFault({ kind: 'expireToken' });
    const first = await download({}, session.access_token);
    expect(first.status).toBe(401);
    expect(await first.json()).toHaveProperty('detail');
    expect((await download({}, session.access_token)).status).toBe(401);
    const refreshed = (await (
      await fetch(sim.urls.tokenUrl, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'cdse-public', refresh_token: session.refresh_token! }) })
    ).json()) as Record<string, string>;
    const ok = await download({}, refreshed.access_token);
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    expect(sim.counters()).toMatchObject({ unauthorized401: 2, tokenRefreshes: 1 });
  });

  it('slowBytesPerSecond throttles one stream', async () => {
    sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: size * 2 });
    const t0 = Date.now();
    await (await download()).arrayBuffer();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
  });

  it('faults match product and file substrings; others pass', async () => {
    sim.addFault({ kind: 'status', status: 500, product: 'T99XXX' });
    sim.addFault({ kind: 'status', status: 502, file: '_B03' });
    expect((await download()).status).toBe(200);
    expect(sim.faults()).toHaveLength(2);
    const b03 = await getFile(nodeUrl(sim, L1C, await bandPath(sim, L1C, '_B03.jp2')), token);
    expect(b03.status).toBe(502);
    expect(sim.faults()).toHaveLength(1);
  });

  it('faults on the token and catalogue endpoints', async () => {
    sim.addFault({ kind: 'status', status: 503, target: 'token' });
    expect((await login(sim)).status).toBe(503);
    expect((await login(sim)).status).toBe(200);
    sim.addFault({ kind: 'status', status: 500, target: 'catalogue' });
    expect((await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${encodeURIComponent(`Name eq '${L2A}.SAFE'`)}`)).status).toBe(500);
  });

  it('over HTTP: POST, GET and DELETE /__sim/faults; invalid faults are refused whole', async () => {
    const post = await fetch(`${sim.url}/__sim/faults`, { method: 'POST', body: JSON.stringify([{ kind: 'status', status: 503, count: 3 }, { kind: 'cutAfterBytes', bytes: 5 }]) });
    expect(post.status).toBe(201);
    const listed = (await (await fetch(`${sim.url}/__sim/faults`)).json()) as { faults: { kind: string; remaining: number }[]; chaos: null };
    expect(listed.faults.map((f) => [f.kind, f.remaining])).toEqual([['status', 3], ['cutAfterBytes', 1]]);
    const bad = await fetch(`${sim.url}/__sim/faults`, { method: 'POST', body: JSON.stringify([{ kind: 'status', status: 503 }, { kind: 'explode' }]) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/kind must be one of/);
    expect(sim.faults()).toHaveLength(2);
    expect((await fetch(`${sim.url}/__sim/faults`, { method: 'DELETE' })).status).toBe(204);
    expect(sim.faults()).toEqual([]);
    const counters = (await (await fetch(`${sim.url}/__sim/counters`)).json()) as { rejected429: number };
    expect(counters.rejected429).toBe(0);
    expect((await fetch(`${sim.url}/__sim/reset`, { method: 'POST' })).status).toBe(204);
  });

  it('seeded chaos: the same seed gives the same faults in the same order', async () => {
    const run = async (): Promise<number[]> => {
      const res = await fetch(`${sim.url}/__sim/faults`, { method: 'POST', body: JSON.stringify({ chaos: { seed: 42, errorProbability: 0.3, rate429Probability: 0.2 } }) });
      expect(res.status).toBe(201);
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await download({ Range: 'bytes=0-15' });
        statuses.push(r.status);
        await r.arrayBuffer();
      }
      return statuses;
    };
    const a = await run();
    const b = await run();
    expect(a).toEqual(b);
    expect(new Set(a)).toEqual(new Set([206, 429, 503]));
    expect(Object.keys(sim.counters().faultsApplied).sort()).toEqual(['chaos:status', 'chaos:status429']);
  });
});
