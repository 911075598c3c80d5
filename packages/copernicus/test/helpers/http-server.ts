/**
 * A real tiny HTTP server for integration tests, scripted per request so it can misbehave on
 * purpose: cut the socket mid-body, ignore Range, answer 429/5xx/401, send wrong bytes.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHash } from 'node:crypto';

/** A request as the server saw it. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest, index: number) => void | Promise<void>;

export interface TestServer {
  readonly url: string;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

/** Start a server on 127.0.0.1 with a random port; `handler` gets each request and its 0-based index. */
export async function startTestServer(handler: Handler): Promise<TestServer> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: SeenRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      const index = requests.push(seen) - 1;
      Promise.resolve(handler(req, res, seen, index)).catch((err: unknown) => {
        res.destroy(err instanceof Error ? err : new Error(String(err)));
      });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Write `data` honouring backpressure, then end (or not, to leave the response hanging). */
export async function writeAll(res: http.ServerResponse, data: Buffer, options: { chunk?: number; end?: boolean } = {}): Promise<void> {
  const step = options.chunk ?? 64 * 1024;
  for (let i = 0; i < data.length; i += step) {
    if (res.destroyed) return;
    if (!res.write(data.subarray(i, i + step))) await drained(res);
  }
  if (options.end !== false) res.end();
}

/** Wait until `res` drains or closes. */
export function drained(res: http.ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Send `data[offset..]` as 200 or 206 depending on the request's Range header (when `rangeSupport`). */
export async function serveFile(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, options: { rangeSupport?: boolean; cutAfter?: number; total?: number } = {}): Promise<void> {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = options.rangeSupport !== false && range ? Number(range[1]) : 0;
  const body = data.subarray(start);
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length };
  if (start > 0) {
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${data.length - 1}/${options.total ?? data.length}` });
  } else {
    res.writeHead(200, headers);
  }
  if (options.cutAfter !== undefined) {
    await writeAll(res, body.subarray(0, options.cutAfter), { end: false });
    // Let the bytes leave, then cut the connection mid-body.
    await new Promise((r) => setTimeout(r, 20));
    res.socket?.destroy();
    return;
  }
  await writeAll(res, body);
}

/** SHA3-256, lower-case hex. */
export function sha3(data: Buffer): string {
  return createHash('sha3-256').update(data).digest('hex');
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function testBytes(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
