/**
 * A product's `manifest.safe`: every file's path, byte size and SHA3-256, read once per product so
 * band files are found without walking the Nodes tree and every band is verified against it.
 *
 * Served at `{downloadUrl}/Products(<Id>)/Nodes(<SAFE>)/Nodes(manifest.safe)/$value` with a Bearer
 * token (documentation.dataspace.copernicus.eu/APIs/OData.html#product-download; real manifests in
 * fixtures `cdsetool_S2_L1C_manifest.safe.xml` and `stactools_S2_L2A_manifest.safe.xml`).
 */
import { parseSafeManifest, UpstreamError, type Band, type Logger, type SafeFile, findBandFile } from '@scenecache/core';
import { authorizedGet, type AccessTokenSource } from './authorized-request.js';
import { nodeValueUrl } from './nodes-path.js';
import { abortReason, backoffDelayMs, sleep, type RetryOptions } from './retry-policy.js';
import { networkError, readBodyText, type AgentChooser } from './upstream-http.js';

/** Real manifests are 50–70 kB; anything near this is not a manifest (bytes). */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** What {@link fetchProductManifest} needs. */
export interface ProductManifestOptions {
  /** Download service base URL, e.g. `https://download.dataspace.copernicus.eu/odata/v1`. */
  readonly downloadUrl: string;
  readonly tokens: AccessTokenSource;
  readonly retry: Readonly<RetryOptions>;
  readonly agent?: AgentChooser | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly logger?: Logger | undefined;
  readonly random?: (() => number) | undefined;
  /** Called on every 429 answer (see `AuthorizedGetOptions.onRateLimited`). */
  readonly onRateLimited?: (() => void) | undefined;
}

/**
 * Download and parse a product's `manifest.safe`.
 *
 * @param productId - the OData `Id`.
 * @param safeName - `<sceneId>.SAFE`.
 * @returns every file the manifest lists with a size and a SHA3-256 (lower-case hex).
 * @throws UpstreamError as `authorizedGet` does (`upstream_auth`, `upstream_rate_limited`,
 *   `upstream_unavailable`, `product_not_found` on 404); `upstream_unavailable` (retryable) when the
 *   body is cut `retry.attempts` times; `upstream_integrity` (retryable) when the body is not a
 *   SAFE manifest or lists no verifiable file.
 * @throws the signal's reason when `signal` aborts.
 */
export async function fetchProductManifest(productId: string, safeName: string, options: ProductManifestOptions): Promise<SafeFile[]> {
  const url = nodeValueUrl(options.downloadUrl, productId, safeName, 'manifest.safe');
  const what = `manifest.safe of ${safeName}`;
  let text: string | undefined;
  for (let attempt = 1; text === undefined; attempt++) {
    const response = await authorizedGet(url, { ...options, what });
    try {
      text = await readBodyText(response.body, MAX_MANIFEST_BYTES);
    } catch (err) {
      // The body broke off mid-way (a 70 kB file: simply fetch it again).
      if (options.signal?.aborted) throw abortReason(options.signal);
      if (attempt >= options.retry.attempts) throw networkError(`download of ${what} (${attempt} tries)`, err);
      await sleep(backoffDelayMs(attempt - 1, options.retry, options.random), options.signal);
    }
  }
  let files: SafeFile[];
  try {
    files = parseSafeManifest(text);
  } catch (err) {
    throw new UpstreamError('upstream_integrity', `CDSE ${what} is not a SAFE manifest: ${err instanceof Error ? err.message : String(err)}`, { retryable: true, cause: err });
  }
  if (files.length === 0) {
    throw new UpstreamError('upstream_integrity', `CDSE ${what} lists no file with a size and a SHA3-256`, { retryable: true });
  }
  options.logger?.debug({ productId, safeName, files: files.length }, 'read manifest.safe');
  return files;
}

/**
 * The manifest entry of a band's file.
 *
 * @param safeName - for the message only.
 * @throws UpstreamError `band_not_in_product` (not retryable, HTTP 404) when the product has no
 *   file for the band (e.g. an old-baseline L2A without `B04_20m`).
 */
export function locateBandFile(files: readonly SafeFile[], band: Band, safeName: string): SafeFile {
  const file = findBandFile(files, band);
  if (!file) {
    throw new UpstreamError(
      'band_not_in_product',
      `${safeName} has no file for band ${band.id} (expected …/${band.folder}…${band.fileSuffix} in manifest.safe)`,
      { retryable: false, httpStatus: 404 },
    );
  }
  return file;
}
