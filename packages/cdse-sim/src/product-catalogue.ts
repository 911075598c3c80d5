/**
 * The products the sim knows: every valid Sentinel-2 product name (core's `parseProductName`)
 * except the configured unknown ones, each with the layout of its level's fixture manifest
 * (safe-template.ts), synthetic band files (synthetic-bytes.ts), real metadata files
 * (metadata-template.ts) and a served `manifest.safe`.
 *
 * Band files are the `.jp2` files under `IMG_DATA/`; their served size is the fixture's size
 * times `sizeScale` (at least 1 byte) and their served SHA3-256 is that of the synthetic bytes.
 * Metadata files are the granule's `MTD_TL.xml` and the product's `MTD_MSIL1C.xml` /
 * `MTD_MSIL2A.xml`, rendered for the product from the real fixture files; the manifest lists their
 * rendered size and SHA3-256. Other entries keep the fixture's size and checksum (the sim does not
 * serve their bytes). The SHA3 of ~1 GB of band bytes takes seconds, so it is computed on the
 * first request for the product's manifest, once (concurrent requests share the computation), and
 * kept in memory. Metadata bytes (~0.6 MB per product) are rendered when asked for, not kept.
 */
import { createHash } from 'node:crypto';
import { parseProductName, type ProductLevel, type SafeFile, type SentinelProduct } from '@scenecache/core';
import { metadataIdentityOf, type MetadataIdentity } from './metadata-identity.js';
import { metadataKindOf, type MetadataKind, type MetadataTemplates } from './metadata-template.js';
import { buildTree, type TreeNode } from './node-tree.js';
import { renderSafeManifest, type SafeTemplate } from './safe-template.js';
import { sha3OfSource, syntheticSource, type ByteSource } from './synthetic-bytes.js';
import { gmlCoordinates, tileFootprint } from './tile-footprint.js';

/** One file of a product's layout. */
export interface LayoutFile {
  /** SAFE-relative path without `./`. */
  readonly path: string;
  /** Served size in bytes (band files: scaled; metadata files: rendered; other files: the fixture's). */
  readonly size: number;
  /** Whether this is a band file (`IMG_DATA/**.jp2`), served with synthetic bytes. */
  readonly isBand: boolean;
  /** Which metadata file this is (`GRANULE/<granule>/MTD_TL.xml`, `MTD_MSIL*.xml`), served rendered; undefined for others. */
  readonly metadata: MetadataKind | undefined;
}

/** A product's identity and layout (no checksums: those need hashing, see {@link ServedManifest}). */
export interface ProductLayout {
  readonly product: SentinelProduct;
  /** The OData `Id`: a UUID derived from the SAFE name (see {@link productIdOf}). */
  readonly id: string;
  /** Every file the manifest lists, in manifest order. */
  readonly files: readonly LayoutFile[];
  /** Size in bytes of the served `manifest.safe`. */
  readonly manifestSize: number;
  /** Sum of every file's size plus the manifest's, in bytes (the catalogue's `ContentLength`). */
  readonly contentLength: number;
  /** The SAFE folder tree, `manifest.safe` included. */
  readonly tree: TreeNode;
  /** The manifest with the product's identity, fixture sizes and checksums (internal). */
  readonly renderedXml: string;
  /** What the product's metadata files state (tile grid, cloud cover, ids); the catalogue's `cloudCover` too. */
  readonly identity: MetadataIdentity;
}

/** The served `manifest.safe` and the band and metadata files it describes. */
export interface ServedManifest {
  /** The exact bytes served at `Nodes(manifest.safe)/$value` (UTF-8 XML). */
  readonly bytes: Buffer;
  /** Band files with their served size and synthetic SHA3-256 (lower-case, as core parses it). */
  readonly bandFiles: readonly SafeFile[];
  /** Metadata files with their served size and SHA3-256 (lower-case), in manifest order. */
  readonly metadataFiles: readonly SafeFile[];
}

/** Options of {@link ProductCatalogue}. */
export interface ProductCatalogueOptions {
  /** Multiplier of band file sizes; results are rounded, minimum 1 byte. */
  readonly sizeScale: number;
  /** Product names (with or without `.SAFE`) the catalogue does not know. */
  readonly unknownProducts: Iterable<string>;
  /** Product discriminators (`YYYYMMDDTHHMMSS`) whose products the catalogue does not know. */
  readonly missingDiscriminators: Iterable<string>;
}

const BAND_PATH_RE = /(^|\/)IMG_DATA\/(.+\/)?[^/]+\.jp2$/;
const DATA_OBJECT_RE = /<dataObject\b[^>]*>[\s\S]*?<\/dataObject>/g;
const HREF_RE = /<fileLocation\b[^>]*\bhref="\.?\/?([^"]+)"/;
const SIZE_RE = /(<byteStream\b[^>]*\bsize=")(\d+)(")/;
const SHA3_RE = /(<checksum\b[^>]*checksumName="SHA3-256"[^>]*>)\s*[0-9A-Fa-f]{64}\s*(<\/checksum>)/;
const MAX_CACHED = 5000;

/**
 * The OData `Id` of a product: a version-5-shaped UUID from `sha256("cdse-sim:<SAFE name>")`.
 * Real CDSE Ids look the same (e.g. `db0c8ef3-8ec0-5185-a537-812dad3c58f8`, fixture
 * `cdse_docs_nodes_listing_S2_L1C_root.json`), and deriving it keeps it stable across restarts.
 */
export function productIdOf(safeName: string): string {
  const b = createHash('sha256').update(`cdse-sim:${safeName}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Rewrite the manifest's entries: for each path in `values`, its `size` attribute and its
 * SHA3-256 (written upper-case, as real manifests do).
 */
function rewriteEntries(xml: string, values: ReadonlyMap<string, { size: number; sha3: string }>): string {
  return xml.replace(DATA_OBJECT_RE, (block) => {
    const v = values.get(HREF_RE.exec(block)?.[1] ?? '');
    if (!v) return block;
    return block.replace(SIZE_RE, `$1${v.size}$3`).replace(SHA3_RE, `$1${v.sha3.toUpperCase()}$2`);
  });
}

/** The product registry. All methods are safe to call concurrently. */
export class ProductCatalogue {
  private readonly unknown: Set<string>;
  private readonly missingDiscriminators: Set<string>;
  private readonly layouts = new Map<string, ProductLayout>();
  private readonly ids = new Map<string, string>();
  private readonly manifests = new Map<string, Promise<ServedManifest>>();
  /** Aborts hashing in progress when the sim closes, so no work outlives it. */
  private readonly closing = new AbortController();

  constructor(
    private readonly templates: Readonly<Record<ProductLevel, SafeTemplate>>,
    private readonly metadataTemplates: Readonly<Record<ProductLevel, MetadataTemplates>>,
    private readonly options: ProductCatalogueOptions,
  ) {
    this.unknown = new Set([...options.unknownProducts].map((n) => n.replace(/\.SAFE$/, '')));
    this.missingDiscriminators = new Set(options.missingDiscriminators);
  }

  /** The layout of product `name` (with or without `.SAFE`), or `undefined` when it is not a valid or known product. */
  find(name: string): ProductLayout | undefined {
    let product: SentinelProduct;
    try {
      product = parseProductName(name);
    } catch {
      return undefined;
    }
    if (this.unknown.has(product.sceneId) || this.missingDiscriminators.has(product.discriminator)) return undefined;
    const cached = this.layouts.get(product.sceneId);
    if (cached) return cached;
    const layout = this.build(product);
    if (this.layouts.size >= MAX_CACHED) this.layouts.delete(this.layouts.keys().next().value!);
    this.layouts.set(product.sceneId, layout);
    this.ids.set(layout.id, product.sceneId);
    return layout;
  }

  /** The layout of a product already looked up by name (catalogue, Nodes path), by its OData Id. */
  findById(id: string): ProductLayout | undefined {
    const sceneId = this.ids.get(id.toLowerCase());
    return sceneId === undefined ? undefined : this.find(sceneId);
  }

  /** The synthetic bytes of a band file of `layout`, or `undefined` when `path` is not a band file. */
  bandSource(layout: ProductLayout, path: string): ByteSource | undefined {
    const f = layout.files.find((x) => x.path === path);
    return f?.isBand ? syntheticSource(layout.product.sceneId, f.path, f.size) : undefined;
  }

  /**
   * The served bytes of metadata file `path` of `layout` (rendered now, ~1 ms), or `undefined`
   * when `path` is not one of its metadata files.
   */
  metadataBytes(layout: ProductLayout, path: string): Buffer | undefined {
    const kind = layout.files.find((x) => x.path === path)?.metadata;
    return kind === undefined ? undefined : this.metadataTemplates[layout.product.level][kind].render(layout.identity);
  }

  /** The served manifest of `layout`: hashes every band file the first time (seconds at sizeScale 1). */
  servedManifest(layout: ProductLayout): Promise<ServedManifest> {
    const key = layout.product.sceneId;
    let p = this.manifests.get(key);
    if (!p) {
      p = this.computeManifest(layout);
      // A failed computation must not stick: the next request tries again.
      p.catch(() => this.manifests.delete(key));
      if (this.manifests.size >= MAX_CACHED) this.manifests.delete(this.manifests.keys().next().value!);
      this.manifests.set(key, p);
    }
    return p;
  }

  /** Stop hashing in progress (pending {@link servedManifest} calls reject). */
  close(): void {
    this.closing.abort(new Error('cdse-sim closed'));
  }

  private async computeManifest(layout: ProductLayout): Promise<ServedManifest> {
    const values = new Map<string, { size: number; sha3: string }>();
    const bandFiles: SafeFile[] = [];
    const metadataFiles: SafeFile[] = [];
    for (const f of layout.files) {
      let sha3: string;
      if (f.isBand) {
        sha3 = await sha3OfSource(syntheticSource(layout.product.sceneId, f.path, f.size), this.closing.signal);
        bandFiles.push(Object.freeze({ path: f.path, size: f.size, sha3_256: sha3 }));
      } else if (f.metadata !== undefined) {
        const bytes = this.metadataBytes(layout, f.path)!;
        if (bytes.length !== f.size) throw new Error(`cdse-sim: ${f.path} of ${layout.product.sceneId} rendered ${bytes.length} bytes, not the ${f.size} its layout says`);
        sha3 = createHash('sha3-256').update(bytes).digest('hex');
        metadataFiles.push(Object.freeze({ path: f.path, size: f.size, sha3_256: sha3 }));
      } else {
        continue;
      }
      values.set(f.path, { size: f.size, sha3 });
    }
    const bytes = Buffer.from(rewriteEntries(layout.renderedXml, values), 'utf8');
    if (bytes.length !== layout.manifestSize) throw new Error(`cdse-sim: manifest size of ${layout.product.sceneId} changed while hashing`);
    return Object.freeze({ bytes, bandFiles: Object.freeze(bandFiles), metadataFiles: Object.freeze(metadataFiles) });
  }

  private build(product: SentinelProduct): ProductLayout {
    const template = this.templates[product.level];
    const metadata = this.metadataTemplates[product.level];
    const identity = metadataIdentityOf(product, template, metadata.source);
    const renderedXml = renderSafeManifest(product, template).replace(
      /(<gml:coordinates>)[^<]*(<\/gml:coordinates>)/,
      `$1${gmlCoordinates(tileFootprint(product.tile))}$2`,
    );
    const files: LayoutFile[] = [];
    const placeholders = new Map<string, { size: number; sha3: string }>();
    for (const m of renderedXml.matchAll(DATA_OBJECT_RE)) {
      const path = HREF_RE.exec(m[0])?.[1];
      const size = SIZE_RE.exec(m[0])?.[2];
      if (path === undefined || size === undefined) continue;
      const isBand = BAND_PATH_RE.test(path);
      const kind = isBand ? undefined : metadataKindOf(path);
      const served = isBand
        ? Math.max(1, Math.round(Number(size) * this.options.sizeScale))
        : kind !== undefined
          ? metadata[kind].byteSize(identity)
          : Number(size);
      files.push(Object.freeze({ path, size: served, isBand, metadata: kind }));
      // Hex digests have a fixed length, so a placeholder digest gives the served manifest's exact size.
      if (isBand || kind !== undefined) placeholders.set(path, { size: served, sha3: '0'.repeat(64) });
    }
    const manifestSize = Buffer.byteLength(rewriteEntries(renderedXml, placeholders), 'utf8');
    const tree = buildTree(product.safeName, [...files, { path: 'manifest.safe', size: manifestSize }]);
    const contentLength = files.reduce((s, f) => s + f.size, manifestSize);
    return Object.freeze({ product, id: productIdOf(product.safeName), files: Object.freeze(files), manifestSize, contentLength, tree, renderedXml, identity });
  }
}
