/**
 * A product's metadata files, rendered from the real ones in fixtures/cdse:
 * - L2A: `stactools_S2_L2A_MTD_TL.xml` and `stactools_S2_L2A_MTD_MSIL2A.xml`, of product
 *   S2A_MSIL2A_20230821T221941_N0509_R029_T01KAB_20230822T021825 (the same product as the L2A
 *   manifest template, so the sim serves that product's files byte-identical to the fixtures);
 * - L1C: `stactools_S2_L1C_MTD_TL.xml` and `stactools_S2_L1C_MTD_MSIL1C.xml`, of product
 *   S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248 (not the L1C manifest template's
 *   T17UPV product: its identity is replaced like any other).
 * See the `*.source.txt` files beside them.
 *
 * A fixture is compiled once into static text and slots: the places that state the product's
 * identity (tile, times, orbit, ids, baseline, platform), its UTM grid (`HORIZONTAL_CS_*`, `ULX`,
 * `ULY`) and its cloud cover. Rendering for a product fills the slots from its
 * {@link MetadataIdentity}, so a file's size is known without rendering it, and rendering is a join.
 * Everything else (angle grids, band characteristics, quality values, GIPP names) stays the
 * fixture's. Times the name does not give (tile sensing, archiving, the L1C tile's generation) keep
 * their offset from the time they belong to (granule start, generation time).
 * At load, rendering each fixture for its own product must give back the fixture's bytes.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseProductName, type ProductLevel } from '@scenecache/core';
import { baselineVersion, sensingCompact, type MetadataIdentity } from './metadata-identity.js';
import { compactToMs, msToCompact } from './safe-template.js';
import { gmlCoordinates, tileFootprint } from './tile-footprint.js';
import { tileGridOf } from './tile-grid.js';

/** Which metadata file: the granule's `MTD_TL.xml` (`tile`) or the product's `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml` (`product`). */
export type MetadataKind = 'tile' | 'product';

/** The fixture files of each level (fixtures/cdse). */
export const METADATA_TEMPLATE_FILES: Readonly<Record<ProductLevel, Readonly<Record<MetadataKind, string>>>> = Object.freeze({
  L1C: Object.freeze({ tile: 'stactools_S2_L1C_MTD_TL.xml', product: 'stactools_S2_L1C_MTD_MSIL1C.xml' }),
  L2A: Object.freeze({ tile: 'stactools_S2_L2A_MTD_TL.xml', product: 'stactools_S2_L2A_MTD_MSIL2A.xml' }),
});

/** The kind of metadata file at SAFE-relative `path`, or `undefined` for any other file. */
export function metadataKindOf(path: string): MetadataKind | undefined {
  if (/^GRANULE\/[^/]+\/MTD_TL\.xml$/.test(path)) return 'tile';
  if (/^MTD_MSIL(?:1C|2A)\.xml$/.test(path)) return 'product';
  return undefined;
}

/** One substitution: `re` (global) finds its places in the fixture; `render` writes the whole match for a product. */
interface Rule {
  readonly re: RegExp;
  readonly render: (match: readonly string[], target: MetadataIdentity) => string;
}

/** A fixture file split into static text and slots (internal). */
export class MetadataTemplate {
  private readonly staticBytes: number;

  private constructor(
    /** The fixture file name. */
    readonly file: string,
    private readonly pieces: ReadonlyArray<string | { rule: Rule; match: readonly string[] }>,
  ) {
    this.staticBytes = pieces.reduce((n, p) => n + (typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : 0), 0);
  }

  /** Split `text` at every match of `rules`, in order; a later rule never looks inside an earlier rule's match. */
  static compile(file: string, text: string, rules: readonly Rule[]): MetadataTemplate {
    let pieces: Array<string | { rule: Rule; match: readonly string[] }> = [text];
    for (const rule of rules) {
      const next: typeof pieces = [];
      for (const p of pieces) {
        if (typeof p !== 'string') {
          next.push(p);
          continue;
        }
        let last = 0;
        for (const m of p.matchAll(rule.re)) {
          next.push(p.slice(last, m.index), { rule, match: [...m].map((g) => g ?? '') });
          last = m.index + m[0].length;
        }
        next.push(p.slice(last));
      }
      pieces = next.filter((x) => x !== '');
    }
    return new MetadataTemplate(file, pieces);
  }

  private values(target: MetadataIdentity): string[] {
    return this.pieces.map((p) => (typeof p === 'string' ? p : p.rule.render(p.match, target)));
  }

  /** Size in bytes of the file rendered for `target` (UTF-8), without rendering it. */
  byteSize(target: MetadataIdentity): number {
    let n = this.staticBytes;
    for (const p of this.pieces) if (typeof p !== 'string') n += Buffer.byteLength(p.rule.render(p.match, target), 'utf8');
    return n;
  }

  /** The file rendered for `target`: UTF-8 bytes. */
  render(target: MetadataIdentity): Buffer {
    return Buffer.from(this.values(target).join(''), 'utf8');
  }
}

/** The two metadata templates of a level and the identity of the fixture product they come from. */
export interface MetadataTemplates {
  readonly level: ProductLevel;
  /** The fixture product's identity, read from its product metadata file. */
  readonly source: MetadataIdentity;
  readonly tile: MetadataTemplate;
  readonly product: MetadataTemplate;
}

const pad6 = (n: number): string => String(n).padStart(6, '0');
const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Shift a compact time by `ms`. */
function shiftCompact(t: string, ms: number): string {
  return msToCompact(compactToMs(t) + ms);
}

/** Shift an ISO time `YYYY-MM-DDTHH:MM:SS[.ffffff][Z]` by whole seconds (`ms`), keeping its fraction and zone as written. */
function shiftIso(t: string, ms: number): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(.*)$/s.exec(t);
  if (!m) return t;
  return new Date(Date.parse(`${m[1]!}Z`) + ms).toISOString().slice(0, 19) + m[2]!;
}

/** An element `<name ...>value</name>` whose value `value` writes (given the fixture's value). */
function element(name: string, value: (target: MetadataIdentity, original: string) => string): Rule {
  return {
    re: new RegExp(`(<${name}\\b[^>]*>)([^<]*)(</${name}>)`, 'g'),
    render: (m, t) => `${m[1]!}${value(t, m[2]!)}${m[3]!}`,
  };
}

/** Every occurrence of the literal `from` (the fixture's), written `to(target)`. */
function literal(from: string, to: (target: MetadataIdentity) => string): Rule {
  return { re: new RegExp(escapeRe(from), 'g'), render: (_m, t) => to(t) };
}

/**
 * The substitutions of a fixture whose product is `src`. Order matters: elements and ids that
 * embed identity tokens come first and write them whole; the bare tokens (in file paths) come last.
 */
function rulesFor(src: MetadataIdentity): Rule[] {
  type Anchor = 'sensing' | 'granuleTime' | 'processing';
  const delta = (t: MetadataIdentity, anchor: Anchor): number => compactToMs(t[anchor]) - compactToMs(src[anchor]);
  const isoShifted = (name: string, anchor: Anchor): Rule => element(name, (t, v) => shiftIso(v, delta(t, anchor)));
  return [
    element('PRODUCT_URI', (t) => t.safeName),
    element('PROCESSING_BASELINE', (t) => t.baseline),
    element('SPACECRAFT_NAME', (t) => `Sentinel-2${t.mission.slice(2)}`),
    element('SENSING_ORBIT_NUMBER', (t) => String(t.relativeOrbit)),
    element('ARCHIVING_CENTRE', (t) => t.centre),
    element('HORIZONTAL_CS_NAME', (t) => t.grid.csName),
    element('HORIZONTAL_CS_CODE', (t) => `EPSG:${t.grid.epsg}`),
    element('ULX', (t) => String(t.grid.ulx)),
    element('ULY', (t) => String(t.grid.uly)),
    element('CLOUDY_PIXEL_PERCENTAGE', (t) => String(t.cloudCover)),
    element('Cloud_Coverage_Assessment', (t) => String(t.cloudCover)),
    // The product footprint (lat lon pairs): the fixture's on its own tile, the approximate tile footprint elsewhere.
    element('EXT_POS_LIST', (t, v) => (t.tile === src.tile ? v : gmlCoordinates(tileFootprint(t.tile)))),
    isoShifted('PRODUCT_START_TIME', 'sensing'),
    isoShifted('PRODUCT_STOP_TIME', 'sensing'),
    isoShifted('DATATAKE_SENSING_START', 'sensing'),
    isoShifted('GENERATION_TIME', 'processing'),
    isoShifted('ARCHIVING_TIME', 'processing'),
    // The tile's own sensing time, a little after its granule's start.
    isoShifted('SENSING_TIME', 'granuleTime'),
    {
      re: /(datatakeIdentifier=")[^"]*(")/g,
      render: (m, t) => `${m[1]!}G${t.mission}_${t.sensing}_${pad6(t.absoluteOrbit)}_N${t.baseline}${m[2]!}`,
    },
    // Tile and datastrip ids: S2A_OPER_MSI_L2A_TL_2APS_<generation>_A042640_T01KAB_N05.09,
    // S2A_OPER_MSI_L2A_DS_2APS_<generation>_S<granule start>_N05.09. In an L2A tile file the L1C
    // tile id carries the L1C's own (earlier) generation time: it keeps its offset.
    {
      re: /\b(S2[A-D])_OPER_MSI_(L1C|L2A)_(TL|DS)_(\w{4})_(\d{8}T\d{6})_(?:A(\d{6})|S(\d{8}T\d{6}))(_T\w{5})?_N\d\d\.\d\d\b/g,
      render: (m, t) => {
        const tail = m[6] ? `A${pad6(t.absoluteOrbit)}` : `S${shiftCompact(m[7]!, delta(t, 'granuleTime'))}`;
        return `${t.mission}_OPER_MSI_${m[2]!}_${m[3]!}_${t.centre}_${shiftCompact(m[5]!, delta(t, 'processing'))}_${tail}${m[8] ? `_T${t.tile}` : ''}_N${t.baseline}`;
      },
    },
    // File paths: GRANULE/L2A_T01KAB_A042640_<granule start>/..., IMG_DATA/.../T01KAB_<sensing>_B02_10m.
    literal(`T${src.tile}`, (t) => `T${t.tile}`),
    literal(`A${pad6(src.absoluteOrbit)}`, (t) => `A${pad6(t.absoluteOrbit)}`),
    literal(src.granuleTime, (t) => t.granuleTime),
    literal(src.sensing, (t) => t.sensing),
    literal(src.processing, (t) => t.processing),
    // Auxiliary file names (GIPP, GRI) name the platform too.
    literal(`${src.mission}_OPER_`, (t) => `${t.mission}_OPER_`),
  ];
}

/**
 * The identity of the product a fixture product metadata file describes: `PRODUCT_URI`, the
 * granule folder of its `IMAGE_FILE`s, the centre of its datastrip id and its `Cloud_Coverage_Assessment`.
 * @throws Error when the file lacks one of them.
 */
function sourceIdentity(file: string, xml: string): MetadataIdentity {
  const uri = /<PRODUCT_URI>([^<]+)<\/PRODUCT_URI>/.exec(xml)?.[1];
  const granule = /<IMAGE_FILE>GRANULE\/L(?:1C|2A)_T\w{5}_A(\d{6})_(\d{8}T\d{6})\//.exec(xml);
  const centre = /datastripIdentifier="S2[A-D]_OPER_MSI_L(?:1C|2A)_DS_(\w{4})_/.exec(xml)?.[1];
  const cloud = /<Cloud_Coverage_Assessment>([^<]+)<\/Cloud_Coverage_Assessment>/.exec(xml)?.[1];
  if (uri === undefined || !granule || centre === undefined || cloud === undefined || !Number.isFinite(Number(cloud))) {
    throw new Error(`cdse-sim: ${file} lacks PRODUCT_URI, a granule IMAGE_FILE, a datastrip id or Cloud_Coverage_Assessment`);
  }
  const p = parseProductName(uri);
  return Object.freeze({
    safeName: p.safeName,
    mission: p.mission,
    tile: p.tile,
    sensing: sensingCompact(p),
    granuleTime: granule[2]!,
    processing: p.discriminator,
    absoluteOrbit: Number(granule[1]),
    centre,
    baseline: baselineVersion(p.baseline),
    relativeOrbit: p.relativeOrbit,
    cloudCover: Number(cloud),
    grid: tileGridOf(p.tile),
  });
}

/**
 * Read and compile the metadata fixtures of both levels.
 * @param fixturesDir - directory holding the fixture files (fixtures/cdse).
 * @throws Error when a file is missing, lacks the product's identity, or does not render back to
 *   itself for its own product (a substitution the sim makes would change a real file).
 */
export async function loadMetadataTemplates(fixturesDir: string | URL): Promise<Record<ProductLevel, MetadataTemplates>> {
  const dir = (typeof fixturesDir === 'string' ? fixturesDir : fileURLToPath(fixturesDir)).replace(/\/+$/, '');
  const read = async (name: string): Promise<Buffer> => {
    try {
      return await readFile(`${dir}/${name}`);
    } catch (err) {
      throw new Error(`cdse-sim: cannot read the metadata fixture ${dir}/${name} (set the fixturesDir option): ${String(err)}`, { cause: err });
    }
  };
  const load = async (level: ProductLevel): Promise<MetadataTemplates> => {
    const files = METADATA_TEMPLATE_FILES[level];
    const [tileBytes, productBytes] = await Promise.all([read(files.tile), read(files.product)]);
    const source = sourceIdentity(files.product, productBytes.toString('utf8'));
    const rules = rulesFor(source);
    const compile = (file: string, bytes: Buffer): MetadataTemplate => {
      const t = MetadataTemplate.compile(file, bytes.toString('utf8'), rules);
      if (!t.render(source).equals(bytes)) throw new Error(`cdse-sim: ${dir}/${file} does not render back to itself for its own product ${source.safeName}`);
      return t;
    };
    return Object.freeze({ level, source, tile: compile(files.tile, tileBytes), product: compile(files.product, productBytes) });
  };
  const [l1c, l2a] = await Promise.all([load('L1C'), load('L2A')]);
  return { L1C: l1c, L2A: l2a };
}
