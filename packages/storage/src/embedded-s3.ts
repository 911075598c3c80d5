/**
 * The embedded S3 for development and the demo: s3rver in-process, when `S3_ENDPOINT` is unset.
 *
 * Several local processes (workers, the API, the demo) share one: the first to bind
 * `EMBEDDED_S3_PORT` serves it, the others find the port taken and use that server. When the
 * serving process exits, the others get ECONNREFUSED until one of them is restarted.
 */
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import S3rver from 's3rver';
import { ScenecacheError, type Logger, type Settings } from '@scenecache/core';

/** Options of {@link startEmbeddedS3}. */
export interface EmbeddedS3Options {
  /** TCP port; 0 picks a free one (read it from the result). */
  port: number;
  /** Where buckets and objects live on disk (created if missing; kept on close). */
  directory: string;
  /** Interface to bind. @defaultValue `127.0.0.1` */
  host?: string;
}

/** A running embedded S3 server. */
export interface EmbeddedS3 {
  /** `http://host:port`, for `S3_ENDPOINT` / `createS3Client`. */
  endpoint: string;
  port: number;
  /** Absolute path of the data directory. */
  directory: string;
  /** Stop serving (idempotent); open keep-alive connections are closed after 1 s. Data stays on disk. */
  close(): Promise<void>;
}

/** An S3 endpoint this process may use, and whether it must stop a server on shutdown. */
export interface ResolvedS3Endpoint {
  endpoint: string;
  /** Whether the endpoint is the embedded s3rver (else `S3_ENDPOINT`). */
  embedded: boolean;
  /** Whether this process serves it; `close()` stops the server only then. */
  owned: boolean;
  /** Stop the server if this process owns it; a no-op otherwise. */
  close(): Promise<void>;
}

/**
 * Start s3rver on `host:port` with data under `directory` (`silent`, `resetOnClose: false`, no
 * preconfigured buckets). Any access key and SigV4 signature is accepted: s3rver does not verify
 * V4 signatures.
 *
 * s3rver 3.7.1 decodes `x-amz-copy-source` with `decodeURI`, which leaves `%2B`, `%3D` and the
 * other reserved escapes encoded, so CopyObject of a key with `+` or `=` would fail with
 * NoSuchKey. A request listener placed before s3rver's rewrites that header into the form its
 * `decodeURI` turns into the key S3 itself would decode, so dev and the demo behave like S3.
 *
 * s3rver 3.7.1 deletes the keys of a DeleteObjects request in parallel, and each deletion then
 * removes its directories once they are empty (`readdirSync`, `rmdir`): two keys of one directory
 * (two bands of one product) race there, one fails with ENOENT, and the whole request is answered
 * `500 InternalError` — S3 never does this. {@link repairDeleteCleanupRace} makes that ENOENT a
 * success (the directory is gone, which is what the clean-up wanted).
 *
 * @throws the listen error as Node raises it (e.g. `code: 'EADDRINUSE'`).
 */
export async function startEmbeddedS3(options: EmbeddedS3Options): Promise<EmbeddedS3> {
  const host = options.host ?? '127.0.0.1';
  const directory = resolvePath(options.directory);
  await mkdir(directory, { recursive: true });
  repairDeleteCleanupRace();
  const s3rver = new S3rver({ directory, silent: true, resetOnClose: false, configureBuckets: [] });
  await s3rver.configureBuckets();
  // Our own server (s3rver's documented `callback()`), not `s3rver.run()`: run() reports listen
  // errors such as EADDRINUSE as an unhandled 'error' event instead of rejecting.
  const server = createServer();
  server.on('request', decodeCopySourceLikeS3);
  server.on('request', s3rver.callback());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    server.close();
    throw err;
  }
  server.on('error', () => undefined); // after listening, errors belong to single connections
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    directory,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), 1_000);
        force.unref();
        // s3rver's winston logger stays open: requests still finishing would log to a closed one.
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}

/**
 * Serve the embedded S3 on `embeddedS3Port` (host 127.0.0.1) with data in `embeddedS3Dir`, or, when
 * the port is taken (EADDRINUSE), use the server another local process runs there (`owned: false`),
 * after checking that it answers like S3.
 *
 * @throws ScenecacheError `storage_error` when the port is taken by something that is not S3,
 *   or the listen error (e.g. EACCES).
 */
export async function ensureEmbeddedS3(
  settings: Pick<Settings, 'embeddedS3Port' | 'embeddedS3Dir'>,
  logger: Logger,
): Promise<ResolvedS3Endpoint> {
  const port = settings.embeddedS3Port;
  try {
    const server = await startEmbeddedS3({ port, directory: settings.embeddedS3Dir });
    logger.info({ endpoint: server.endpoint, directory: server.directory }, 'embedded S3 (s3rver) started');
    return { endpoint: server.endpoint, embedded: true, owned: true, close: () => server.close() };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  if (!(await answersLikeS3(endpoint))) {
    throw new ScenecacheError(
      'storage_error',
      `port ${port} (EMBEDDED_S3_PORT) is in use by something that is not an S3 server; set EMBEDDED_S3_PORT or S3_ENDPOINT`,
    );
  }
  logger.info({ endpoint }, 'embedded S3 already served by another local process; using it');
  return { endpoint, embedded: true, owned: false, close: () => Promise.resolve() };
}

/**
 * The S3 endpoint a process should use: `s3Endpoint` when set, else the embedded s3rver after
 * {@link ensureEmbeddedS3}. Call `close()` on shutdown.
 */
export async function resolveS3Endpoint(
  settings: Pick<Settings, 's3Endpoint' | 'embeddedS3Port' | 'embeddedS3Dir'>,
  logger: Logger,
): Promise<ResolvedS3Endpoint> {
  if (settings.s3Endpoint !== undefined) {
    return { endpoint: settings.s3Endpoint, embedded: false, owned: false, close: () => Promise.resolve() };
  }
  return ensureEmbeddedS3(settings, logger);
}

/** s3rver's filesystem store, as far as {@link repairDeleteCleanupRace} touches it. */
interface FilesystemStoreClass {
  prototype: { deleteObject: (this: unknown, bucket: string, key: string) => Promise<void>; deleteRaceRepaired?: boolean };
}

/** See {@link startEmbeddedS3}: an ENOENT while deleting an object (its directories' clean-up) is success. Once per process. */
function repairDeleteCleanupRace(): void {
  const store = createRequire(import.meta.url)('s3rver/lib/stores/filesystem.js') as FilesystemStoreClass;
  if (store.prototype.deleteRaceRepaired) return;
  const deleteObject = store.prototype.deleteObject;
  store.prototype.deleteObject = async function (this: unknown, bucket: string, key: string): Promise<void> {
    try {
      await deleteObject.call(this, bucket, key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  };
  store.prototype.deleteRaceRepaired = true;
}

/** Rewrite `x-amz-copy-source` so that s3rver's `decodeURI` yields what S3's full URL-decoding would. */
function decodeCopySourceLikeS3(req: IncomingMessage): void {
  const value = req.headers['x-amz-copy-source'];
  if (typeof value !== 'string') return;
  try {
    req.headers['x-amz-copy-source'] = encodeURI(decodeURIComponent(value));
  } catch {
    // Malformed escapes: leave the header for s3rver to reject.
  }
}

/** An unauthenticated `GET /` answered with S3 XML (s3rver lists buckets; real S3 says AccessDenied). */
async function answersLikeS3(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(3_000) });
    const text = await res.text();
    return /<ListAllMyBucketsResult|<Error>/.test(text);
  } catch {
    return false;
  }
}
