/**
 * Issue 19 — GDAL as a real STAC client: `gdalinfo 'STACIT:"<search URL>"'` (GDAL's STAC items
 * driver, GDAL ≥ 3.4; CI installs Debian's gdal-bin, 3.6.2 on this machine) with a tenant's key in
 * `GDAL_HTTP_HEADERS` reads the tenant's search pages, follows their `next` links, and lists one
 * subdataset per asset (band id) — per asset and CRS when the items of an asset are in several
 * UTM zones — and nothing of another tenant's products.
 *
 * What GDAL 3.6.2 prints for a search of one collection (frmts/stacit/stacitdataset.cpp,
 * `SetSubdatasets`): `Driver: VRT/Virtual Raster`, `Size is 0, 0`, `Subdatasets:`, then `SUBDATASET_<n>_NAME=STACIT:"<url>":asset=<band>` when all items of the asset
 * share a CRS, `…:asset=<band>,crs=EPSG_<code>` per CRS otherwise (and `collection=<id>,` first
 * when the pages span several collections), with `SUBDATASET_<n>_DESC=Asset <band> of <url>[ in
 * CRS EPSG:<code>]`. It skips items without the projection extension and assets without
 * `proj:epsg` (v1.x; it ignores v2's `proj:code`) or without two of `proj:shape`,
 * `proj:transform`, `proj:bbox`: "No compatible asset found" is what it says when none is left.
 * Listing needs no band file (opening a subdataset would read the JPEG2000 files themselves).
 *
 * The test runs whenever `gdalinfo` exists and fails when it is missing under `CI=true`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createApiKey } from '@scenecache/db';
import { startTestS3, type TestS3 } from '@scenecache/testing';
import { startTestApi, type TestApi } from './helpers.js';
import { boxFootprint, seedStacProduct, syntheticGranuleMetadata } from './stac-helpers.js';

const run = promisify(execFile);

/** Where gdalinfo is, or undefined. */
async function findGdalinfo(): Promise<string | undefined> {
  try {
    const { stdout } = await run('sh', ['-c', 'command -v gdalinfo']);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

const ACME_L2A_32 = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const ACME_L2A_32_LATER = 'S2A_MSIL2A_20240329T101701_N0510_R065_T32TNT_20240329T140000';
const ACME_L2A_33 = 'S2B_MSIL2A_20240410T102559_N0510_R108_T33UUP_20240410T150000';
const GLOBEX_L2A = 'S2A_MSIL2A_20240401T101701_N0510_R065_T31TCJ_20240401T140000';

let gdalinfo: string | undefined;
let s3: TestS3;
let api: TestApi;
const keys: Record<string, string> = {};

beforeAll(async () => {
  gdalinfo = await findGdalinfo();
  s3 = await startTestS3();
  api = await startTestApi({ env: { ADMIN_API_KEY: 'test-admin-key-stac-gdal-012345', GLOBAL_BUCKET: s3.uniqueBucket('stac-gdal-global') }, store: s3.store });
  for (const tenant of ['acme', 'globex']) keys[tenant] = (await createApiKey(api.db, { tenantId: tenant })).secret;
  const base = { db: api.db, store: s3.store, globalBucket: api.settings.globalBucket };
  const acme = s3.uniqueBucket('stac-gdal-acme');
  const globex = s3.uniqueBucket('stac-gdal-globex');
  // acme: B04, B08 and SCL in zone 32 (two products), B04 in zone 33 too.
  await seedStacProduct({ ...base, sceneId: ACME_L2A_32, bands: ['B04', 'B08', 'SCL', 'B02'], footprint: boxFootprint(8.9, 45.9, 10.3, 46.9), granuleMetadata: syntheticGranuleMetadata('32TNS', { ulx: 499_980, uly: 5_200_020 }), tenants: [{ tenantId: 'acme', bucket: acme, bands: ['B04', 'B08', 'SCL'] }, { tenantId: 'globex', bucket: globex, bands: ['B02'] }] });
  await seedStacProduct({ ...base, sceneId: ACME_L2A_32_LATER, bands: ['B04'], footprint: boxFootprint(8.9, 46.8, 10.3, 47.8), granuleMetadata: syntheticGranuleMetadata('32TNT', { ulx: 499_980, uly: 5_300_040 }), tenants: [{ tenantId: 'acme', bucket: acme, bands: ['B04'] }] });
  await seedStacProduct({ ...base, sceneId: ACME_L2A_33, bands: ['B04'], footprint: boxFootprint(12, 48, 13.5, 49), granuleMetadata: syntheticGranuleMetadata('33UUP', { ulx: 300_000, uly: 5_400_000 }), tenants: [{ tenantId: 'acme', bucket: acme, bands: ['B04'] }] });
  // globex alone: B11 and B8A (acme has neither), in zone 31.
  await seedStacProduct({ ...base, sceneId: GLOBEX_L2A, bands: ['B11', 'B8A'], footprint: boxFootprint(0.5, 44, 2, 45), granuleMetadata: syntheticGranuleMetadata('31TCJ', { ulx: 300_000, uly: 5_000_040 }), tenants: [{ tenantId: 'globex', bucket: globex, bands: ['B11', 'B8A'] }] });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await s3?.close();
});

/** Run `gdalinfo STACIT:"<url>"` with a key; stdout and stderr. */
async function gdalinfoStacit(url: string, key: string): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(gdalinfo!, [`STACIT:"${url}"`], {
      env: { ...process.env, GDAL_HTTP_HEADERS: `Authorization: Bearer ${key}`, CPL_DEBUG: 'OFF', GDAL_HTTP_TIMEOUT: '30' },
      timeout: 60_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : -1 };
  }
}

/** The `SUBDATASET_<n>_NAME=` values, in order. */
function subdatasetNames(stdout: string): string[] {
  return [...stdout.matchAll(/^\s*SUBDATASET_\d+_NAME=(.*)$/gm)].map((m) => m[1]!.trim());
}

describe('gdalinfo STACIT on a tenant search URL', () => {
  it('gdalinfo is installed (CI installs gdal-bin; this test never skips there)', () => {
    if (process.env.CI === 'true') expect(gdalinfo).toEqual(expect.stringMatching(/gdalinfo$/));
  });

  it("lists one subdataset per cached band of the tenant (per CRS where its items span UTM zones), none of another tenant's", async () => {
    if (!gdalinfo) {
      console.warn('gdalinfo not found: the GDAL STACIT test did not run (apt-get install gdal-bin)');
      return;
    }
    // limit=2: GDAL follows the next links (3 items of acme on 2 pages).
    const url = `${api.baseUrl}/stac/v1/search?collections=sentinel-2-l2a&limit=2`;
    const acme = await gdalinfoStacit(url, keys.acme!);
    expect({ code: acme.code, stderr: acme.stderr }).toEqual({ code: 0, stderr: '' });
    // STACIT datasets are VRTs: the listing has no raster of its own (several assets or CRSs).
    expect(acme.stdout).toMatch(/^Driver: VRT\/Virtual Raster\nFiles: none associated\nSize is 0, 0\nSubdatasets:$/m);
    expect(subdatasetNames(acme.stdout)).toEqual([
      `STACIT:"${url}":asset=B04,crs=EPSG_32632`,
      `STACIT:"${url}":asset=B04,crs=EPSG_32633`,
      `STACIT:"${url}":asset=B08`,
      `STACIT:"${url}":asset=SCL`,
    ]);
    expect(acme.stdout).toContain(`SUBDATASET_1_DESC=Asset B04 of ${url} in CRS EPSG:32632`);
    for (const other of ['B02', 'B11', 'B8A', 'EPSG_32631']) expect(acme.stdout).not.toContain(other);

    const globex = await gdalinfoStacit(url, keys.globex!);
    expect(globex.code).toBe(0);
    expect(subdatasetNames(globex.stdout)).toEqual([`STACIT:"${url}":asset=B02`, `STACIT:"${url}":asset=B11`, `STACIT:"${url}":asset=B8A`]);

    // Signed hrefs list the same way (the URL keeps sign=true on every page).
    const signedUrl = `${url}&sign=true`;
    expect(subdatasetNames((await gdalinfoStacit(signedUrl, keys.acme!)).stdout)).toHaveLength(4);
  });

  it('without a key GDAL gets 401 and lists nothing', async () => {
    if (!gdalinfo) return;
    const res = await gdalinfoStacit(`${api.baseUrl}/stac/v1/search`, 'not-a-key-0123456789');
    expect(res.code).not.toBe(0);
    expect(subdatasetNames(res.stdout)).toEqual([]);
    expect(res.stderr).toMatch(/401/);
  });
});
