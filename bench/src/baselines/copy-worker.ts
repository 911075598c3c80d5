/**
 * Baseline process for the throughput scenario: bare S3 CopyObject calls, grouped like a reused
 * job's fan-out — a "job-equivalent" is one CopyObject per band (all at once, as the worker's
 * `copyToTenant` does up to 4), and `COPY_CONCURRENCY` job-equivalents run at once (as
 * `WORKER_CONCURRENCY` jobs do). No HEAD, no database, no queue: the rate S3 itself allows.
 * With `COPY_WITH_HEADS=1` a job-equivalent makes every S3 request a reused job makes, in the
 * same order: HEAD of each band in the source bucket (the cache check), then per band HEAD in the
 * target (a miss: 404) and CopyObject (the fan-out).
 *
 * Environment: the S3 settings (`S3_ENDPOINT`, …, as the worker reads them), `COPY_SOURCE_BUCKET`,
 * `COPY_SOURCES` (JSON: an array of key groups, one group = the band keys of one product; job i
 * copies group i mod length), `COPY_TARGET_BUCKETS` (JSON array of existing buckets; job i writes
 * into bucket i mod length, under `COPY_RUN_ID/<i>/`), `COPY_JOBS`, `COPY_CONCURRENCY`.
 *
 * Protocol (JSON lines on stdout): `{"msg":"worker started"}` when ready; then it waits for a line
 * `go` on stdin, runs every job-equivalent and logs
 * `{"msg":"done","jobs":n,"copies":n,"startedAt":epochMs,"finishedAt":epochMs}` (times from
 * `performance.timeOrigin + performance.now()`), and exits 0. Exits 1 on the first failed copy.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { CopyObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { loadSettings } from '@scenecache/core';
import { createS3Client, encodeCopySource } from '@scenecache/storage';

const settings = loadSettings(process.env);
const client = createS3Client(settings);
const sourceBucket = process.env.COPY_SOURCE_BUCKET!;
const sources = JSON.parse(process.env.COPY_SOURCES ?? '[]') as string[][];
const targets = JSON.parse(process.env.COPY_TARGET_BUCKETS ?? '[]') as string[];
const jobs = Number(process.env.COPY_JOBS ?? 0);
const concurrency = Number(process.env.COPY_CONCURRENCY ?? settings.workerConcurrency);
const runId = process.env.COPY_RUN_ID ?? String(process.pid);
const withHeads = process.env.COPY_WITH_HEADS === '1';
const now = () => performance.timeOrigin + performance.now();

/** One job-equivalent: copy one product's band keys into one target bucket, all at once. */
async function jobEquivalent(i: number, tag: string): Promise<number> {
  const keys = sources[i % sources.length]!;
  const bucket = targets[i % targets.length]!;
  if (withHeads) await Promise.all(keys.map((key) => client.send(new HeadObjectCommand({ Bucket: sourceBucket, Key: key }))));
  await Promise.all(
    keys.map(async (key) => {
      const target = `${runId}/${tag}${i}/${key}`;
      if (withHeads) {
        const found = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: target })).then(
          () => true,
          (err: { name?: string }) => {
            if (err.name === 'NotFound') return false;
            throw err;
          },
        );
        if (found) throw new Error(`copy-worker: ${bucket}/${target} exists already`);
      }
      await client.send(new CopyObjectCommand({ CopySource: encodeCopySource(sourceBucket, key), Bucket: bucket, Key: target, MetadataDirective: 'COPY' }));
    }),
  );
  return keys.length;
}

if (sources.length === 0 || targets.length === 0) throw new Error('copy-worker: COPY_SOURCES and COPY_TARGET_BUCKETS must not be empty');
// Warm up (connections, code paths) before saying ready.
for (let i = 0; i < Math.min(concurrency, 4); i++) await jobEquivalent(i, 'warmup-');
console.log(JSON.stringify({ level: 30, msg: 'worker started', pid: process.pid }));
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() !== 'go') continue;
  const limit = pLimit(concurrency);
  const startedAt = now();
  try {
    const copies = await Promise.all(Array.from({ length: jobs }, (_, i) => limit(() => jobEquivalent(i, ''))));
    const finishedAt = now();
    console.log(JSON.stringify({ level: 30, msg: 'done', jobs, copies: copies.reduce((a, b) => a + b, 0), startedAt, finishedAt }));
    process.exit(0);
  } catch (err) {
    console.log(JSON.stringify({ level: 50, msg: 'copy failed', err: String(err) }));
    process.exit(1);
  }
}
