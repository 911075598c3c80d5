/**
 * Issues 16 and 19 — the STAC API at `/stac/v1` on real Postgres, Redis and S3 (s3rver), products
 * seeded as the worker leaves them (stac-helpers.ts):
 *
 * - every document (landing page, collections, collection, items pages, search pages, items)
 *   validates against the vendored STAC 1.1 schemas (fixtures/stac: core + every declared
 *   extension; pages against the STAC API ItemCollection schema);
 * - a tenant key walks landing page → collection → search → item → asset with `?sign=true` and
 *   downloads a band through the presigned URL, byte for byte;
 * - views: an admin key sees the global cache (`s3://<global bucket>/…`), a tenant key only its
 *   products and bands (`s3://<its bucket>/…`), never another tenant's; 401 without a key;
 * - search by bbox (antimeridian included), datetime (instant, interval, open ends), ids,
 *   collections, GET and POST; paging follows `next` to the end with no duplicate and no miss;
 * - the real T01KAB product (fixtures/cdse: manifest, MTD_TL.xml, MTD_MSIL2A.xml): its item has
 *   the grid, checksums and bbox of the hand-made reference item (fixtures/stac/examples);
 * - bad input: 400/404 `{error: {code, message}}`; the routes in the OpenAPI document.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseProductLevelMetadata, parseSafeManifest, parseTileMetadata } from '@scenecache/core';
import { createApiKey, type GeoJsonGeometry } from '@scenecache/db';
import { startTestS3, type TestS3 } from '@scenecache/testing';
import { startTestApi, type TestApi, type TestReply, type TestRequest } from './helpers.js';
import { boxFootprint, CDSE_FIXTURES_DIR, loadStacValidator, seedStacProduct, STAC_FIXTURES_DIR, syntheticGranuleMetadata, type SeededBands, type StacValidator } from './stac-helpers.js';

/** The documents as the tests read them (the schemas check them whole). */
interface Link {
  rel: string;
  href: string;
  type?: string;
  method?: string;
  body?: Record<string, unknown>;
  merge?: boolean;
}
interface Band {
  name: string;
  'eo:common_name'?: string;
  'eo:center_wavelength'?: number;
}
interface Asset {
  href: string;
  bands?: Band[];
  [field: string]: unknown;
}
interface Item {
  id: string;
  geometry: unknown;
  bbox?: number[];
  properties: Record<string, unknown>;
  assets: Record<string, Asset>;
  links: Link[];
  stac_extensions: string[];
  [field: string]: unknown;
}
interface Doc {
  links: Link[];
  features: Item[];
  collections: Doc[];
  error?: { code: string; message: string; field?: string };
  [field: string]: unknown;
}

const ADMIN_API_KEY = 'test-admin-key-stac-0123456789';
const TTL = 900;

/** The real product of fixtures/cdse/stactools_S2_L2A_* (antimeridian-crossing footprint). */
const REAL = 'S2A_MSIL2A_20230821T221941_N0509_R029_T01KAB_20230822T021825';
const P1 = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const P2_L1C = 'S2A_MSIL1C_20240324T101651_N0510_R065_T32TNS_20240324T122424';
const P3 = 'S2B_MSIL2A_20240410T102559_N0510_R108_T33UUP_20240410T150000';
/** Cached globally, no tenant has it; no footprint, no metadata files read. */
const P4_BARE = 'S2C_MSIL2A_20250115T103421_N0511_R108_T31UFU_20250115T140000';
const ROW_LETTERS = 'ABCDEFGHJKLMNPQRSTUV';
/** 12 products of tenant `pager`: 4 sensing days, 3 products each (ties broken by id). */
const PAGED = Array.from({ length: 12 }, (_, i) => `S2B_MSIL2A_202402${String(10 + Math.floor(i / 3))}T101649_N0510_R065_T32TN${ROW_LETTERS[i]}_20240301T130035`);

let s3: TestS3;
let api: TestApi;
let stac: StacValidator;
let globalBucket: string;
const buckets: Record<string, string> = {};
const keys: Record<string, string> = {};
const seeded: Record<string, SeededBands> = {};
let handmade: Item;

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const admin = auth(ADMIN_API_KEY);

/** A reply with its body as a STAC document (or an error). */
type Reply = Omit<TestReply, 'body'> & { body: Doc };

async function request(method: string, path: string, options: TestRequest): Promise<Reply> {
  const reply = await api.request(method, path, options);
  return { ...reply, body: reply.body as unknown as Doc };
}

/** The body of an item reply. */
const itemOf = (reply: Reply): Item => reply.body as unknown as Item;

async function get(path: string, headers: Record<string, string>): Promise<Reply> {
  return request('GET', path, { headers });
}

/** GET an absolute URL the API gave (a link). */
async function follow(href: string, headers: Record<string, string>): Promise<Reply> {
  const url = new URL(href);
  expect(url.origin).toBe(api.baseUrl);
  return get(`${url.pathname}${url.search}`, headers);
}

/** RFC 3986 percent-encoding, as SigV4 canonical requests use it. */
function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The SigV4 signature S3 computes for a presigned GET URL (query-string authentication, payload
 * `UNSIGNED-PAYLOAD`, signed headers from `X-Amz-SignedHeaders`: here `host`).
 * docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
 */
function sigV4QuerySignature(url: URL, secret: string): string {
  const params = [...url.searchParams].filter(([k]) => k !== 'X-Amz-Signature');
  const query = params.map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).sort().join('&');
  const canonical = ['GET', url.pathname, query, `host:${url.host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const date = url.searchParams.get('X-Amz-Date')!;
  const scope = url.searchParams.get('X-Amz-Credential')!.split('/').slice(1).join('/');
  const toSign = ['AWS4-HMAC-SHA256', date, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
  const [day, region, service, terminator] = scope.split('/') as [string, string, string, string];
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), terminator);
  return createHmac('sha256', key).update(toSign).digest('hex');
}

/** A link of a document by rel (and method). */
function link(doc: { links: Link[] }, rel: string, method?: string): Link {
  const found = doc.links.find((l) => l.rel === rel && (method === undefined || (l.method ?? 'GET') === method));
  if (!found) throw new Error(`no ${rel} link in ${JSON.stringify(doc.links)}`);
  return found;
}

/** Every page of a GET search, following `next`; the features in order. */
async function allPages(path: string, headers: Record<string, string>): Promise<{ features: Item[]; pages: number }> {
  let reply = await get(path, headers);
  const features: Item[] = [];
  let pages = 0;
  for (;;) {
    expect(reply.status).toBe(200);
    expect(stac.itemCollection(reply.body)).toEqual([]);
    pages++;
    features.push(...reply.body.features);
    const next = reply.body.links.find((l) => l.rel === 'next');
    if (!next) return { features, pages };
    reply = await follow(next.href, headers);
  }
}

const ids = (page: Reply | { features: Item[] }): string[] => ('body' in page ? page.body.features : page.features).map((f) => f.id);

beforeAll(async () => {
  stac = loadStacValidator();
  handmade = JSON.parse(readFileSync(join(STAC_FIXTURES_DIR, `examples/handmade/${REAL}.json`), 'utf8')) as Item;
  s3 = await startTestS3();
  globalBucket = s3.uniqueBucket('stac-global');
  for (const tenant of ['acme', 'globex', 'pager']) buckets[tenant] = s3.uniqueBucket(`stac-${tenant}`);
  api = await startTestApi({ env: { ADMIN_API_KEY, GLOBAL_BUCKET: globalBucket, STAC_SIGNED_URL_TTL_SECONDS: String(TTL) }, store: s3.store });
  for (const tenant of ['acme', 'globex', 'pager']) keys[tenant] = (await createApiKey(api.db, { tenantId: tenant })).secret;
  const base = { db: api.db, store: s3.store, globalBucket };
  const copy = (tenant: string, bands: string[]) => ({ tenantId: tenant, bucket: buckets[tenant]!, bands });

  // The real product: acme's copies outlived the global row (evicted): sizes and checksums from the manifest.
  const fixture = (name: string) => readFileSync(join(CDSE_FIXTURES_DIR, name), 'utf8');
  seeded[REAL] = await seedStacProduct({
    ...base,
    sceneId: REAL,
    bands: ['B02', 'B04', 'B04_20m', 'SCL'],
    global: false,
    files: parseSafeManifest(fixture('stactools_S2_L2A_manifest.safe.xml')),
    footprint: handmade.geometry as GeoJsonGeometry,
    sensedAt: new Date('2023-08-21T22:19:41.024Z'),
    granuleMetadata: { tile: parseTileMetadata(fixture('stactools_S2_L2A_MTD_TL.xml')), product: parseProductLevelMetadata(fixture('stactools_S2_L2A_MTD_MSIL2A.xml')) },
    tenants: [copy('acme', ['B02', 'B04', 'B04_20m', 'SCL'])],
  });
  seeded[P1] = await seedStacProduct({
    ...base,
    sceneId: P1,
    bands: { B02: Buffer.from('blue'.repeat(50)), B03: Buffer.from('green'), B04: Buffer.from('red band bytes '.repeat(100)), B08: Buffer.from('nir'), SCL: Buffer.from('scl'), B04_20m: Buffer.from('red20') },
    footprint: boxFootprint(8.9, 45.9, 10.3, 46.9),
    sensedAt: new Date('2024-03-24T10:16:49.024Z'),
    granuleMetadata: syntheticGranuleMetadata('32TNS', { ulx: 499_980, uly: 5_200_020, cloud: 3.25, sunZenith: 48.2, sunAzimuth: 158.9 }),
    tenants: [copy('acme', ['B04', 'B08', 'SCL']), copy('globex', ['B02'])],
  });
  seeded[P2_L1C] = await seedStacProduct({
    ...base,
    sceneId: P2_L1C,
    bands: ['B04', 'B08', 'TCI'],
    footprint: boxFootprint(8.9, 45.9, 10.3, 46.9),
    sensedAt: new Date('2024-03-24T10:16:51.000Z'),
    granuleMetadata: syntheticGranuleMetadata('32TNS', { ulx: 499_980, uly: 5_200_020 }),
    tenants: [copy('globex', ['B04', 'TCI'])],
  });
  seeded[P3] = await seedStacProduct({
    ...base,
    sceneId: P3,
    bands: ['B03', 'B04'],
    footprint: boxFootprint(12, 48, 13.5, 49),
    sensedAt: new Date('2024-04-10T10:25:59.500Z'),
    granuleMetadata: syntheticGranuleMetadata('33UUP', { ulx: 300_000, uly: 5_400_000 }),
    tenants: [copy('acme', ['B04'])],
  });
  seeded[P4_BARE] = await seedStacProduct({ ...base, sceneId: P4_BARE, bands: ['B04', 'SCL'], footprint: null, granuleMetadata: null, sensedAt: new Date('2025-01-15T10:34:21.000Z') });
  for (const [i, sceneId] of PAGED.entries()) {
    await seedStacProduct({ ...base, sceneId, bands: ['B04'], footprint: boxFootprint(9 + i / 10, 46, 9.5 + i / 10, 46.5), tenants: [copy('pager', ['B04'])] });
  }
}, 120_000);

afterAll(async () => {
  await api?.close();
  await s3?.close();
});

describe('documents and the walk of a STAC client', () => {
  it('a tenant walks landing page → collection → search → item → asset with ?sign=true and downloads the band through the presigned URL', async () => {
    const headers = auth(keys.acme!);
    const landing = await get('/stac/v1?sign=true', headers);
    expect(landing.status).toBe(200);
    expect(landing.headers['content-type']).toMatch(/^application\/json/);
    expect(stac.catalog(landing.body)).toEqual([]);
    expect(landing.body.conformsTo).toEqual(expect.arrayContaining(['https://api.stacspec.org/v1.0.0/core', 'https://api.stacspec.org/v1.0.0/item-search', 'https://api.stacspec.org/v1.0.0/collections', 'https://api.stacspec.org/v1.0.0/ogcapi-features']));
    // Every link of the view keeps sign=true.
    for (const l of landing.body.links.filter((x) => String(x.href).startsWith(`${api.baseUrl}/stac/`))) expect(l.href).toMatch(/\?sign=true$/);

    const child = landing.body.links.find((l) => l.rel === 'child' && String(l.href).includes('/collections/sentinel-2-l2a'))!;
    const collection = await follow(child.href, headers);
    expect(collection.status).toBe(200);
    expect(stac.collection(collection.body)).toEqual([]);
    expect(collection.body.id).toBe('sentinel-2-l2a');

    const search = new URL(link(landing.body, 'search', 'GET').href);
    search.searchParams.set('collections', collection.body.id as string);
    search.searchParams.set('ids', P1);
    const page = await follow(search.href, headers);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^application\/geo\+json/);
    expect(stac.itemCollection(page.body)).toEqual([]);
    expect(ids(page)).toEqual([P1]);

    const reply = await follow(link(page.body.features[0]!, 'self').href, headers);
    const item = { ...reply, body: itemOf(reply) };
    expect(item.status).toBe(200);
    expect(item.headers['content-type']).toMatch(/^application\/geo\+json/);
    expect(stac.item(item.body)).toEqual([]);
    expect(Object.keys(item.body.assets).sort()).toEqual(['B04', 'B08', 'SCL']);
    const href = new URL(item.body.assets.B04!.href);
    expect(href.protocol).toMatch(/^https?:$/);
    expect(href.pathname).toBe(`/${buckets.acme}/${seeded[P1]!.B04!.key}`);
    expect(href.searchParams.get('X-Amz-Expires')).toBe(String(TTL));
    expect(href.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);

    // The download: no credentials but the URL's own.
    const res = await fetch(href);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(seeded[P1]!.B04!.bytes)).toBe(true);
    // Query-string SigV4 signing only the host header: a plain GET needs nothing else.
    expect(href.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(href.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
    expect(href.searchParams.get('X-Amz-Credential')).toMatch(new RegExp(`^${s3.settings.s3AccessKeyId}/`));
    // s3rver 3.7.1 does not verify V4 signatures (it serves unsigned GETs too): check the
    // signature the way S3 does, from the test S3's secret.
    expect(href.searchParams.get('X-Amz-Signature')).toBe(sigV4QuerySignature(href, s3.settings.s3SecretAccessKey));
    const tampered = new URL(href);
    tampered.searchParams.set('X-Amz-Expires', '604800');
    expect(sigV4QuerySignature(tampered, s3.settings.s3SecretAccessKey)).not.toBe(href.searchParams.get('X-Amz-Signature'));
  });

  it('landing page, conformance, collections and every page validate; items and pages are GeoJSON', async () => {
    for (const headers of [admin, auth(keys.acme!), auth(keys.globex!)]) {
      const landing = await get('/stac/v1', headers);
      expect(stac.catalog(landing.body)).toEqual([]);
      expect(link(landing.body, 'conformance').href).toBe(`${api.baseUrl}/stac/v1/conformance`);
      expect(link(landing.body, 'service-desc').href).toBe(`${api.baseUrl}/docs/json`);
      const conformance = await follow(link(landing.body, 'conformance').href, headers);
      expect(conformance.body.conformsTo).toEqual(landing.body.conformsTo);

      const collections = await follow(link(landing.body, 'data').href, headers);
      expect(collections.status).toBe(200);
      expect(collections.body.collections.map((c) => c.id)).toEqual(['sentinel-2-l1c', 'sentinel-2-l2a']);
      for (const c of collections.body.collections) {
        expect(stac.collection(c)).toEqual([]);
        const one = await follow(link(c, 'self').href, headers);
        expect(one.body).toEqual(c);
        const items = await allPages(new URL(link(c, 'items').href).pathname + '?limit=4', headers);
        for (const f of items.features) expect(stac.item(f)).toEqual([]);
      }
    }
  });

  it('collections carry the extent of what the view holds', async () => {
    const acme = await get('/stac/v1/collections/sentinel-2-l2a', auth(keys.acme!));
    // REAL (antimeridian: the stored box spans -180…180), P1, P3.
    expect(acme.body.extent).toEqual({
      spatial: { bbox: [[-180, expect.closeTo(-17.2548501440442, 9), 180, 49]] },
      temporal: { interval: [['2023-08-21T22:19:41.024Z', '2024-04-10T10:25:59.500Z']] },
    });
    const globexL1c = await get('/stac/v1/collections/sentinel-2-l1c', auth(keys.globex!));
    expect(globexL1c.body.extent).toEqual({ spatial: { bbox: [[8.9, 45.9, 10.3, 46.9]] }, temporal: { interval: [['2024-03-24T10:16:51.000Z', '2024-03-24T10:16:51.000Z']] } });
    // Nothing of a level in the view: the whole globe and an open interval.
    const acmeL1c = await get('/stac/v1/collections/sentinel-2-l1c', auth(keys.acme!));
    expect(acmeL1c.body.extent).toEqual({ spatial: { bbox: [[-180, -90, 180, 90]] }, temporal: { interval: [[null, null]] } });
    expect(stac.collection(acmeL1c.body)).toEqual([]);
  });
});

describe('items', () => {
  it('the real T01KAB product: the grid of MTD_TL.xml, the checksums of its manifest, the bbox across the antimeridian (as the hand-made reference item)', async () => {
    const reply = await get(`/stac/v1/collections/sentinel-2-l2a/items/${REAL}`, auth(keys.acme!));
    expect(reply.status).toBe(200);
    const item = itemOf(reply);
    expect(stac.item(item)).toEqual([]);
    expect(item.stac_extensions).toEqual([
      'https://stac-extensions.github.io/eo/v2.0.0/schema.json',
      'https://stac-extensions.github.io/file/v2.1.0/schema.json',
      'https://stac-extensions.github.io/mgrs/v1.0.0/schema.json',
      'https://stac-extensions.github.io/projection/v1.2.0/schema.json',
    ]);
    expect(item.geometry).toEqual(handmade.geometry);
    expect(item.bbox).toEqual(handmade.bbox);
    expect(item.bbox![0]).toBeGreaterThan(item.bbox![2]!);
    const ref = handmade.assets;
    const assets = item.assets;
    for (const band of ['B02', 'B04']) {
      expect(assets[band]).toMatchObject({
        type: 'image/jp2',
        roles: ['data'],
        gsd: 10,
        'file:size': ref[band]!['file:size'],
        'file:checksum': ref[band]!['file:checksum'],
        'proj:epsg': 32701,
        'proj:code': 'EPSG:32701',
        'proj:shape': [10980, 10980],
        'proj:transform': [10, 0, 99960, 0, -10, 8200000],
        'proj:bbox': [99960, 8090200, 209760, 8200000],
      });
      expect(assets[band]!.bands).toEqual([expect.objectContaining({ name: band, 'eo:common_name': ref[band]!.bands![0]!['eo:common_name'] })]);
      expect(assets[band]!.href).toBe(`s3://${buckets.acme}/${seeded[REAL]![band]!.key}`);
    }
    expect(assets.B04_20m).toMatchObject({ gsd: 20, 'proj:shape': [5490, 5490], 'proj:transform': [20, 0, 99960, 0, -20, 8200000], bands: [expect.objectContaining({ name: 'B04', 'eo:center_wavelength': 0.665 })] });
    expect(assets.SCL).toMatchObject({ gsd: 20, data_type: 'uint8', 'proj:shape': [5490, 5490] });
    expect(item.properties).toMatchObject({
      datetime: '2023-08-21T22:19:41.024Z',
      platform: 'sentinel-2a',
      constellation: 'sentinel-2',
      instruments: ['msi'],
      'mgrs:utm_zone': 1,
      'mgrs:latitude_band': 'K',
      'mgrs:grid_square': 'AB',
      's2:processing_baseline': '05.09',
      'proj:epsg': 32701,
    });
    const tile = parseTileMetadata(readFileSync(join(CDSE_FIXTURES_DIR, 'stactools_S2_L2A_MTD_TL.xml'), 'utf8'));
    expect(item.properties['eo:cloud_cover']).toBe(tile.cloudyPixelPercentage);
    expect(item.properties['view:sun_azimuth']).toBe(tile.sunAzimuth);
    expect(item.properties['view:sun_elevation']).toBeCloseTo(90 - tile.sunZenith!, 9);
  });

  it('a product without footprint or metadata files is still a valid item: geometry null, no bbox, no projection', async () => {
    const reply = await get(`/stac/v1/collections/sentinel-2-l2a/items/${P4_BARE}`, admin);
    expect(reply.status).toBe(200);
    const item = itemOf(reply);
    expect(stac.item(item)).toEqual([]);
    expect(item.geometry).toBeNull();
    expect(item).not.toHaveProperty('bbox');
    expect(item.stac_extensions).toEqual(['https://stac-extensions.github.io/eo/v2.0.0/schema.json', 'https://stac-extensions.github.io/file/v2.1.0/schema.json', 'https://stac-extensions.github.io/mgrs/v1.0.0/schema.json']);
    expect(item.properties).toMatchObject({ platform: 'sentinel-2c', 's2:processing_baseline': '05.11' });
    expect(item.assets.B04).not.toHaveProperty('proj:epsg');
  });

  it('assets: size and multihash of the SHA3-256, bands with wavelengths in µm, the band grid; properties from the metadata', async () => {
    const item = itemOf(await get(`/stac/v1/collections/sentinel-2-l2a/items/${P1}`, admin));
    expect(item.assets.B04).toEqual({
      href: `s3://${globalBucket}/${seeded[P1]!.B04!.key}`,
      type: 'image/jp2',
      title: 'Red (B04), 10 m',
      roles: ['data'],
      bands: [{ name: 'B04', 'eo:common_name': 'red', 'eo:center_wavelength': 0.665, 'eo:full_width_half_max': 0.038 }],
      gsd: 10,
      data_type: 'uint16',
      nodata: 0,
      'file:size': seeded[P1]!.B04!.size,
      'file:checksum': `1620${seeded[P1]!.B04!.sha3_256}`,
      'proj:epsg': 32632,
      'proj:code': 'EPSG:32632',
      'proj:shape': [10980, 10980],
      'proj:transform': [10, 0, 499980, 0, -10, 5200020],
      'proj:bbox': [499980, 5090220, 609780, 5200020],
    });
    expect(item.assets.B04_20m).toMatchObject({ gsd: 20, 'proj:transform': [20, 0, 499980, 0, -20, 5200020] });
    expect(item.properties).toMatchObject({ 'eo:cloud_cover': 3.25, 'view:sun_azimuth': 158.9, 'view:sun_elevation': 41.8, 'mgrs:utm_zone': 32, 'mgrs:latitude_band': 'T', 'mgrs:grid_square': 'NS' });
    expect(item.bbox).toEqual([8.9, 45.9, 10.3, 46.9]);
    const tci = itemOf(await get(`/stac/v1/collections/sentinel-2-l1c/items/${P2_L1C}`, admin)).assets.TCI!;
    expect(tci.bands!.map((b) => b['eo:common_name'])).toEqual(['red', 'green', 'blue']);
    expect(tci.data_type).toBe('uint8');
  });
});

describe('views', () => {
  it('an admin key sees the global cache with s3:// hrefs into the global bucket', async () => {
    const { features } = await allPages('/stac/v1/search?limit=100', admin);
    expect(ids({ features }).sort()).toEqual([P1, P2_L1C, P3, P4_BARE, ...PAGED].sort());
    // REAL is no longer in the global cache (only acme's copies are).
    for (const f of features) {
      for (const asset of Object.values(f.assets)) expect(asset.href).toMatch(new RegExp(`^s3://${globalBucket}/sentinel-2/L(1C|2A)/[0-9A-Z]{5}/\\d{4}/\\d{2}/\\d{2}/${f.id}/[^/]+\\.jp2$`));
    }
    for (const [band, { key }] of Object.entries(seeded[P1]!)) {
      expect(features.find((f) => f.id === P1)!.assets[band]!.href).toBe(`s3://${globalBucket}/${key}`);
    }
    expect(Object.keys(features.find((f) => f.id === P1)!.assets).sort()).toEqual(['B02', 'B03', 'B04', 'B04_20m', 'B08', 'SCL']);
  });

  it('a tenant key sees only its products and bands, in its bucket; never another tenant\'s', async () => {
    const acme = await allPages('/stac/v1/search', auth(keys.acme!));
    expect(ids(acme)).toEqual([P3, P1, REAL]);
    const assetsOf = (features: Item[]) => Object.fromEntries(features.map((f) => [f.id, Object.keys(f.assets).sort()]));
    expect(assetsOf(acme.features)).toEqual({ [P3]: ['B04'], [P1]: ['B04', 'B08', 'SCL'], [REAL]: ['B02', 'B04', 'B04_20m', 'SCL'] });
    for (const f of acme.features) for (const asset of Object.values(f.assets)) expect(asset.href).toMatch(new RegExp(`^s3://${buckets.acme}/`));

    const globex = await allPages('/stac/v1/search', auth(keys.globex!));
    expect(assetsOf(globex.features)).toEqual({ [P2_L1C]: ['B04', 'TCI'], [P1]: ['B02'] });
    // Another tenant's product is not found, even by id.
    expect((await get(`/stac/v1/collections/sentinel-2-l1c/items/${P2_L1C}`, auth(keys.acme!))).status).toBe(404);
    expect(ids(await get(`/stac/v1/search?ids=${P2_L1C},${P4_BARE}`, auth(keys.acme!)))).toEqual([]);
    // Signed hrefs point into the tenant's bucket too.
    const signed = await get(`/stac/v1/collections/sentinel-2-l2a/items/${P1}?sign=true`, auth(keys.globex!));
    expect(new URL(itemOf(signed).assets.B02!.href).pathname).toBe(`/${buckets.globex}/${seeded[P1]!.B02!.key}`);
  });

  it('401 without a key or with an unknown one, on every route', async () => {
    const paths = ['/stac/v1', '/stac/v1/conformance', '/stac/v1/collections', '/stac/v1/collections/sentinel-2-l2a', '/stac/v1/collections/sentinel-2-l2a/items', `/stac/v1/collections/sentinel-2-l2a/items/${P1}`, '/stac/v1/search'];
    for (const path of paths) {
      for (const headers of [{}, auth('not-a-key-0123456789')]) {
        const reply = await get(path, headers);
        expect({ path, status: reply.status, code: reply.body.error?.code }).toEqual({ path, status: 401, code: 'unauthorized' });
        expect(reply.headers['www-authenticate']).toMatch(/^Bearer/);
      }
    }
    expect((await request('POST', '/stac/v1/search', { json: {} })).status).toBe(401);
  });
});

describe('search', () => {
  const acme = () => auth(keys.acme!);
  const search = async (query: string, headers = acme()) => {
    const reply = await get(`/stac/v1/search?${query}`, headers);
    expect({ query, status: reply.status }).toEqual({ query, status: 200 });
    expect(stac.itemCollection(reply.body)).toEqual([]);
    return ids(reply);
  };
  const post = async (body: unknown, headers = acme()) => {
    const reply = await request('POST', '/stac/v1/search', { json: body, headers });
    expect({ body, status: reply.status }).toEqual({ body, status: 200 });
    expect(stac.itemCollection(reply.body)).toEqual([]);
    return reply;
  };

  it('bbox: overlap with the footprint box, edges included; across the antimeridian', async () => {
    expect(await search('bbox=9,46,9.5,46.5')).toEqual([P1]);
    expect(await search('bbox=10.3,46.9,11,47')).toEqual([P1]);
    expect(await search('bbox=12.5,48.5,20,60')).toEqual([P3]);
    expect(await search('bbox=0,0,1,1')).toEqual([]);
    // West > east: 179°E to 179°W.
    expect(await search('bbox=179,-18,-179,-16')).toEqual([REAL]);
    expect(await search('bbox=-179.8,-17,-179.75,-16.5')).toEqual([REAL]);
    // The footprint's stored box spans -180…180 (split at the antimeridian): its parts decide.
    expect(await search('bbox=0,-17,1,-16')).toEqual([]);
    expect(await search('bbox=179.5,-17,179.9,-16.5')).toEqual([REAL]);
    // With heights (6 numbers).
    expect(await search('bbox=9,46,0,9.5,46.5,100')).toEqual([P1]);
    expect(ids(await post({ bbox: [12.5, 48.5, 20, 60] }))).toEqual([P3]);
  });

  it('datetime: an instant, a closed interval, open at either end', async () => {
    expect(await search('datetime=2024-03-24T10:16:49.024Z')).toEqual([P1]);
    expect(await search('datetime=2024-03-24T11:16:49.024%2B01:00')).toEqual([P1]);
    expect(await search('datetime=2024-03-24T10:16:49Z')).toEqual([]);
    expect(await search('datetime=2024-03-01T00:00:00Z/2024-04-10T10:25:59.500Z')).toEqual([P3, P1]);
    expect(await search('datetime=../2024-01-01T00:00:00Z')).toEqual([REAL]);
    expect(await search('datetime=/2024-01-01T00:00:00Z')).toEqual([REAL]);
    expect(await search('datetime=2024-04-01T00:00:00Z/..')).toEqual([P3]);
    expect(await search('datetime=2024-04-01T00:00:00Z/')).toEqual([P3]);
    expect(ids(await post({ datetime: '2024-01-01T00:00:00Z/2024-03-31T00:00:00Z' }))).toEqual([P1]);
  });

  it('ids and collections; filters combine', async () => {
    expect(await search(`ids=${REAL},${P3},S2A_MSIL2A_20990101T000000_N0500_R001_T01KAB_20990101T000000`)).toEqual([P3, REAL]);
    expect(await search('collections=sentinel-2-l1c', auth(keys.globex!))).toEqual([P2_L1C]);
    expect(await search('collections=sentinel-2-l1c,sentinel-2-l2a', auth(keys.globex!))).toEqual([P2_L1C, P1]);
    expect(await search('collections=sentinel-2-l2a&bbox=0,0,1,1')).toEqual([]);
    expect(await search(`collections=sentinel-2-l2a&ids=${P1}&bbox=9,46,9.5,46.5&datetime=2024-03-24T00:00:00Z/2024-03-25T00:00:00Z`)).toEqual([P1]);
    expect(ids(await post({ collections: ['sentinel-2-l2a'], ids: [P1, P2_L1C] }, auth(keys.globex!)))).toEqual([P1]);
    // A collection's items are filtered by that collection.
    expect(ids(await get('/stac/v1/collections/sentinel-2-l1c/items', auth(keys.globex!)))).toEqual([P2_L1C]);
  });

  it('GET paging follows next to the end: every item once, newest first, ties by id', async () => {
    const expected = [...PAGED].sort((a, b) => (a.slice(11, 26) === b.slice(11, 26) ? (a < b ? 1 : -1) : a < b ? 1 : -1));
    const { features, pages } = await allPages('/stac/v1/search?limit=5&sign=true', auth(keys.pager!));
    expect(pages).toBe(3);
    expect(ids({ features })).toEqual(expected);
    // Links kept sign=true: every page's hrefs are signed.
    for (const f of features) expect(f.assets.B04!.href).toMatch(/^https?:\/\/.*X-Amz-Signature=/);
    // Limit 1: one page per item, the same order.
    expect(ids(await allPages('/stac/v1/collections/sentinel-2-l2a/items?limit=1', auth(keys.pager!)))).toEqual(expected);
    // With a filter, the next link repeats it.
    const filtered = await allPages('/stac/v1/search?limit=2&datetime=2024-02-11T00:00:00Z/2024-02-12T23:59:59Z&collections=sentinel-2-l2a', auth(keys.pager!));
    expect(ids(filtered)).toEqual(expected.filter((id) => /_2024021[12]T/.test(id)));
  });

  it('POST paging: the next link is a POST of the same body with the token', async () => {
    const seen: string[] = [];
    let reply = await post({ limit: 5, collections: ['sentinel-2-l2a'] }, auth(keys.pager!));
    for (;;) {
      seen.push(...ids(reply));
      const next = reply.body.links.find((l) => l.rel === 'next');
      if (!next) break;
      expect(next).toMatchObject({ method: 'POST', merge: false, href: `${api.baseUrl}/stac/v1/search`, body: { limit: 5, collections: ['sentinel-2-l2a'], token: expect.any(String) as string } });
      reply = await post(next.body, auth(keys.pager!));
    }
    expect(new Set(seen).size).toBe(12);
    expect(seen.sort()).toEqual([...PAGED].sort());
  });
});

describe('bad input', () => {
  const expectError = (reply: Reply, status: number, code: string, field?: string) => {
    expect({ status: reply.status, code: reply.body.error?.code, field: reply.body.error?.field }).toEqual({ status, code, field });
    expect(typeof reply.body.error?.message).toBe('string');
  };

  it('400 invalid_payload naming the parameter: bbox, datetime, limit, token, collections, unknown parameters', async () => {
    const cases: Array<[string, string]> = [
      ['bbox=a,b,c,d', 'bbox'],
      ['bbox=1,2,3', 'bbox'],
      ['bbox=0,50,1,40', 'bbox'],
      ['bbox=0,-95,1,40', 'bbox'],
      ['bbox=-190,0,1,1', 'bbox'],
      ['datetime=yesterday', 'datetime'],
      ['datetime=2024-02-30T00:00:00Z', 'datetime'],
      ['datetime=2024-03-01T00:00:00', 'datetime'],
      ['datetime=../..', 'datetime'],
      ['datetime=2024-03-02T00:00:00Z/2024-03-01T00:00:00Z', 'datetime'],
      ['datetime=a/b/c', 'datetime'],
      ['limit=0', 'limit'],
      ['limit=10001', 'limit'],
      ['limit=ten', 'limit'],
      ['token=not-a-token', 'token'],
      [`token=${Buffer.from('["x","y"]').toString('base64url')}`, 'token'],
      ['collections=sentinel-1-grd', 'collections'],
      ['intersects=%7B%7D', 'intersects'],
      ['sortby=datetime', 'sortby'],
      ['sign=yes', 'sign'],
    ];
    for (const [query, field] of cases) expectError(await get(`/stac/v1/search?${query}`, admin), 400, 'invalid_payload', field);
    expectError(await get('/stac/v1/collections/sentinel-2-l2a/items?bbox=1,2', admin), 400, 'invalid_payload', 'bbox');
    expectError(await request('POST', '/stac/v1/search', { json: { bbox: [0, 50, 1, 40] }, headers: admin }), 400, 'invalid_payload', 'bbox');
    expectError(await request('POST', '/stac/v1/search', { json: { intersects: { type: 'Point', coordinates: [0, 0] } }, headers: admin }), 400, 'invalid_payload', 'intersects');
    expectError(await request('POST', '/stac/v1/search', { json: { limit: 0 }, headers: admin }), 400, 'invalid_payload', 'limit');
    expectError(await request('POST', '/stac/v1/search', { json: { collections: 'sentinel-2-l2a' }, headers: admin }), 400, 'invalid_payload', 'collections');
  });

  it('404 not_found for an unknown collection or item', async () => {
    expectError(await get('/stac/v1/collections/sentinel-1-grd', admin), 404, 'not_found');
    expectError(await get('/stac/v1/collections/sentinel-1-grd/items', admin), 404, 'not_found');
    expectError(await get('/stac/v1/collections/sentinel-2-l2a/items/nope', admin), 404, 'not_found');
    // The product exists, in the other collection.
    expectError(await get(`/stac/v1/collections/sentinel-2-l1c/items/${P1}`, admin), 404, 'not_found');
  });
});

describe('signing needs the object store', () => {
  it('?sign=true on an API built without a store is 503 service_unavailable; unsigned hrefs still work', async () => {
    const bare = await startTestApi({ env: { ADMIN_API_KEY } });
    try {
      const signed = await bare.request('GET', '/stac/v1/search?sign=true', { headers: admin });
      expect({ status: signed.status, code: (signed.body.error as { code?: string } | undefined)?.code }).toEqual({ status: 503, code: 'service_unavailable' });
      expect((await bare.request('GET', '/stac/v1/search', { headers: admin })).status).toBe(200);
    } finally {
      await bare.close();
    }
  });
});

describe('OpenAPI', () => {
  it('documents the STAC routes under the STAC tag, with bearerAuth and GeoJSON replies', async () => {
    type Operation = { tags: string[]; security: unknown; responses: Record<string, { content: Record<string, unknown> }> };
    const doc = (await (await fetch(`${api.baseUrl}/docs/json`)).json()) as { paths: Record<string, Record<string, Operation>>; tags: Array<{ name: string }> };
    const op = (path: string, method: string): Operation => doc.paths[path]![method]!;
    const stacPaths = Object.keys(doc.paths).filter((p) => p.startsWith('/stac/')).sort();
    expect(stacPaths).toEqual([
      '/stac/v1',
      '/stac/v1/collections',
      '/stac/v1/collections/{collectionId}',
      '/stac/v1/collections/{collectionId}/items',
      '/stac/v1/collections/{collectionId}/items/{itemId}',
      '/stac/v1/conformance',
      '/stac/v1/search',
    ]);
    for (const path of stacPaths) {
      for (const operation of Object.values(doc.paths[path]!)) {
        expect(operation.tags).toEqual(['STAC']);
        expect(operation.security).toEqual([{ bearerAuth: [] }]);
      }
    }
    expect(Object.keys(op('/stac/v1/search', 'post').responses['200']!.content)).toEqual(['application/geo+json']);
    expect(Object.keys(op('/stac/v1/collections/{collectionId}/items/{itemId}', 'get').responses['200']!.content)).toEqual(['application/geo+json']);
    expect(Object.keys(op('/stac/v1', 'get').responses['200']!.content)).toEqual(['application/json']);
    expect(doc.tags.map((t) => t.name)).toContain('STAC');
  });
});
