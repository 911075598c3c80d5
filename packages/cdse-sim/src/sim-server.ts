/**
 * The sim's HTTP server: the three CDSE hosts on one port, told apart by path prefix.
 *
 * | CDSE host                                    | sim base URL                                              |
 * |----------------------------------------------|-----------------------------------------------------------|
 * | identity.dataspace.copernicus.eu (token)     | `{url}/auth/realms/CDSE/protocol/openid-connect/token`    |
 * | catalogue.dataspace.copernicus.eu/odata/v1   | `{url}/odata/v1`                                          |
 * | download.dataspace.copernicus.eu/odata/v1    | `{url}/download/odata/v1`                                 |
 * | (the sim's own control API)                  | `{url}/__sim/...`                                         |
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { createLogger, parseProductName, type SafeFile } from '@scenecache/core';
import { handleAdmin } from './admin-routes.js';
import { handleCatalogue } from './catalogue-routes.js';
import { CounterStore, fileDownloads, type DownloadCounter, type SimCounters } from './counters.js';
import { handleDownload } from './download-routes.js';
import { FaultInjector, type ActiveFault, type ChaosOptions, type Fault } from './fault-injection.js';
import { sendDetail } from './http-util.js';
import { loadMetadataTemplates, type MetadataKind } from './metadata-template.js';
import { resolveOptions, type CdseSimOptions, type SimContext } from './options.js';
import { ProductCatalogue, type ProductLayout } from './product-catalogue.js';
import { loadSafeTemplates } from './safe-template.js';
import { sourceStream } from './synthetic-bytes.js';
import type { TileGridParams } from './tile-grid.js';
import { handleToken, TOKEN_PATH } from './token-routes.js';
import { TokenService } from './token-service.js';

/** The three CDSE base URLs, as scenecache's settings take them (`CDSE_TOKEN_URL`, ...). */
export interface CdseSimUrls {
  /** `POST` here for tokens (real: identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token). */
  tokenUrl: string;
  /** OData catalogue base, no trailing slash (real: catalogue.dataspace.copernicus.eu/odata/v1). */
  catalogueUrl: string;
  /** OData download base, no trailing slash (real: download.dataspace.copernicus.eu/odata/v1). */
  downloadUrl: string;
}

const CATALOGUE_PREFIX = '/odata/v1';
const DOWNLOAD_PREFIX = '/download/odata/v1';
const ADMIN_PREFIX = '/__sim';

/** The three base URLs of a sim listening at `baseUrl` (e.g. `http://127.0.0.1:8089`). */
export function cdseSimUrls(baseUrl: string): CdseSimUrls {
  const base = baseUrl.replace(/\/+$/, '');
  return { tokenUrl: `${base}${TOKEN_PATH}`, catalogueUrl: `${base}${CATALOGUE_PREFIX}`, downloadUrl: `${base}${DOWNLOAD_PREFIX}` };
}

/** One metadata file of a product as the sim serves it (no faults). */
export interface ServedMetadataFile {
  /** SAFE-relative path: `GRANULE/<granule>/MTD_TL.xml`, `MTD_MSIL1C.xml` or `MTD_MSIL2A.xml`. */
  readonly path: string;
  /** The exact bytes served (UTF-8 XML). */
  readonly bytes: Buffer;
  /** Size in bytes, as the served manifest lists it. */
  readonly size: number;
  /** SHA3-256 of `bytes`, lower-case hex (the manifest writes it upper-case). */
  readonly sha3_256: string;
}

/**
 * What a product's served metadata files state, for tests to assert on what a client parsed
 * (core's `parseTileMetadata` / `parseProductLevelMetadata`) and stored.
 */
export interface ServedProductMetadata {
  /** SAFE-relative paths of the two files, as core's `GranuleMetadata.sources`. */
  readonly sources: { readonly tile: string; readonly product: string };
  /** `HORIZONTAL_CS_CODE` as a number, e.g. 32701 (= `grid.epsg`). */
  readonly epsg: number;
  /** The tile's CRS and its 10/20/60 m grids (`Tile_Geocoding`), in core's `TileGrid` shape. */
  readonly grid: TileGridParams;
  /** `Cloud_Coverage_Assessment` = `CLOUDY_PIXEL_PERCENTAGE` = the catalogue's `cloudCover`, percent. */
  readonly cloudCover: number;
  /** `PROCESSING_BASELINE`, e.g. `05.10` for a name's `N0510`. */
  readonly processingBaseline: string;
}

/** A running sim. */
export interface CdseSim {
  /** Base URL, `http://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string;
  /** The three CDSE base URLs to put in settings. */
  readonly urls: CdseSimUrls;
  /** The first configured account. */
  readonly credentials: { username: string; password: string };
  /** A snapshot of the counters (see counters.ts for how downloads are counted). */
  counters(): SimCounters;
  /** Zero the counters. */
  resetCounters(): void;
  /** Summed counters of product `name`'s band files whose path ends with `pathSuffix` (e.g. `_B04.jp2`). */
  downloadsOf(name: string, pathSuffix?: string): DownloadCounter;
  /** List a fault. @throws TypeError when it is invalid. */
  addFault(fault: Fault): ActiveFault;
  /** The listed faults. */
  faults(): ActiveFault[];
  /** Remove every fault and turn chaos off. */
  clearFaults(): void;
  /** Turn seeded chaos on or off (`undefined`). */
  setChaos(chaos: ChaosOptions | undefined): void;
  /**
   * The OData Id of product `name` (with or without `.SAFE`); registers it like a catalogue lookup.
   * @throws ValidationError for an invalid name; Error when the product is configured unknown.
   */
  productId(name: string): string;
  /**
   * The band files of product `name` as its served manifest lists them (path, synthetic size,
   * lower-case SHA3-256). Hashes the product on first use (about 2 s per GB).
   * @throws ValidationError for an invalid name; Error when the product is configured unknown.
   */
  productFiles(name: string): Promise<SafeFile[]>;
  /**
   * The metadata files of product `name` (`MTD_TL.xml`, `MTD_MSIL*.xml`) as its served manifest
   * lists them (path, served size, lower-case SHA3-256). Hashes the product's bands on first use.
   * @throws ValidationError for an invalid name; Error when the product is configured unknown.
   */
  metadataFiles(name: string): Promise<SafeFile[]>;
  /**
   * The served bytes of product `name`'s tile (`MTD_TL.xml`) or product (`MTD_MSIL*.xml`)
   * metadata file, rendered from the fixtures for the product, with its path, size and SHA3-256.
   * @throws ValidationError for an invalid name; Error when the product is configured unknown.
   */
  metadataFile(name: string, kind: MetadataKind): ServedMetadataFile;
  /**
   * What product `name`'s metadata files state: the tile's EPSG code and grids (ULX/ULY per
   * resolution), cloud cover and processing baseline, and the files' paths.
   * @throws ValidationError for an invalid name; Error when the product is configured unknown.
   */
  productMetadata(name: string): ServedProductMetadata;
  /**
   * The exact bytes served for `path` (a band file's or a metadata file's SAFE-relative path, or
   * `manifest.safe`), without faults: for byte-identity checks.
   * @throws ValidationError for an invalid name; Error for an unknown product or a path the sim does not serve.
   */
  fileBytes(name: string, path: string): Readable;
  /** Stop listening, cut open connections, stop hashing. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start a sim.
 * @param options - see {@link CdseSimOptions}; every field has a default.
 * @throws TypeError for an invalid option; Error when the fixture manifests cannot be read or the port is taken.
 */
export async function startCdseSim(options: Partial<CdseSimOptions> = {}): Promise<CdseSim> {
  const opts = resolveOptions(options);
  const log = opts.logger ?? createLogger('cdse-sim', opts.logLevel);
  const [safeTemplates, metadataTemplates] = await Promise.all([loadSafeTemplates(opts.fixturesDir), loadMetadataTemplates(opts.fixturesDir)]);
  const catalogue = new ProductCatalogue(safeTemplates, metadataTemplates, opts);
  let url = '';
  const ctx: SimContext = {
    options: opts,
    catalogue,
    tokens: new TokenService(opts.users, opts.accessTokenTtlSeconds, opts.refreshTokenTtlSeconds, () => `${url}/auth/realms/CDSE`),
    counters: new CounterStore(),
    faults: new FaultInjector(opts.chaos),
    log,
    slotsInUse: 0,
  };
  const credentials = { username: opts.users[0]!.username, password: opts.users[0]!.password };
  const info = (): unknown => ({ url, urls: cdseSimUrls(url), credentials });

  const server = createServer((req, res) => void dispatch(ctx, req, res, info));
  server.listen(opts.port, opts.host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  const { port } = server.address() as AddressInfo;
  const host = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  url = `http://${host}:${port}`;
  log.info({ url, sizeScale: opts.sizeScale, maxConcurrentDownloads: opts.maxConcurrentDownloads }, 'cdse-sim listening');

  const known = (name: string): ProductLayout => {
    const product = parseProductName(name);
    const layout = catalogue.find(product.sceneId);
    if (!layout) throw new Error(`cdse-sim: product ${product.sceneId} is configured unknown`);
    return layout;
  };
  const metadataPath = (layout: ProductLayout, kind: MetadataKind): string => {
    const f = layout.files.find((x) => x.metadata === kind);
    if (!f) throw new Error(`cdse-sim: the manifest of ${layout.product.sceneId} lists no ${kind} metadata file`);
    return f.path;
  };
  let closing: Promise<void> | undefined;
  return {
    url,
    urls: cdseSimUrls(url),
    credentials,
    counters: () => ctx.counters.snapshot(),
    resetCounters: () => ctx.counters.reset(),
    downloadsOf: (name, suffix) => fileDownloads(ctx.counters.snapshot(), name, suffix),
    addFault: (f) => ctx.faults.add(f),
    faults: () => ctx.faults.list(),
    clearFaults: () => ctx.faults.clear(),
    setChaos: (c) => ctx.faults.setChaos(c),
    productId: (name) => known(name).id,
    productFiles: async (name) => [...(await catalogue.servedManifest(known(name))).bandFiles],
    metadataFiles: async (name) => [...(await catalogue.servedManifest(known(name))).metadataFiles],
    metadataFile: (name, kind) => {
      const layout = known(name);
      const path = metadataPath(layout, kind);
      const bytes = catalogue.metadataBytes(layout, path)!;
      return { path, bytes, size: bytes.length, sha3_256: createHash('sha3-256').update(bytes).digest('hex') };
    },
    productMetadata: (name) => {
      const layout = known(name);
      const { grid, cloudCover, baseline } = layout.identity;
      return { sources: { tile: metadataPath(layout, 'tile'), product: metadataPath(layout, 'product') }, epsg: grid.epsg, grid, cloudCover, processingBaseline: baseline };
    },
    fileBytes: (name, path) => {
      const layout = known(name);
      if (path === 'manifest.safe') {
        return Readable.from((async function* () {
          yield (await catalogue.servedManifest(layout)).bytes;
        })());
      }
      const metadata = catalogue.metadataBytes(layout, path);
      if (metadata) return Readable.from([metadata]);
      const source = catalogue.bandSource(layout, path);
      if (!source) throw new Error(`cdse-sim: ${path} is not a band or metadata file of ${layout.product.sceneId}`);
      return sourceStream(source);
    },
    close: () =>
      (closing ??= (async () => {
        catalogue.close();
        const closed = once(server, 'close');
        server.close();
        server.closeAllConnections();
        await closed;
        log.info({ url }, 'cdse-sim closed');
      })()),
  };
}

/** Route one request; never rejects (errors become 500, or a cut connection once streaming began). */
async function dispatch(ctx: SimContext, req: IncomingMessage, res: ServerResponse, info: () => unknown): Promise<void> {
  try {
    const u = new URL(req.url ?? '/', 'http://sim');
    // Some clients percent-encode OData's parentheses and `$`.
    const path = u.pathname.replace(/%28/gi, '(').replace(/%29/gi, ')').replace(/%24/gi, '$');
    const base = `http://${req.headers.host ?? 'localhost'}`;
    ctx.log.debug({ method: req.method, path }, 'request');
    if (path === TOKEN_PATH) return await handleToken(ctx, req, res);
    if (path.startsWith(`${CATALOGUE_PREFIX}/`)) return handleCatalogue(ctx, req, res, path.slice(CATALOGUE_PREFIX.length), u.searchParams, `${base}${DOWNLOAD_PREFIX}`);
    if (path.startsWith(`${DOWNLOAD_PREFIX}/`)) return await handleDownload(ctx, req, res, path.slice(DOWNLOAD_PREFIX.length), `${base}${DOWNLOAD_PREFIX}`);
    if (path.startsWith(`${ADMIN_PREFIX}/`)) return await handleAdmin(ctx, req, res, path.slice(ADMIN_PREFIX.length), info);
    sendDetail(res, 404, 'Not Found');
  } catch (err) {
    ctx.log.error({ err, url: req.url }, 'request failed');
    if (!res.headersSent) sendDetail(res, 500, 'Internal Server Error');
    else res.destroy();
  }
}
