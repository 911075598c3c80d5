/**
 * Baseline of the `download-path` scenario, run as its own process (`node
 * bench/dist/baselines/bare-upload.js '<BareUploadInput JSON>'`) so its RSS can be compared with a
 * worker's: the barest way to put one upstream file in S3 — one `GET …/$value` with a Bearer token
 * (node:http, no retry, no resume, no hashing, no size check) piped straight into
 * `@aws-sdk/lib-storage`'s `Upload` with the worker's part size (8 MiB) and queue size (4), on the
 * worker's S3 client (`createS3Client`: keep-alive agent, same checksum settings).
 *
 * With `sha3: true` the body also goes through a SHA3-256 Transform (the hash the worker verifies
 * every band with), to tell the cost of verification from the rest of the worker's path.
 *
 * The token comes from the sim's Keycloak endpoint before the clock starts (`grant_type=password`,
 * `client_id=cdse-public`, as packages/copernicus does). The timed span is from sending the GET to
 * `Upload.done()` resolving (CompleteMultipartUpload answered).
 *
 * Prints one JSON line ({@link BareUploadOutput}) on stdout and exits 0; on any failure prints
 * the error on stderr and exits 1.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { Upload } from '@aws-sdk/lib-storage';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client, DEFAULT_UPLOAD_PART_SIZE_BYTES, DEFAULT_UPLOAD_QUEUE_SIZE, type S3ClientOptions } from '@scenecache/storage';

/** What the parent passes (argv[2], JSON). */
export interface BareUploadInput {
  /** The file's `…/Nodes(<file>)/$value` URL on the sim's download host. */
  readonly fileUrl: string;
  /** The sim's token endpoint and account. */
  readonly tokenUrl: string;
  readonly username: string;
  readonly password: string;
  /** The same S3 the workers use. */
  readonly s3: S3ClientOptions;
  readonly bucket: string;
  readonly key: string;
  /** Part size (bytes). @defaultValue the worker's, 8 MiB */
  readonly partSizeBytes?: number;
  /** Parts in flight. @defaultValue the worker's, 4 */
  readonly queueSize?: number;
  /** Hash the body with SHA3-256 on its way (a Transform between the response and the upload). @defaultValue false */
  readonly sha3?: boolean;
}

/** What the child prints (one JSON line). */
export interface BareUploadOutput {
  /** Bytes stored (HEAD of the object after the upload). */
  readonly bytes: number;
  /** GET sent → `Upload.done()` resolved (ms, `performance.now()`). */
  readonly ms: number;
  /** GET sent → the response body's last byte read (ms); the rest of `ms` is the last parts and CompleteMultipartUpload. */
  readonly bodyEndedMs: number;
  /** Epoch ms of the GET and of the end (`performance.timeOrigin + now()`). */
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
  /** The process's peak RSS over its whole life (`process.resourceUsage().maxRSS`, KiB → bytes). */
  readonly maxRssBytes: number;
  readonly partSizeBytes: number;
  readonly queueSize: number;
  /** SHA3-256 of the body (lower-case hex) when `sha3` was asked for. */
  readonly sha3_256?: string;
}

async function accessToken(input: BareUploadInput): Promise<string> {
  const res = await fetch(input.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', client_id: 'cdse-public', username: input.username, password: input.password }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!res.ok || typeof body.access_token !== 'string') throw new Error(`token: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** GET `url` with the token; resolves with the 200 response stream. */
function openFile(url: string, token: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { authorization: `Bearer ${token}`, 'user-agent': 'scenecache-bench-bare-upload' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
        return;
      }
      resolve(res);
    });
    req.on('error', reject);
  });
}

const epochNow = (): number => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '') as BareUploadInput;
  const partSizeBytes = input.partSizeBytes ?? DEFAULT_UPLOAD_PART_SIZE_BYTES;
  const queueSize = input.queueSize ?? DEFAULT_UPLOAD_QUEUE_SIZE;
  const client = createS3Client(input.s3);
  const token = await accessToken(input);

  const t0 = performance.now();
  const startedAtMs = epochNow();
  const response = await openFile(input.fileUrl, token);
  let bodyEndedMs = NaN;
  response.once('end', () => (bodyEndedMs = performance.now() - t0));
  const hash = input.sha3 ? createHash('sha3-256') : undefined;
  const body: Readable = hash
    ? response.pipe(
        new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            hash.update(chunk);
            callback(null, chunk);
          },
        }),
      )
    : response;
  await new Upload({ client, params: { Bucket: input.bucket, Key: input.key, Body: body }, partSize: partSizeBytes, queueSize }).done();
  const ms = performance.now() - t0;
  const finishedAtMs = epochNow();

  const head = await client.send(new HeadObjectCommand({ Bucket: input.bucket, Key: input.key }));
  client.destroy();
  const output: BareUploadOutput = {
    bytes: head.ContentLength ?? -1,
    ms,
    bodyEndedMs,
    startedAtMs,
    finishedAtMs,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    partSizeBytes,
    queueSize,
    ...(hash ? { sha3_256: hash.digest('hex') } : {}),
  };
  process.stdout.write(`${JSON.stringify(output)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('bare-upload:', err instanceof Error ? err.stack : err);
    process.exit(1);
  },
);
