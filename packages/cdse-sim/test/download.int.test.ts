// Files on the download host: the manifest, band bytes that match it, Range, auth, the 429 limit, counters.
import { bandsForLevel, findBandFile, parseSafeManifest } from '@scenecache/core';
import { startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { accessToken, bandPath, collect, fixture, getFile, L1C, L2A, nodeUrl, sha3 } from './helpers.js';

const REAL_429 = fixture('zipper_429_max_session_exceeded.txt').trim().split('\n').at(-1)!;

describe('file downloads', () => {
  let sim: CdseSim;
  let token: string;
  beforeAll(async () => {
    sim = await startCdseSim({ sizeScale: 0.001, logLevel: 'silent' });
    token = await accessToken(sim);
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.resetCounters());

  it.each([L1C, L2A])('%s: the manifest lists every band, and every band served matches its size and SHA3-256', async (name) => {
    const res = await getFile(nodeUrl(sim, name, 'manifest.safe'), token);
    expect(res.status).toBe(200);
    const xml = await res.text();
    expect(xml).toMatch(/<checksum checksumName="SHA3-256">[0-9A-F]{64}<\/checksum>/); // upper case like real manifests
    const files = parseSafeManifest(xml);
    expect(files).toEqual(expect.arrayContaining([...(await sim.productFiles(name))]));
    const level = name.includes('MSIL1C') ? 'L1C' : 'L2A';
    for (const band of bandsForLevel(level)) {
      const file = findBandFile(files, band);
      expect(file).toBeDefined();
      const got = await getFile(nodeUrl(sim, name, file!.path), token);
      expect(got.status).toBe(200);
      expect(Number(got.headers.get('content-length'))).toBe(file!.size);
      const bytes = Buffer.from(await got.arrayBuffer());
      expect(bytes.length).toBe(file!.size);
      expect(sha3(bytes)).toBe(file!.sha3_256);
    }
    const c = sim.counters();
    expect(c.manifestRequests).toBe(1);
    expect(c.totals.started).toBe(bandsForLevel(level).length);
    expect(c.totals.completed).toBe(bandsForLevel(level).length);
  });

  it('serves the same bytes as fileBytes(), deterministic per (product, path)', async () => {
    const path = await bandPath(sim, L2A, '_SCL_20m.jp2');
    const served = Buffer.from(await (await getFile(nodeUrl(sim, L2A, path), token)).arrayBuffer());
    expect((await collect(sim.fileBytes(L2A, path))).equals(served)).toBe(true);
    const other = await bandPath(sim, L2A, '_SCL_60m.jp2');
    expect((await collect(sim.fileBytes(L2A, other))).subarray(0, 16).equals(served.subarray(0, 16))).toBe(false);
  });

  it('Range: bytes=N- and bytes=N-M answer 206 with Content-Range; a resumed download completes the file once', async () => {
    const path = await bandPath(sim, L1C, '_B03.jp2');
    const whole = await collect(sim.fileBytes(L1C, path));
    const size = whole.length;
    const mid = await getFile(nodeUrl(sim, L1C, path), token, { Range: 'bytes=17-99' });
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 17-99/${size}`);
    expect(mid.headers.get('content-length')).toBe('83');
    expect(Buffer.from(await mid.arrayBuffer()).equals(whole.subarray(17, 100))).toBe(true);
    const tail = await getFile(nodeUrl(sim, L1C, path), token, { Range: `bytes=${size - 1000}-` });
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe(`bytes ${size - 1000}-${size - 1}/${size}`);
    expect(Buffer.from(await tail.arrayBuffer()).equals(whole.subarray(size - 1000))).toBe(true);
    const beyond = await getFile(nodeUrl(sim, L1C, path), token, { Range: `bytes=${size}-` });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${size}`);
    expect(sim.downloadsOf(L1C, '_B03.jp2')).toEqual({ started: 2, completed: 1, bytes: 83 + 1000, ranged: 2 });
  });

  it('needs a bearer token for files (401 with a detail), not for listings', async () => {
    const path = await bandPath(sim, L1C, '_B04.jp2');
    for (const headers of [{}, { Authorization: 'Bearer not-a-token' }] as Record<string, string>[]) {
      const res = await fetch(nodeUrl(sim, L1C, path), { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toHaveProperty('detail');
    }
    expect((await fetch(nodeUrl(sim, L1C, 'manifest.safe'))).status).toBe(401);
    expect((await fetch(nodeUrl(sim, L1C, '', '/Nodes'))).status).toBe(200);
    expect(sim.counters()).toMatchObject({ unauthorized401: 3, totals: { started: 0 } });
  });

  it('non-band files other than the metadata files, and folders, are not served; unknown files are 404', async () => {
    expect((await getFile(nodeUrl(sim, L2A, 'INSPIRE.xml'), token)).status).toBe(404);
    expect((await getFile(nodeUrl(sim, L2A, 'GRANULE'), token)).status).toBe(400);
    const res = await getFile(nodeUrl(sim, L2A, 'GRANULE/nope.jp2'), token);
    expect(res.status).toBe(404);
    expect(await res.json()).toHaveProperty('detail');
  });
});

describe('the concurrent download limit', () => {
  let sim: CdseSim;
  let token: string;
  beforeAll(async () => {
    // 10 m bands of ~1.3 MB at 100 kB/s: each stream stays open for seconds.
    sim = await startCdseSim({ sizeScale: 0.01, bytesPerSecond: 100_000, logLevel: 'silent' });
    token = await accessToken(sim);
  });
  afterAll(() => sim.close());

  it('the 5th concurrent download gets the real 429 DAT-ZIP-100 body without Retry-After', async () => {
    const files = (await sim.productFiles(L1C)).filter((f) => /_B0[2348]\.jp2$/.test(f.path));
    const abort = new AbortController();
    const open = await Promise.all(files.map((f) => getFile(nodeUrl(sim, L1C, f.path), token, {}, abort.signal)));
    expect(open.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(sim.counters().currentConcurrentDownloads).toBe(4);

    const fifth = await getFile(nodeUrl(sim, L1C, (await bandPath(sim, L1C, '_B05.jp2'))), token);
    expect(fifth.status).toBe(429);
    expect(fifth.headers.get('retry-after')).toBeNull();
    const body = (await fifth.json()) as Record<string, string>;
    expect(Object.keys(body)).toEqual(Object.keys(JSON.parse(REAL_429) as object));
    expect(body).toMatchObject({ code: 'DAT-ZIP-100', message: 'Max session number exceeded' });
    expect(body['trace-id']).toMatch(/^[0-9a-f]{32}$/);
    // The manifest does not take a slot (manifestCountsAsDownload: false).
    const manifest = await getFile(nodeUrl(sim, L1C, 'manifest.safe'), token);
    expect(manifest.status).toBe(200);
    await manifest.arrayBuffer();

    abort.abort();
    await Promise.allSettled(open.map((r) => r.arrayBuffer()));
    for (let i = 0; i < 50 && sim.counters().currentConcurrentDownloads > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const c = sim.counters();
    expect(c).toMatchObject({ currentConcurrentDownloads: 0, peakConcurrentDownloads: 4, rejected429: 1 });
    expect(c.totals).toMatchObject({ started: 4, completed: 0 });
    const again = await getFile(nodeUrl(sim, L1C, (await bandPath(sim, L1C, '_B05.jp2'))), token, { Range: 'bytes=0-9' });
    expect(again.status).toBe(206);
    await again.arrayBuffer();
  });
});

describe('rangeSupport: false', () => {
  it('ignores Range and sends the whole file with 200', async () => {
    const sim = await startCdseSim({ sizeScale: 0.001, rangeSupport: false, logLevel: 'silent' });
    try {
      const path = await bandPath(sim, L2A, '_B02_10m.jp2');
      const res = await getFile(nodeUrl(sim, L2A, path), await accessToken(sim), { Range: 'bytes=100-' });
      expect(res.status).toBe(200);
      expect(res.headers.get('accept-ranges')).toBeNull();
      expect((await res.arrayBuffer()).byteLength).toBe((await sim.productFiles(L2A)).find((f) => f.path === path)!.size);
      expect(sim.downloadsOf(L2A, '_B02_10m.jp2')).toMatchObject({ started: 1, completed: 1, ranged: 0 });
    } finally {
      await sim.close();
    }
  });
});
