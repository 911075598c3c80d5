/**
 * The S3 client every process uses: explicit credentials, path-style addressing for MinIO/s3rver,
 * the SDK's flexible checksums as settings, and a keep-alive agent sized for parallel part uploads.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { Settings } from '@scenecache/core';

/** Checksum mode of the AWS SDK's flexible checksums (since @aws-sdk/client-s3 3.729). */
export type S3ChecksumMode = 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';

/** Options of {@link createS3Client}. */
export interface S3ClientOptions {
  /** `http(s)://host:port` of an S3-compatible server; undefined = AWS S3 for `region`. */
  endpoint?: string | undefined;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`; true for MinIO and s3rver. */
  forcePathStyle: boolean;
  /**
   * `WHEN_SUPPORTED` (the SDK's default) adds a CRC32 checksum to every upload and sends bodies
   * `aws-chunked`, which many S3-compatible servers mishandle (some store the chunk framing).
   * Use `WHEN_REQUIRED` for anything but AWS.
   */
  requestChecksumCalculation: S3ChecksumMode;
  /** `WHEN_SUPPORTED` validates response checksums when S3 sends them; `WHEN_REQUIRED` for non-AWS. */
  responseChecksumValidation: S3ChecksumMode;
  /**
   * Sockets per host of the keep-alive agent. Each part of a multipart upload or copy holds one
   * for its whole transfer, so this bounds `jobs × queueSize` in flight. @defaultValue 64
   */
  maxSockets?: number;
  /** Time to establish a TCP connection (ms); requests themselves have no deadline. @defaultValue 5000 */
  connectionTimeoutMs?: number;
  /** Attempts per request, including the first (the SDK's standard retry strategy). @defaultValue 3 */
  maxAttempts?: number;
}

/** The S3 fields of {@link Settings}: {@link createS3Client} accepts these as they are. */
export type S3Settings = Pick<
  Settings,
  | 's3Endpoint'
  | 's3Region'
  | 's3AccessKeyId'
  | 's3SecretAccessKey'
  | 's3ForcePathStyle'
  | 's3RequestChecksumCalculation'
  | 's3ResponseChecksumValidation'
>;

/** Map {@link S3Settings} to {@link S3ClientOptions}; `endpoint` overrides `s3Endpoint` (the embedded server's URL). */
export function s3ClientOptionsFromSettings(settings: S3Settings, endpoint: string | undefined = settings.s3Endpoint): S3ClientOptions {
  return {
    endpoint,
    region: settings.s3Region,
    accessKeyId: settings.s3AccessKeyId,
    secretAccessKey: settings.s3SecretAccessKey,
    forcePathStyle: settings.s3ForcePathStyle,
    requestChecksumCalculation: settings.s3RequestChecksumCalculation,
    responseChecksumValidation: settings.s3ResponseChecksumValidation,
  };
}

/**
 * Create an S3 client. Accepts {@link S3ClientOptions} or the S3 fields of {@link Settings} (with
 * `s3Endpoint` set to the endpoint in use, e.g. from `resolveS3Endpoint`).
 *
 * Call `client.destroy()` on shutdown: it closes the agent's idle sockets.
 */
export function createS3Client(input: S3ClientOptions | S3Settings): S3Client {
  const options = 's3Region' in input ? s3ClientOptionsFromSettings(input) : input;
  const agent = { keepAlive: true, maxSockets: options.maxSockets ?? 64 };
  return new S3Client({
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    region: options.region,
    credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
    forcePathStyle: options.forcePathStyle,
    requestChecksumCalculation: options.requestChecksumCalculation,
    responseChecksumValidation: options.responseChecksumValidation,
    maxAttempts: options.maxAttempts ?? 3,
    // Options, not a NodeHttpHandler instance: the SDK builds its own handler from them, so we
    // need no direct dependency on @smithy/node-http-handler.
    requestHandler: { httpAgent: agent, httpsAgent: agent, connectionTimeout: options.connectionTimeoutMs ?? 5_000 },
  });
}
