/**
 * The demo's report: a table per job, the summary, and the invariant checks (every job finished,
 * no band downloaded twice, every tenant object byte-identical to upstream).
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import type { Job } from '@scenecache/client';
import type { ObjectStore } from '@scenecache/storage';

/** A job as `GET /v1/downloads` returns it (the client's type, generated from the API's document). */
export type JobView = Job;

/** The summary of `--json` (and of the printed table). */
export interface DemoSummary {
  jobs: number;
  completed: number;
  failed: number;
  reused: number;
  downloaded: number;
  upstream_file_downloads: number;
  distinct_pairs: number;
  upstream_bytes: number;
  delivered_bytes: number;
  wall_ms: number;
}

const MB = 1e6;
export const fmtMB = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;

/** The per-job table, sorted by product then tenant. */
export function jobTable(jobs: readonly JobView[]): string {
  const rows = [...jobs]
    .sort((a, b) => a.scene_id.localeCompare(b.scene_id) || a.tenant_id.localeCompare(b.tenant_id))
    .map((j) => [
      j.tenant_id,
      j.scene_id.slice(0, 44),
      j.status === 'completed' ? (j.cache_status ?? '') : `${j.status}${j.error ? ` (${j.error.code})` : ''}`,
      j.bands_downloaded.join(',') || '-',
      j.bands_reused.join(',') || '-',
      fmtMB(j.bytes_downloaded),
      fmtMB(j.bytes_copied),
      String(j.duration_ms ?? ''),
    ]);
  const header = ['tenant', 'product', 'cache_status', 'downloaded', 'reused', 'upstream', 'copied', 'ms'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Parse `s3://bucket/key`. */
function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new Error(`not an s3:// URL: ${url}`);
  return { bucket: m[1]!, key: m[2]! };
}

/**
 * Read every tenant object of every completed job and compare its SHA3-256 with the upstream
 * truth (`expected(scene, band)`). Returns the list of mismatches (empty = all identical).
 */
export async function verifyTenantObjects(
  store: ObjectStore,
  jobs: readonly JobView[],
  expected: (sceneId: string, band: string) => Promise<string | undefined>,
  onProgress: (done: number, total: number, bytes: number) => void,
): Promise<string[]> {
  const work = jobs.flatMap((j) => Object.entries(j.objects ?? {}).map(([band, url]) => ({ job: j, band, url })));
  const limit = pLimit(3);
  const problems: string[] = [];
  let done = 0;
  let bytes = 0;
  await Promise.all(
    work.map((w) =>
      limit(async () => {
        const want = await expected(w.job.scene_id, w.band);
        const { bucket, key } = parseS3Url(w.url);
        const hash = createHash('sha3-256');
        for await (const chunk of await store.getObjectStream(bucket, key)) {
          hash.update(chunk as Buffer);
          bytes += (chunk as Buffer).length;
        }
        const got = hash.digest('hex');
        if (want === undefined) problems.push(`${w.url}: no upstream checksum known for ${w.job.scene_id} ${w.band}`);
        else if (got !== want) problems.push(`${w.url}: SHA3-256 ${got} ≠ upstream ${want}`);
        onProgress(++done, work.length, bytes);
      }),
    ),
  );
  return problems;
}
