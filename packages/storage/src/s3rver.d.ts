/**
 * Types for the parts of s3rver 3.7 (CommonJS, untyped) that embedded-s3.ts uses. See
 * node_modules/s3rver/README.md ("Class: S3rver") and lib/s3rver.js.
 */
declare module 's3rver' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  interface S3rverOptions {
    /** @defaultValue `localhost` (only used by `run()`) */
    address?: string;
    /** @defaultValue 4568 (only used by `run()`) */
    port?: number;
    /** @defaultValue false */
    silent?: boolean;
    /** Where buckets and objects are stored on disk. */
    directory?: string;
    /** Delete every bucket when the server closes. @defaultValue false */
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    serviceEndpoint?: string;
    configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
  }

  class S3rver {
    constructor(options?: S3rverOptions);
    /** A request listener for `http.createServer()`. */
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    configureBuckets(): Promise<void>;
    reset(): void;
  }

  export = S3rver;
}
