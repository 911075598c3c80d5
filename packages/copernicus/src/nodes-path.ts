/**
 * OData `Nodes` URLs: one file (or folder) inside a product, addressed one path segment at a time.
 *
 * ```
 * {downloadUrl}/Products(<Id>)/Nodes(<SAFE name>)/Nodes(GRANULE)/Nodes(<granule>)/Nodes(IMG_DATA)/Nodes(<file>)/$value
 * ```
 *
 * `…/$value` streams the file, `…/Nodes` lists a folder's children (`{"result": [...]}`, fixture
 * `cdse_docs_nodes_listing_S2_L1C_root.json`). Source:
 * documentation.dataspace.copernicus.eu/APIs/OData.html#listing-product-nodes and
 * …#product-download. Always build these on the download host
 * (`https://download.dataspace.copernicus.eu/odata/v1`): the catalogue host answers `$value` with a
 * 301 to another host, and fetch drops `Authorization` on a cross-host redirect (fixture
 * `catalogue_value_301_redirect_to_zipper_headers.txt`).
 */

/**
 * Percent-encode one key or segment inside `Nodes(...)` / `Products(...)`. `encodeURIComponent`
 * leaves `( ) ' ! *` alone; parentheses would end the key early and `'` opens an OData string, so
 * those are encoded too.
 */
export function encodeNodeKey(key: string): string {
  return encodeURIComponent(key).replace(/[()'!*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The segments of a SAFE-relative path (`./GRANULE/…/IMG_DATA/x.jp2`, as `manifest.safe` lists them).
 * @throws Error when the path is empty or has an empty, `.` or `..` segment (a manifest we must not
 *   follow outside the product).
 */
export function safePathSegments(safePath: string): string[] {
  const segments = safePath.replace(/^\.\//, '').split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..') throw new Error(`invalid SAFE-relative path ${JSON.stringify(safePath)}`);
  }
  return segments;
}

/**
 * The resource path of a file or folder of a product, without the base URL:
 * `Products(<Id>)/Nodes(<safeName>)/Nodes(<segment>)/…`.
 *
 * @param productId - the OData product `Id` (a UUID).
 * @param safeName - the product's SAFE folder, `<sceneId>.SAFE` (its OData `Name`).
 * @param safePath - a path relative to the SAFE root; `''` for the SAFE folder itself.
 */
export function productNodePath(productId: string, safeName: string, safePath = ''): string {
  if (productId === '') throw new Error('empty product Id');
  const parts = [`Products(${encodeNodeKey(productId)})`, `Nodes(${encodeNodeKey(safeName)})`];
  if (safePath !== '') for (const s of safePathSegments(safePath)) parts.push(`Nodes(${encodeNodeKey(s)})`);
  return parts.join('/');
}

/**
 * The URL that streams one file of a product: `{downloadUrl}/Products(<Id>)/Nodes(<SAFE>)/…/Nodes(<file>)/$value`.
 * @param downloadUrl - the download service base, e.g. `https://download.dataspace.copernicus.eu/odata/v1`.
 */
export function nodeValueUrl(downloadUrl: string, productId: string, safeName: string, safePath: string): string {
  return `${trimBase(downloadUrl)}/${productNodePath(productId, safeName, safePath)}/$value`;
}

/**
 * The URL that lists a folder's children: `{downloadUrl}/Products(<Id>)/Nodes(<SAFE>)/…/Nodes`
 * (`safePath` `''` lists the SAFE root).
 */
export function nodeListUrl(downloadUrl: string, productId: string, safeName: string, safePath = ''): string {
  return `${trimBase(downloadUrl)}/${productNodePath(productId, safeName, safePath)}/Nodes`;
}

function trimBase(url: string): string {
  return url.replace(/\/+$/, '');
}
