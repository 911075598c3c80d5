/**
 * @scenecache/copernicus — the client of the Copernicus Data Space Ecosystem (CDSE).
 *
 * Glossary:
 * - catalogue: the OData search service (`catalogue.dataspace.copernicus.eu/odata/v1`), no token.
 * - download host: the OData download service (`download.dataspace.copernicus.eu/odata/v1`); every
 *   file is `Products(<Id>)/Nodes(<SAFE>)/Nodes(…)/$value`, with a Bearer token.
 * - manifest: a product's `manifest.safe`, listing every file's size and SHA3-256.
 * - shared token: the fleet's one access token, cached in Redis and refreshed under a lock.
 * - resume: continuing a cut file with `Range: bytes=<received>-` (when the server answers 206).
 * - restart: streaming a file again from byte 0 when the server cannot resume it.
 */
export { CdseClient, type CdseClientOptions, type CdseCallOptions, type CdseSettings, type CdseTokenTuning } from './cdse-client.js';
export { IntegrityFailures, INTEGRITY_FAILURES_TO_QUARANTINE } from './integrity-failures.js';
export { CdseTokenProvider, type CdseTokenProviderOptions, type CdseTokenStats } from './cdse-token.js';
export { requestKeycloakToken, parseTokenResponse, type CachedCdseToken, type KeycloakGrantRequest } from './keycloak-grant.js';
export { lookupProduct, parseProduct, parseProductSearch, productSearchUrl, type CdseChecksum, type CdseProduct, type ProductLookupOptions } from './product-lookup.js';
export { fetchProductManifest, locateBandFile, type ProductManifestOptions } from './product-manifest.js';
export {
  VerifiedFileStream,
  openVerifiedFileStream,
  type FileDownloadContext,
  type VerifiedFileRequest,
  type VerifiedFileResult,
} from './band-download.js';
export { RestartRequiredError, isRestartRequired, parseContentRange, type ContentRange } from './range-resume.js';
export { encodeNodeKey, nodeListUrl, nodeValueUrl, productNodePath, safePathSegments } from './nodes-path.js';
export { authorizedGet, type AccessTokenSource, type AuthorizedGetOptions, type AuthorizedGetStats } from './authorized-request.js';
export { DEFAULT_RETRY_OPTIONS, backoffDelayMs, parseRetryAfterMs, resolveRetryOptions, type RetryOptions } from './retry-policy.js';
export { createKeepAliveAgents, describeErrorBody, errorForStatus, type AgentChooser, type KeepAliveAgents } from './upstream-http.js';
