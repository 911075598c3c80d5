/**
 * Sentinel-2 product names (the "compact naming convention" in use since December 2016):
 *
 *   `MMM_MSIXXX_YYYYMMDDTHHMMSS_Nxxyy_ROOO_Txxxxx_<Product Discriminator>[.SAFE]`
 *
 * e.g. `S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035.SAFE`: mission S2B, level
 * L2A, datatake sensing start 2024-03-24T10:16:49Z, processing baseline N05.10, relative orbit 65,
 * MGRS tile 32TNS, discriminator (product generation time) 2024-03-24T13:00:35.
 *
 * Source: ESA Sentinel-2 "Naming Convention" (sentinels.copernicus.eu, Sentinel-2 MSI user guide,
 * "Product naming convention") and the real names in fixtures/cdse/sentinel2_products.tsv.
 */
import { ValidationError } from './errors.js';

/** Processing level of a Sentinel-2 MSI product we serve. */
export type ProductLevel = 'L1C' | 'L2A';

/** A parsed, valid Sentinel-2 product name. */
export interface SentinelProduct {
  /** The scene id: the product name without `.SAFE` (the key of `global_scene_cache`). */
  readonly sceneId: string;
  /** The SAFE directory name: `<sceneId>.SAFE` (the OData `Name`). */
  readonly safeName: string;
  /** `S2A`, `S2B`, `S2C` or `S2D`. */
  readonly mission: string;
  readonly level: ProductLevel;
  /** Datatake sensing start, UTC. */
  readonly sensingTime: Date;
  /** Sensing date `YYYY-MM-DD` (UTC), the `sensing_date` column. */
  readonly sensingDate: string;
  /** Processing baseline, e.g. `N0510`. */
  readonly baseline: string;
  /** Relative orbit number, 1–143. */
  readonly relativeOrbit: number;
  /** MGRS tile without the `T`, e.g. `32TNS`. */
  readonly tile: string;
  /** The product discriminator (generation time), `YYYYMMDDTHHMMSS`. */
  readonly discriminator: string;
}

const NAME_RE =
  /^(S2[A-D])_MSIL(1C|2A)_(\d{8}T\d{6})_(N\d{4})_R(\d{3})_T(\d{2}[C-HJ-NP-X][A-HJ-NP-Z][A-HJ-NP-V])_(\d{8}T\d{6})(\.SAFE)?$/;

/** Parse `YYYYMMDDTHHMMSS` as UTC; `undefined` when a field is out of range (e.g. month 13). */
function parseCompactTime(s: string): Date | undefined {
  const [y, mo, d, h, mi, se] = [s.slice(0, 4), s.slice(4, 6), s.slice(6, 8), s.slice(9, 11), s.slice(11, 13), s.slice(13, 15)].map(Number) as [number, number, number, number, number, number];
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, se));
  const roundTrips =
    t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d &&
    t.getUTCHours() === h && t.getUTCMinutes() === mi && t.getUTCSeconds() === se;
  return roundTrips && y >= 2015 ? t : undefined;
}

/**
 * Parse and validate a Sentinel-2 product name, with or without `.SAFE`.
 *
 * @throws ValidationError `invalid_product_name` (field `scene_id`) when the name does not follow
 *   the compact naming convention, names another mission or level, or carries an impossible date,
 *   orbit or tile. The message says which part is wrong.
 */
export function parseProductName(name: string): SentinelProduct {
  const fail = (why: string): never => {
    throw new ValidationError(
      'invalid_product_name',
      `scene_id ${JSON.stringify(name.length > 100 ? name.slice(0, 100) + '…' : name)} is not a Sentinel-2 L1C/L2A product name: ${why} ` +
        '(expected e.g. S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035)',
      'scene_id',
    );
  };
  if (typeof name !== 'string' || name.length === 0) fail('it is empty');
  const m = NAME_RE.exec(name);
  if (!m) return fail('it does not match MMM_MSIL1C|MSIL2A_YYYYMMDDTHHMMSS_Nxxxx_Rxxx_Txxxxx_YYYYMMDDTHHMMSS');
  const [, mission, lvl, sensing, baseline, orbit, tile, discriminator] = m as unknown as [string, string, string, string, string, string, string, string];
  const sensingTime = parseCompactTime(sensing);
  if (!sensingTime) fail(`sensing time ${sensing} is not a valid date`);
  if (!parseCompactTime(discriminator)) fail(`discriminator ${discriminator} is not a valid date`);
  const relativeOrbit = Number(orbit);
  if (relativeOrbit < 1 || relativeOrbit > 143) fail(`relative orbit R${orbit} is outside 1–143`);
  const zone = Number(tile.slice(0, 2));
  if (zone < 1 || zone > 60) fail(`UTM zone ${tile.slice(0, 2)} of tile T${tile} is outside 01–60`);
  const sceneId = name.endsWith('.SAFE') ? name.slice(0, -5) : name;
  return Object.freeze({
    sceneId,
    safeName: `${sceneId}.SAFE`,
    mission,
    level: `L${lvl}` as ProductLevel,
    sensingTime: sensingTime!,
    sensingDate: sensingTime!.toISOString().slice(0, 10),
    baseline,
    relativeOrbit,
    tile,
    discriminator,
  });
}

/** The key prefix of every product in the global bucket (see {@link sceneStoragePath}). */
export const CACHE_KEY_PREFIX = 'sentinel-2/';

/**
 * Where a product's bands live in the global bucket and in tenant buckets:
 * `sentinel-2/<level>/<tile>/<yyyy>/<mm>/<dd>/<sceneId>` (no trailing slash).
 */
export function sceneStoragePath(product: SentinelProduct): string {
  const [y, m, d] = product.sensingDate.split('-');
  return `${CACHE_KEY_PREFIX}${product.level}/${product.tile}/${y}/${m}/${d}/${product.sceneId}`;
}
