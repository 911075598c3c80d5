/**
 * `manifest.safe`: the XFDU manifest at the root of every SAFE product. Each `dataObject` lists one
 * file with its path, byte size and SHA3-256 (upper-case hex in real manifests):
 *
 * ```xml
 * <dataObject ID="IMG_DATA_Band_10m_1_Tile1_Data">
 *   <byteStream mimeType="application/octet-stream" size="135133936">
 *     <fileLocation href="./GRANULE/L1C_T17UPV_.../IMG_DATA/T17UPV_20241209T162609_B02.jp2" locatorType="URL"/>
 *     <checksum checksumName="SHA3-256">2B25B963…</checksum>
 * ```
 *
 * Source: the real manifests in fixtures/cdse and ESA's SAFE specification. CDSE serves the
 * file at `Products(<Id>)/Nodes(<SAFE>)/Nodes(manifest.safe)/$value`.
 */
import type { Band } from './bands.js';
import { bandFileMatches } from './bands.js';

/** One file of a SAFE product as the manifest describes it. */
export interface SafeFile {
  /** Path relative to the SAFE root, without `./`, e.g. `GRANULE/…/IMG_DATA/T17UPV_…_B02.jp2`. */
  readonly path: string;
  /** Size in bytes. */
  readonly size: number;
  /** SHA3-256 of the file, lower-case hex (64 chars). */
  readonly sha3_256: string;
}

const DATA_OBJECT_RE = /<dataObject\b[^>]*>([\s\S]*?)<\/dataObject>/g;
const SIZE_RE = /<byteStream\b[^>]*\bsize="(\d+)"/;
const HREF_RE = /<fileLocation\b[^>]*\bhref="([^"]+)"/;
const SHA3_RE = /<checksum\b[^>]*checksumName="SHA3-256"[^>]*>\s*([0-9A-Fa-f]{64})\s*<\/checksum>/;

/**
 * Every file the manifest lists with a size and a SHA3-256, in document order.
 * Entries without a SHA3-256 checksum are skipped (we cannot verify them).
 *
 * @throws Error when the text holds no `dataObject` at all (not a SAFE manifest).
 */
export function parseSafeManifest(xml: string): SafeFile[] {
  const files: SafeFile[] = [];
  let seen = 0;
  for (const m of xml.matchAll(DATA_OBJECT_RE)) {
    seen++;
    const body = m[1]!;
    const size = SIZE_RE.exec(body)?.[1];
    const href = HREF_RE.exec(body)?.[1];
    const sha3 = SHA3_RE.exec(body)?.[1];
    if (size === undefined || href === undefined || sha3 === undefined) continue;
    files.push(Object.freeze({ path: href.replace(/^\.\//, ''), size: Number(size), sha3_256: sha3.toLowerCase() }));
  }
  if (seen === 0) throw new Error('not a SAFE manifest: no <dataObject> element');
  return files;
}

/** The manifest entry of a band's file, or `undefined` when the product does not have it. */
export function findBandFile(files: readonly SafeFile[], band: Band): SafeFile | undefined {
  return files.find((f) => bandFileMatches(band, f.path));
}
