/**
 * The Sentinel-2 band catalogue per processing level and resolution.
 *
 * L1C: one JPEG2000 file per band at its native resolution, `IMG_DATA/<tile>_<sensing>_<band>.jp2`.
 * L2A: the same bands resampled into `IMG_DATA/R10m|R20m|R60m/<tile>_<sensing>_<band>_<res>m.jp2`,
 * plus SCL (scene classification), AOT (aerosol optical thickness) and WVP (water vapour); B10
 * (cirrus) is not in L2A. Availability per resolution is taken from the real manifests in
 * fixtures/cdse (stactools_S2_L2A_manifest.safe.xml, cdsetool_S2_L1C_manifest.safe.xml) and
 * the Sentinel-2 Products Specification Document (ESA, S2-PDGS-TAS-DI-PSD).
 *
 * Band ids: a request names a band by its name (`B04`, `SCL`: the native resolution) or, for L2A,
 * with an explicit resolution (`B04_20m`). The canonical id drops the suffix when it is the native
 * resolution, so `B04_10m` and `B04` are the same band.
 */
import type { ProductLevel } from './product-name.js';
import { ValidationError } from './errors.js';

/** Spatial resolution in metres. */
export type Resolution = 10 | 20 | 60;

/** A band of a given level, resolved to one file of the SAFE product. */
export interface Band {
  /** Canonical id: `B04`, `B8A`, `SCL`, or `B04_20m` for a non-native L2A resolution. */
  readonly id: string;
  /** Band name without resolution: `B04`, `TCI`, `SCL`. */
  readonly name: string;
  readonly resolution: Resolution;
  readonly level: ProductLevel;
  /**
   * The end of the band's file path inside the SAFE, e.g. `/IMG_DATA/R10m/` + `_B04_10m.jp2`
   * (L2A) or `/IMG_DATA/` + `_B04.jp2` (L1C). See {@link bandFileMatches}.
   */
  readonly fileSuffix: string;
  readonly folder: string;
}

/** Native resolution of every band name (metres). */
const NATIVE: Readonly<Record<string, Resolution>> = {
  B01: 60, B02: 10, B03: 10, B04: 10, B05: 20, B06: 20, B07: 20, B08: 10, B8A: 20,
  B09: 60, B10: 60, B11: 20, B12: 20, TCI: 10, SCL: 20, AOT: 10, WVP: 10,
};

/** L1C band names, each at its native resolution. */
export const L1C_BANDS: readonly string[] = Object.freeze([
  'B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11', 'B12', 'TCI',
]);

/** L2A band names available at each resolution folder (R10m, R20m, R60m). */
export const L2A_BANDS_BY_RESOLUTION: Readonly<Record<Resolution, readonly string[]>> = Object.freeze({
  10: Object.freeze(['B02', 'B03', 'B04', 'B08', 'AOT', 'WVP', 'TCI']),
  20: Object.freeze(['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B8A', 'B11', 'B12', 'AOT', 'WVP', 'SCL', 'TCI']),
  60: Object.freeze(['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B8A', 'B09', 'B11', 'B12', 'AOT', 'WVP', 'SCL', 'TCI']),
});

/** Bands a job gets when it names none: the four 10 m bands (blue, green, red, NIR). */
export const DEFAULT_BANDS: readonly string[] = Object.freeze(['B02', 'B03', 'B04', 'B08']);

const BAND_ID_RE = /^(B0[1-9]|B1[0-2]|B8A|TCI|SCL|AOT|WVP)(?:_(10|20|60)m)?$/;

function makeBand(level: ProductLevel, name: string, resolution: Resolution): Band {
  const native = NATIVE[name]!;
  const id = resolution === native ? name : `${name}_${resolution}m`;
  return Object.freeze(
    level === 'L1C'
      ? { id, name, resolution, level, folder: 'IMG_DATA/', fileSuffix: `_${name}.jp2` }
      : { id, name, resolution, level, folder: `IMG_DATA/R${resolution}m/`, fileSuffix: `_${name}_${resolution}m.jp2` },
  );
}

/**
 * Resolve a requested band id for a product level.
 *
 * @param level - `L1C` or `L2A`.
 * @param requested - `B04`, `B8A`, `SCL`, `B04_20m`, … (case-sensitive, as in the SAFE file names).
 * @param field - the payload field to name in errors. @defaultValue `bands`
 * @throws ValidationError `unknown_band` when no Sentinel-2 band has that name;
 *   `band_not_in_level` when the band (or that resolution) does not exist at this level.
 */
export function resolveBand(level: ProductLevel, requested: string, field = 'bands'): Band {
  const m = typeof requested === 'string' ? BAND_ID_RE.exec(requested) : null;
  if (!m) {
    throw new ValidationError(
      'unknown_band',
      `${field}: ${JSON.stringify(requested)} is not a Sentinel-2 band (expected B01–B12, B8A, TCI, SCL, AOT or WVP, optionally with _10m/_20m/_60m for L2A)`,
      field,
    );
  }
  const name = m[1]!;
  const explicit = m[2] ? (Number(m[2]) as Resolution) : undefined;
  if (level === 'L1C') {
    if (!L1C_BANDS.includes(name) || (explicit !== undefined && explicit !== NATIVE[name])) {
      throw new ValidationError(
        'band_not_in_level',
        `${field}: ${requested} does not exist in L1C products (L1C has ${L1C_BANDS.join(', ')}, each at its native resolution only)`,
        field,
      );
    }
    return makeBand(level, name, NATIVE[name]!);
  }
  // L2A: the native resolution unless a resolution is named; B01 and B09 are not in R10m.
  const resolution = explicit ?? NATIVE[name]!;
  if (!L2A_BANDS_BY_RESOLUTION[resolution].includes(name)) {
    throw new ValidationError(
      'band_not_in_level',
      `${field}: ${requested} does not exist in L2A products (R${resolution}m has ${L2A_BANDS_BY_RESOLUTION[resolution].join(', ')})`,
      field,
    );
  }
  return makeBand(level, name, resolution);
}

/** Every band id a product of this level has (canonical ids), e.g. for listings and tests. */
export function bandsForLevel(level: ProductLevel): Band[] {
  if (level === 'L1C') return L1C_BANDS.map((n) => makeBand('L1C', n, NATIVE[n]!));
  const out: Band[] = [];
  for (const res of [10, 20, 60] as const) {
    for (const n of L2A_BANDS_BY_RESOLUTION[res]) out.push(makeBand('L2A', n, res));
  }
  return out;
}

/**
 * Whether a SAFE-relative file path (as in `manifest.safe`, e.g.
 * `GRANULE/L2A_T01KAB_A042640_20230821T221944/IMG_DATA/R10m/T01KAB_20230821T221941_B04_10m.jp2`)
 * is the file of this band. The granule folder name and the sensing time differ between the
 * folder and the file, so only the folder and the suffix are matched.
 */
export function bandFileMatches(band: Band, safePath: string): boolean {
  const path = safePath.replace(/^\.\//, '');
  if (!path.startsWith('GRANULE/') || !path.endsWith(band.fileSuffix)) return false;
  const dir = path.slice(0, path.lastIndexOf('/') + 1);
  return dir.endsWith(`/${band.folder}`);
}
