/**
 * The SAFE layout of a product, taken from the two real manifests in fixtures/cdse:
 * `cdsetool_S2_L1C_manifest.safe.xml` (L1C, T17UPV, 2024-12-09) and
 * `stactools_S2_L2A_manifest.safe.xml` (L2A, T01KAB, 2023-08-21).
 *
 * A product's manifest is the fixture of its level with the fixture's identity replaced by the
 * product's: tile, datatake sensing time (band file names), granule time (granule and datastrip
 * folders), absolute orbit, processing time (= the name's discriminator) and platform. In real
 * products the band files carry the datatake sensing time while the granule folder carries the
 * granule's own start, a few seconds apart (T17UPV: files 162609, granule 162603); the sim keeps
 * the fixture's offset between the two.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ProductLevel, SentinelProduct } from '@scenecache/core';

/** The identity of a fixture manifest, read from the fixture itself. */
export interface SafeTemplate {
  readonly level: ProductLevel;
  /** The fixture manifest text. */
  readonly xml: string;
  /** `17UPV` */
  readonly tile: string;
  /** Datatake sensing time in band file names, `YYYYMMDDTHHMMSS`. */
  readonly sensing: string;
  /** Granule folder time, `YYYYMMDDTHHMMSS`. */
  readonly granuleTime: string;
  /** Granule time minus sensing time, in seconds (L1C fixture: -6, L2A fixture: +3). */
  readonly granuleOffsetSeconds: number;
  /** Processing (generation) time, `YYYYMMDDTHHMMSS`: the product name's discriminator. */
  readonly processing: string;
  /** Absolute orbit, six digits. */
  readonly absoluteOrbit: string;
  /** Processing centre of the datastrip folder, e.g. `2BPS`. */
  readonly centre: string;
}

/** The fixture manifest file of each level (fixtures/cdse). */
export const TEMPLATE_FILES: Readonly<Record<ProductLevel, string>> = Object.freeze({
  L1C: 'cdsetool_S2_L1C_manifest.safe.xml',
  L2A: 'stactools_S2_L2A_manifest.safe.xml',
});

const GRANULE_RE = /GRANULE\/L(?:1C|2A)_T(\w{5})_A(\d{6})_(\d{8}T\d{6})\//;
const BAND_RE = /IMG_DATA\/(?:R\d{2}m\/)?T\w{5}_(\d{8}T\d{6})_/;
const DATASTRIP_RE = /DATASTRIP\/DS_(\w{4})_(\d{8}T\d{6})_S\d{8}T\d{6}\//;

/** `YYYYMMDDTHHMMSS` → epoch ms (UTC). */
export function compactToMs(s: string): number {
  return Date.UTC(+s.slice(0, 4), +s.slice(4, 6) - 1, +s.slice(6, 8), +s.slice(9, 11), +s.slice(11, 13), +s.slice(13, 15));
}

/** Epoch ms → `YYYYMMDDTHHMMSS` (UTC). */
export function msToCompact(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace(/[-:]/g, '');
}

/** Epoch ms of a compact time → ISO `YYYY-MM-DDTHH:MM:SS` (no zone, no fraction). */
function isoSeconds(compact: string): string {
  return new Date(compactToMs(compact)).toISOString().slice(0, 19);
}

/**
 * Read both fixture manifests and derive their identity.
 * @param fixturesDir - directory holding the fixture files (fixtures/cdse).
 * @throws Error when a file is missing or does not have the expected SAFE layout.
 */
export async function loadSafeTemplates(fixturesDir: string | URL): Promise<Record<ProductLevel, SafeTemplate>> {
  const dir = typeof fixturesDir === 'string' ? fixturesDir : fileURLToPath(fixturesDir);
  const load = async (level: ProductLevel): Promise<SafeTemplate> => {
    const file = `${dir.replace(/\/+$/, '')}/${TEMPLATE_FILES[level]}`;
    let xml: string;
    try {
      xml = await readFile(file, 'utf8');
    } catch (err) {
      throw new Error(`cdse-sim: cannot read the ${level} fixture manifest ${file} (set the fixturesDir option): ${String(err)}`, { cause: err });
    }
    const g = GRANULE_RE.exec(xml);
    const b = BAND_RE.exec(xml);
    const d = DATASTRIP_RE.exec(xml);
    if (!g || !b || !d) throw new Error(`cdse-sim: ${file} does not have the expected ${level} SAFE layout`);
    const [, tile, absoluteOrbit, granuleTime] = g as unknown as [string, string, string, string];
    const sensing = b[1]!;
    return Object.freeze({
      level,
      xml,
      tile,
      sensing,
      granuleTime,
      granuleOffsetSeconds: (compactToMs(granuleTime) - compactToMs(sensing)) / 1000,
      processing: d[2]!,
      absoluteOrbit,
      centre: d[1]!,
    });
  };
  const [l1c, l2a] = await Promise.all([load('L1C'), load('L2A')]);
  return { L1C: l1c, L2A: l2a };
}

/** Orbit period: 143 orbits per 10-day repeat cycle (Sentinel-2 mission guide), in ms. */
const ORBIT_MS = (10 * 86_400_000) / 143;
/** One known (time, absolute orbit) per platform; S2A and S2B are the two fixtures' own. */
const ORBIT_REFERENCE: Readonly<Record<string, readonly [string, number]>> = {
  S2A: ['20230821T221941', 42640],
  S2B: ['20241209T162609', 40535],
  S2C: ['20240905T000000', 1],
  S2D: ['20260101T000000', 1],
};

/** A plausible absolute orbit for a product (deterministic; six digits, at least 1). */
export function absoluteOrbitOf(product: SentinelProduct): number {
  const [t, orbit] = ORBIT_REFERENCE[product.mission] ?? ORBIT_REFERENCE.S2A!;
  const n = orbit + Math.round((product.sensingTime.getTime() - compactToMs(t)) / ORBIT_MS);
  return Math.min(999_999, Math.max(1, n));
}

/** The granule folder time of a product: its sensing time plus the fixture's offset. */
export function granuleTimeOf(product: SentinelProduct, template: SafeTemplate): string {
  return msToCompact(product.sensingTime.getTime() + template.granuleOffsetSeconds * 1000);
}

/**
 * The fixture manifest rewritten for `product` (sizes and checksums still the fixture's: see
 * product-catalogue.ts for the served values). One regex pass over all tokens, so a value never
 * gets substituted twice (a product's sensing time may equal the fixture's granule time).
 */
export function renderSafeManifest(product: SentinelProduct, template: SafeTemplate): string {
  const granule = granuleTimeOf(product, template);
  const abs = String(absoluteOrbitOf(product)).padStart(6, '0');
  const platform = product.mission.slice(1); // S2B -> 2B
  const tokens = new Map<string, string>([
    [`T${template.tile}`, `T${product.tile}`],
    [`A${template.absoluteOrbit}`, `A${abs}`],
    [template.sensing, product.sensingTime.toISOString().slice(0, 19).replace(/[-:]/g, '')],
    [template.granuleTime, granule],
    [template.processing, product.discriminator],
    [`DS_${template.centre}_`, `DS_${platform}PS_`],
  ]);
  const alternation = [...tokens.keys()].map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  let xml = template.xml.replace(new RegExp(alternation, 'g'), (m) => tokens.get(m) ?? m);
  // The metadata section states the same identity in ISO form.
  const sensingIso = product.sensingTime.toISOString().slice(0, 19);
  xml = xml
    .replace(/(<safe:startTime>)[^<]*(<\/safe:startTime>)/, `$1${sensingIso}.024Z$2`)
    .replace(/(<safe:orbitNumber\b[^>]*>)[^<]*(<\/safe:orbitNumber>)/, `$1${abs}$2`)
    .replace(/(<safe:relativeOrbitNumber\b[^>]*>)[^<]*(<\/safe:relativeOrbitNumber>)/, `$1${String(product.relativeOrbit).padStart(3, '0')}$2`)
    .replace(/(<safe:number>)[^<]*(<\/safe:number>)/, `$1${platform}$2`)
    .replace(/(<safe:processing\b[^>]*\bstart=")[^"]*(")/, `$1${isoSeconds(product.discriminator)}.000000Z$2`);
  return xml;
}
