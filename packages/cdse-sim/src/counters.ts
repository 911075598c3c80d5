/**
 * What the sim has served, for tests and benchmarks to assert on ("band B04 of product P was
 * downloaded exactly once", "never more than 4 downloads at once", "one password login").
 *
 * Band file downloads are keyed `<sceneId>/<SAFE-relative path>` (no `.SAFE`), e.g.
 * `S2B_MSIL1C_..._20241209T195414/GRANULE/L1C_T17UPV_.../IMG_DATA/T17UPV_20241209T162609_B04.jp2`.
 * How a download is counted:
 * - `started`: a 200 or 206 response began (after auth, faults and the concurrency limit).
 * - `completed`: the response delivered every byte it announced AND reached the file's last byte.
 *   A resumed download (`Range: bytes=N-`) that finishes therefore completes the file once; a
 *   full download cut mid-stream only starts it. A `truncate` fault's short response still
 *   counts as completed (the server sent all it meant to).
 * - `bytes`: body bytes written to the socket, cut or not.
 * `manifest.safe` is not a band download: it only counts in `manifestRequests`. Nor are the
 * metadata files (`GRANULE/<granule>/MTD_TL.xml`, `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml`): they count
 * in `metadataRequests` and, per file, in `metadataFiles`, so the band counters (`files`,
 * `products`, `totals`, `completedBy`, the concurrency peak) are the same whether a client reads
 * them or not.
 */

/** Counts of one file, one product, or all downloads. */
export interface DownloadCounter {
  /** Responses (200/206) started. */
  started: number;
  /** Responses that delivered the file through its last byte. */
  completed: number;
  /** Body bytes sent. */
  bytes: number;
  /** Of `started`, how many were 206 range responses. */
  ranged: number;
}

/** A snapshot of every counter (plain JSON; `GET /__sim/counters` returns the same). */
export interface SimCounters {
  /** Per band file, keyed `<sceneId>/<safe path>`. */
  files: Record<string, DownloadCounter>;
  /** Per product (sceneId), the sum over its band files. */
  products: Record<string, DownloadCounter>;
  /** Sum over all band files. */
  totals: DownloadCounter;
  /** Band streams in flight now (these hold a download slot). */
  currentConcurrentDownloads: number;
  /** Highest `currentConcurrentDownloads` since start or reset. */
  peakConcurrentDownloads: number;
  /** Downloads refused with the real 429 `DAT-ZIP-100` because every slot was taken. */
  rejected429: number;
  /** 401 answers on the download host (no token, unknown or expired token, `expireToken` fault). */
  unauthorized401: number;
  /** Successful `grant_type=password` logins (each opens a Keycloak session). */
  tokenLogins: number;
  /** Successful `grant_type=refresh_token` grants. */
  tokenRefreshes: number;
  /** Failed token requests (bad credentials, inactive refresh token, bad client). */
  tokenFailures: number;
  /** `Nodes(manifest.safe)/$value` responses started. */
  manifestRequests: number;
  /** Metadata file (`MTD_TL.xml`, `MTD_MSIL*.xml`) responses (200/206) started. */
  metadataRequests: number;
  /** Per metadata file, keyed `<sceneId>/<safe path>` (like `files`): responses (200/206) started. */
  metadataFiles: Record<string, number>;
  /** Requests to the catalogue base (`/odata/v1/...`). */
  catalogueRequests: number;
  /** Nodes listings served (`.../Nodes`). */
  listingRequests: number;
  /** Faults applied, by kind (`status`, `status429`, `cutAfterBytes`, ..., and `chaos:<kind>`). */
  faultsApplied: Record<string, number>;
  /**
   * Per band file (keyed like `files`), who completed it: `User-Agent` → completed downloads. Tells
   * a chaos test which worker process received each complete copy.
   */
  completedBy: Record<string, Record<string, number>>;
}

const zero = (): DownloadCounter => ({ started: 0, completed: 0, bytes: 0, ranged: 0 });

/** The live counters of one sim. */
export class CounterStore {
  private c: SimCounters = CounterStore.empty(0);

  private static empty(current: number): SimCounters {
    return {
      files: {}, products: {}, totals: zero(),
      currentConcurrentDownloads: current, peakConcurrentDownloads: current,
      rejected429: 0, unauthorized401: 0, tokenLogins: 0, tokenRefreshes: 0, tokenFailures: 0,
      manifestRequests: 0, metadataRequests: 0, metadataFiles: {}, catalogueRequests: 0, listingRequests: 0, faultsApplied: {}, completedBy: {},
    };
  }

  /** A deep copy of the counters. */
  snapshot(): SimCounters {
    return structuredClone(this.c);
  }

  /** Zero every counter; downloads in flight stay counted in `currentConcurrentDownloads` (and `peak`). */
  reset(): void {
    this.c = CounterStore.empty(this.c.currentConcurrentDownloads);
  }

  /** Increment a scalar counter. */
  bump(name: 'rejected429' | 'unauthorized401' | 'tokenLogins' | 'tokenRefreshes' | 'tokenFailures' | 'manifestRequests' | 'catalogueRequests' | 'listingRequests'): void {
    this.c[name]++;
  }

  /** A 200 or 206 response of metadata file `path` of product `sceneId` began. */
  metadataStarted(sceneId: string, path: string): void {
    this.c.metadataRequests++;
    const key = `${sceneId}/${path}`;
    this.c.metadataFiles[key] = (this.c.metadataFiles[key] ?? 0) + 1;
  }

  /** A fault was applied (`kind`, or `chaos:<kind>` when chaos rolled it). */
  fault(kind: string): void {
    this.c.faultsApplied[kind] = (this.c.faultsApplied[kind] ?? 0) + 1;
  }

  /** A band stream took a slot. */
  enterDownload(): void {
    this.c.currentConcurrentDownloads++;
    this.c.peakConcurrentDownloads = Math.max(this.c.peakConcurrentDownloads, this.c.currentConcurrentDownloads);
  }

  /** A band stream released its slot. */
  leaveDownload(): void {
    this.c.currentConcurrentDownloads = Math.max(0, this.c.currentConcurrentDownloads - 1);
  }

  /** Apply `fn` to the counters of one band file, its product and the totals. */
  private each(sceneId: string, path: string, fn: (d: DownloadCounter) => void): void {
    fn((this.c.files[`${sceneId}/${path}`] ??= zero()));
    fn((this.c.products[sceneId] ??= zero()));
    fn(this.c.totals);
  }

  /** A 200 (or, `ranged`, 206) response of a band file began. */
  started(sceneId: string, path: string, ranged: boolean): void {
    this.each(sceneId, path, (d) => {
      d.started++;
      if (ranged) d.ranged++;
    });
  }

  /** `n` body bytes of a band file were written. */
  bytes(sceneId: string, path: string, n: number): void {
    this.each(sceneId, path, (d) => (d.bytes += n));
  }

  /** A band file response delivered every byte through the file's last one, to `client` (its User-Agent). */
  completed(sceneId: string, path: string, client = ''): void {
    this.each(sceneId, path, (d) => d.completed++);
    const byClient = (this.c.completedBy[`${sceneId}/${path}`] ??= {});
    byClient[client] = (byClient[client] ?? 0) + 1;
  }
}

/**
 * The summed counters of the band files of product `sceneId` (with or without `.SAFE`) whose
 * path ends with `pathSuffix`, e.g. `fileDownloads(c, scene, '_B04.jp2')` (L1C) or
 * `'_B04_10m.jp2'` (L2A). An empty suffix sums the whole product.
 */
export function fileDownloads(counters: SimCounters, sceneId: string, pathSuffix = ''): DownloadCounter {
  const prefix = `${sceneId.replace(/\.SAFE$/, '')}/`;
  const sum = zero();
  for (const [k, v] of Object.entries(counters.files)) {
    if (!k.startsWith(prefix) || !k.endsWith(pathSuffix)) continue;
    sum.started += v.started;
    sum.completed += v.completed;
    sum.bytes += v.bytes;
    sum.ranged += v.ranged;
  }
  return sum;
}
