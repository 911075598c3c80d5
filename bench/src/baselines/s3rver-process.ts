/**
 * The embedded S3 (`startEmbeddedS3` of @scenecache/storage: s3rver 3.7.1) in a process of its
 * own, for scenarios that list and delete in big buckets. Spawned by {@link startS3rverProcess}
 * with Node's `--openssl-legacy-provider`: s3rver encrypts ListObjectsV2 continuation tokens with
 * DES, which OpenSSL 3 (Node ≥ 17) refuses without it, so on a plain Node 20 every truncated V2
 * answer is a 500 (`ObjectStore.listObjectPages` then goes on with ListObjects V1 after the SDK's
 * retries); with it, the listing the bench times is the V2 paging the store does against S3. Its
 * own process also keeps s3rver's synchronous directory walks (every listing page) off the bench's
 * event loop, as a real S3 would be.
 *
 * s3rver's DeleteObjects clean-up race is repaired by `startEmbeddedS3` itself.
 *
 * Run as a script (`node --openssl-legacy-provider bench/dist/baselines/s3rver-process.js <dir>`):
 * serves `<dir>` on a free port of 127.0.0.1 and prints one JSON line
 * `{"msg":"s3rver started","endpoint":"http://127.0.0.1:<port>"}`; exits when its stdin closes
 * (the bench went away, however it ended) or on SIGTERM, removing `<dir>`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createS3Client, ObjectStore, startEmbeddedS3 } from '@scenecache/storage';
import { captureJsonLogs, spawnProcessGroup } from '@scenecache/testing';
import { loadSettings } from '@scenecache/core';
import type { S3Client } from '@aws-sdk/client-s3';

/** A running s3rver process and a client of it. */
export interface S3rverProcess {
  readonly endpoint: string;
  readonly client: S3Client;
  readonly store: ObjectStore;
  /** Stop the process (SIGTERM, SIGKILL after 10 s) and remove its directory. */
  close(): Promise<void>;
}

/**
 * Spawn the embedded S3 in a child process (see the module comment) in its own process group
 * (killed when the bench exits) and connect a client with the repository's S3 settings.
 * @throws when it does not start within 30 s.
 */
export async function startS3rverProcess(): Promise<S3rverProcess> {
  const directory = await mkdtemp(join(tmpdir(), 'scenecache-bench-s3-'));
  const script = fileURLToPath(import.meta.url);
  const child = spawnProcessGroup(process.execPath, ['--openssl-legacy-provider', script, directory], { stdio: ['pipe', 'pipe', 'inherit'] });
  const proc = captureJsonLogs(child);
  try {
    const line = await proc.waitForLog((l) => l.msg === 's3rver started', 30_000);
    const endpoint = String(line.endpoint);
    const base = loadSettings(process.env);
    const client = createS3Client({
      s3Endpoint: endpoint,
      s3Region: base.s3Region,
      s3AccessKeyId: base.s3AccessKeyId,
      s3SecretAccessKey: base.s3SecretAccessKey,
      s3ForcePathStyle: true,
      s3RequestChecksumCalculation: base.s3RequestChecksumCalculation,
      s3ResponseChecksumValidation: base.s3ResponseChecksumValidation,
    });
    return {
      endpoint,
      client,
      store: new ObjectStore(client),
      async close() {
        client.destroy();
        const timer = setTimeout(() => void proc.kill('SIGKILL'), 10_000);
        await proc.kill('SIGTERM');
        clearTimeout(timer);
        await rm(directory, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await proc.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
}

/** The child: serve, print the endpoint, stop when told or orphaned. */
async function serve(directory: string): Promise<void> {
  const server = await startEmbeddedS3({ port: 0, directory });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await server.close();
    await rm(directory, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.stdin.on('close', () => void stop());
  process.stdin.on('end', () => void stop());
  process.stdin.resume();
  console.log(JSON.stringify({ msg: 's3rver started', endpoint: server.endpoint }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const directory = process.argv[2];
  if (!directory) {
    console.error('usage: node --openssl-legacy-provider s3rver-process.js <directory>');
    process.exit(2);
  }
  serve(directory).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
