/**
 * Test support for the STAC API (issues 16 and 19):
 *
 * - {@link loadStacValidator}: the STAC 1.1 JSON schemas vendored in `fixtures/stac` (core, the
 *   extensions items declare, GeoJSON, the derived STAC API ItemCollection schema) in ajv, offline,
 *   as that folder's README loads them; a document is valid when its core schema and every
 *   extension it declares accept it (what stac-node-validator does), and every declared extension
 *   must be among the vendored ones.
 * - {@link seedStacProduct}: a cached product as the worker leaves it — band objects (real bytes,
 *   their SHA3-256) in the global bucket registered in `global_scene_cache`, the product's
 *   `upstream_products` row (manifest, footprint, sensing time, parsed metadata files), and copies
 *   in tenant buckets recorded in `tenant_scenes` — written directly, without the worker.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import type { Kysely } from 'kysely';
import { parseProductName, resolveBand, sceneStoragePath, type GranuleMetadata, type SafeFile, type TileGrid } from '@scenecache/core';
import { registerBands, storeUpstreamProduct, upsertTenantScene, type CachedBand, type DB, type GeoJsonGeometry } from '@scenecache/db';
import type { ObjectStore } from '@scenecache/storage';

/** The repository root (tests run from it). */
export const REPO_ROOT = resolve(process.cwd());

/** The vendored STAC schemas (a byte-for-byte copy of shared/fixtures/stac). */
export const STAC_FIXTURES_DIR = join(REPO_ROOT, 'fixtures/stac');

/** The real CDSE fixtures (manifests, metadata files). */
export const CDSE_FIXTURES_DIR = join(REPO_ROOT, 'fixtures/cdse');

const SCHEMA = Object.freeze({
  item: 'https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json',
  collection: 'https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json',
  catalog: 'https://schemas.stacspec.org/v1.1.0/catalog-spec/json-schema/catalog.json',
  itemCollection: 'https://stac-fixtures.invalid/stac-api/v1.0.0/item-collection.json',
});

/** Checks STAC documents; each method returns the errors (empty: valid). */
export interface StacValidator {
  item(doc: unknown): string[];
  collection(doc: unknown): string[];
  catalog(doc: unknown): string[];
  /** The ItemCollection schema (each feature against the Item schema), and each feature's extensions. */
  itemCollection(doc: unknown): string[];
}

/** Load the vendored schemas into ajv (no network). */
export function loadStacValidator(dir = STAC_FIXTURES_DIR): StacValidator {
  const load = (p: string): object => JSON.parse(readFileSync(join(dir, p), 'utf8')) as object;
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormatsPlugin.default(ajv);
  // The README's IRI check (ajv-formats has no iri / iri-reference): no space, <>"{}|\^` or control character.
  const isIriText = (s: string) => /^[^\s<>"{}|\\^`]*$/u.test(s) && ![...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
  ajv.addFormat('iri', (s: string) => isIriText(s) && /^[a-z][a-z0-9+.-]*:/i.test(s) && URL.canParse(s));
  ajv.addFormat('iri-reference', (s: string) => isIriText(s) && URL.canParse(s, 'http://base.invalid/'));
  const urls = load('schemas.json') as Record<string, string>;
  for (const [url, file] of Object.entries(urls)) ajv.addSchema(load(file), url);
  const schema = (url: string): ValidateFunction => {
    const validate = ajv.getSchema(url);
    if (!validate) throw new Error(`no schema ${url} in ${dir}`);
    return validate;
  };
  const run = (url: string, doc: unknown, where: string): string[] => {
    const validate = schema(url);
    return validate(doc) ? [] : [`${where}: ${url}: ${ajv.errorsText(validate.errors)}`];
  };
  const extensions = (doc: unknown, where: string): string[] => {
    const declared = (doc as { stac_extensions?: unknown }).stac_extensions;
    if (!Array.isArray(declared)) return [];
    return declared.flatMap((url: unknown) =>
      typeof url === 'string' && url in urls ? run(url, doc, where) : [`${where}: declares ${String(url)}, which is not among the vendored schemas`],
    );
  };
  const withExtensions = (url: string) => (doc: unknown) => [...run(url, doc, 'document'), ...extensions(doc, 'document')];
  return {
    item: withExtensions(SCHEMA.item),
    collection: withExtensions(SCHEMA.collection),
    catalog: withExtensions(SCHEMA.catalog),
    itemCollection: (doc: unknown) => [
      ...run(SCHEMA.itemCollection, doc, 'item collection'),
      ...((doc as { features?: unknown[] }).features ?? []).flatMap((f, i) => extensions(f, `features[${i}]`)),
    ],
  };
}

/** SHA3-256 of bytes, lower-case hex. */
export function sha3(bytes: Buffer): string {
  return createHash('sha3-256').update(bytes).digest('hex');
}

/** A rectangle footprint (GeoJSON Polygon, WGS84, counter-clockwise). */
export function boxFootprint(west: number, south: number, east: number, north: number): GeoJsonGeometry {
  return { type: 'Polygon', coordinates: [[[west, south], [east, south], [east, north], [west, north], [west, south]]] };
}

/** The EPSG code of a tile's UTM zone (`32TNS` → 32632; latitude bands C–M are south: 327zz). */
export function tileEpsg(tile: string): number {
  return (tile[2]! >= 'N' ? 32600 : 32700) + Number(tile.slice(0, 2));
}

/** A tile's three grids (10, 20, 60 m) for a 109 800 m square with upper-left corner (ulx, uly). */
export function tileGrids(ulx: number, uly: number): Record<'10' | '20' | '60', TileGrid> {
  const grid = (res: number): TileGrid => {
    const n = 109_800 / res;
    return { shape: [n, n], transform: [res, 0, ulx, 0, -res, uly], bbox: [ulx, uly - 109_800, ulx + 109_800, uly] };
  };
  return { '10': grid(10), '20': grid(20), '60': grid(60) };
}

/** Granule metadata as the worker stores it, made up for a tile: its UTM EPSG, grids at (ulx, uly), sun and clouds. */
export function syntheticGranuleMetadata(tile: string, options: { ulx?: number; uly?: number; cloud?: number; sunZenith?: number; sunAzimuth?: number; baseline?: string } = {}): GranuleMetadata {
  return {
    tile: {
      epsg: tileEpsg(tile),
      grids: tileGrids(options.ulx ?? 399_960, options.uly ?? 5_000_040),
      sunZenith: options.sunZenith ?? 41.5,
      sunAzimuth: options.sunAzimuth ?? 160.25,
      cloudyPixelPercentage: options.cloud ?? 12.5,
    },
    product: { processingBaseline: options.baseline ?? '05.10', cloudCoverage: options.cloud ?? 12.5 },
    sources: { tile: `GRANULE/x/MTD_TL.xml`, product: 'MTD_MSIL2A.xml' },
  };
}

/** The SAFE path of a band file of a product (the real layout: L2A `R10m/…_B04_10m.jp2`, L1C `…_B04.jp2`). */
export function bandSafePath(sceneId: string, bandId: string): string {
  const p = parseProductName(sceneId);
  const band = resolveBand(p.level, bandId);
  const sensing = sceneId.split('_')[2]!;
  return `GRANULE/${p.level}_T${p.tile}_A000001_${sensing}/${band.folder}T${p.tile}_${sensing}${band.fileSuffix}`;
}

/** A tenant's copy of some bands of a seeded product. */
export interface SeedTenantCopy {
  readonly tenantId: string;
  /** The tenant's bucket (created if missing). */
  readonly bucket: string;
  /** Band ids copied there (a subset of the product's). */
  readonly bands: readonly string[];
}

/** Input of {@link seedStacProduct}. */
export interface SeedStacProductInput {
  readonly db: Kysely<DB>;
  readonly store: ObjectStore;
  /** The global bucket (created if missing). */
  readonly globalBucket: string;
  readonly sceneId: string;
  /** Band ids to cache, each with its bytes (default: 64 bytes derived from the band and scene). */
  readonly bands: readonly string[] | Readonly<Record<string, Buffer>>;
  /** Default: a 1° box at (7, 45). `null`: the catalogue gave none. */
  readonly footprint?: GeoJsonGeometry | null;
  /** Default: the name's sensing time. */
  readonly sensedAt?: Date;
  /** Default: {@link syntheticGranuleMetadata} of the tile. `null`: not read yet. */
  readonly granuleMetadata?: GranuleMetadata | null;
  /** More manifest files (e.g. the real manifest); the bands' files are always added. */
  readonly files?: readonly SafeFile[];
  /** Register the bands in `global_scene_cache` (default true). */
  readonly global?: boolean;
  readonly tenants?: readonly SeedTenantCopy[];
}

/** What {@link seedStacProduct} wrote: band id → key, size, SHA3-256 and bytes. */
export type SeededBands = Record<string, { key: string; size: number; sha3_256: string; bytes: Buffer }>;

/**
 * Write a cached product the way the worker leaves it (see the module comment).
 * @returns the bands as written (the same key in the global and the tenant buckets).
 */
export async function seedStacProduct(input: SeedStacProductInput): Promise<SeededBands> {
  const { db, store, sceneId } = input;
  const p = parseProductName(sceneId);
  const path = sceneStoragePath(p);
  const bodies: Record<string, Buffer> = Array.isArray(input.bands)
    ? Object.fromEntries((input.bands as readonly string[]).map((b) => [b, Buffer.from(`${sceneId}/${b}/`.repeat(4))]))
    : { ...(input.bands as Readonly<Record<string, Buffer>>) };
  const seeded: SeededBands = {};
  const files: SafeFile[] = [...(input.files ?? [])];
  await store.ensureBucket(input.globalBucket);
  for (const [band, bytes] of Object.entries(bodies)) {
    const safePath = bandSafePath(sceneId, band);
    const key = `${path}/${safePath.slice(safePath.lastIndexOf('/') + 1)}`;
    const digest = sha3(bytes);
    seeded[band] = { key, size: bytes.length, sha3_256: digest, bytes };
    if (!files.some((f) => f.path === safePath)) files.push({ path: safePath, size: bytes.length, sha3_256: digest });
    if (input.global !== false) await store.client.send(new PutObjectCommand({ Bucket: input.globalBucket, Key: key, Body: bytes }));
  }
  await storeUpstreamProduct(db, {
    sceneId,
    cdseProductId: `00000000-0000-4000-8000-${createHash('sha256').update(sceneId).digest('hex').slice(0, 12)}`,
    product: { Name: `${sceneId}.SAFE` },
    files,
    footprint: input.footprint === undefined ? boxFootprint(7, 45, 8, 46) : (input.footprint ?? undefined),
    sensedAt: input.sensedAt ?? p.sensingTime,
    granuleMetadata: input.granuleMetadata === undefined ? syntheticGranuleMetadata(p.tile) : (input.granuleMetadata ?? undefined),
  });
  if (input.global !== false) {
    const entries: Record<string, CachedBand> = Object.fromEntries(
      Object.entries(seeded).map(([band, s]): [string, CachedBand] => [
        band,
        { key: s.key, size: s.size, sha3_256: s.sha3_256, etag: 'e', safe_path: bandSafePath(sceneId, band), registered_at: new Date().toISOString() },
      ]),
    );
    await registerBands(db, { sceneId, storageBucket: input.globalBucket, storagePath: path, sensingDate: p.sensingDate, level: p.level, tile: p.tile, mission: p.mission, cdseProductId: null, bands: entries });
  }
  for (const copy of input.tenants ?? []) {
    await store.ensureBucket(copy.bucket);
    const keys: Record<string, string> = {};
    for (const band of copy.bands) {
      const s = seeded[band];
      if (!s) throw new Error(`seedStacProduct: tenant ${copy.tenantId} gets ${band}, which ${sceneId} does not have`);
      await store.client.send(new PutObjectCommand({ Bucket: copy.bucket, Key: s.key, Body: s.bytes }));
      keys[band] = s.key;
    }
    await upsertTenantScene(db, { tenantId: copy.tenantId, sceneId, bucket: copy.bucket, bands: keys });
  }
  return seeded;
}
