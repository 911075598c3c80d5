/**
 * Streaming one file to a response: Range (206 + Content-Range), throttling, and the stream
 * faults (cut, slow, corrupt, truncate). Content-Length is always sent, so a client can tell a
 * cut stream (fewer bytes than announced) from a complete one.
 */
import type { ServerResponse } from 'node:http';
import { parseRange, sleep } from './http-util.js';
import type { ByteSource } from './synthetic-bytes.js';

/** How to serve one file. Sizes and offsets in bytes, rates in bytes per second. */
export interface StreamPlan {
  readonly source: ByteSource;
  /** The request's `Range` header. */
  readonly rangeHeader: string | undefined;
  /** When false, Range is ignored and the whole file is sent with 200. */
  readonly rangeSupport: boolean;
  /** Per-stream rate limit; `undefined` or 0 = unlimited. */
  readonly bytesPerSecond?: number | undefined;
  /** Destroy the socket after this many body bytes. */
  readonly cutAfterBytes?: number | undefined;
  /** Flip the byte at this file offset (XOR 0xFF). */
  readonly corruptOffset?: number | undefined;
  /** Serve the file this many bytes shorter (Content-Length agrees). */
  readonly truncateBytes?: number | undefined;
  /** HEAD request: headers only. */
  readonly head: boolean;
  /** Called before the first body byte, with the status (200 or 206) about to be sent. */
  readonly onStart?: ((status: number) => void) | undefined;
  /** Called with each number of body bytes written. */
  readonly onBytes?: ((n: number) => void) | undefined;
}

/** What happened. */
export interface StreamOutcome {
  /** 200, 206, or 416 (unsatisfiable range; nothing streamed). */
  readonly status: number;
  /** Body bytes written. */
  readonly bytesSent: number;
  /** Every announced byte was written and the response ended normally. */
  readonly finished: boolean;
  /** The response covered the served file through its last byte. */
  readonly reachesEnd: boolean;
}

const CHUNK = 64 * 1024;

/** Resolve when the response can take more data, or has closed (client gone, socket cut). */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Serve `plan.source` on `res`. Never throws for client disconnects (the outcome says so). */
export async function streamFile(res: ServerResponse, plan: StreamPlan): Promise<StreamOutcome> {
  const size = Math.max(0, plan.source.size - (plan.truncateBytes ?? 0));
  const range = plan.rangeSupport ? parseRange(plan.rangeHeader, size) : { kind: 'none' as const };
  if (range.kind === 'unsatisfiable') {
    res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
    res.end();
    return { status: 416, bytesSent: 0, finished: false, reachesEnd: false };
  }
  const start = range.kind === 'range' ? range.start : 0;
  const end = range.kind === 'range' ? range.end + 1 : size; // exclusive
  const status = range.kind === 'range' ? 206 : 200;
  res.writeHead(status, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(end - start),
    ...(plan.rangeSupport ? { 'Accept-Ranges': 'bytes' } : {}),
    ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end - 1}/${size}` } : {}),
  });
  if (plan.head) {
    res.end();
    return { status, bytesSent: 0, finished: false, reachesEnd: false };
  }
  plan.onStart?.(status);

  const rate = plan.bytesPerSecond && plan.bytesPerSecond > 0 ? plan.bytesPerSecond : undefined;
  // A throttled body's first chunk waits a pacing interval: send the headers now.
  if (rate) res.flushHeaders();
  // Throttled streams write about 8 chunks per second, so pacing stays smooth at low rates.
  const chunkSize = rate ? Math.max(1, Math.min(CHUNK, Math.floor(rate / 8))) : CHUNK;
  const cut = plan.cutAfterBytes;
  const t0 = Date.now();
  let sent = 0;
  let pos = start;
  for (const original of plan.source.chunks(start, end, chunkSize)) {
    if (res.destroyed) break;
    let buf = original;
    const c = plan.corruptOffset;
    if (c !== undefined && c >= pos && c < pos + buf.length) buf[c - pos] = buf[c - pos]! ^ 0xff;
    if (cut !== undefined && sent + buf.length >= cut) {
      buf = buf.subarray(0, cut - sent);
      await cutAfter(res, buf);
      sent += buf.length;
      plan.onBytes?.(buf.length);
      return { status, bytesSent: sent, finished: false, reachesEnd: false };
    }
    if (rate) {
      // Pace before writing: the last byte leaves at size/rate and the response ends right after
      // it. (Sleeping after the last write kept a download slot busy for a pacing interval after
      // the client had every byte and had moved on to its next download.)
      const ahead = ((sent + buf.length) / rate) * 1000 - (Date.now() - t0);
      if (ahead > 0) await sleep(ahead);
      if (res.destroyed) break;
    }
    const ok = res.write(buf);
    sent += buf.length;
    pos += buf.length;
    plan.onBytes?.(buf.length);
    if (!ok) await drainOrClose(res);
  }
  if (res.destroyed) return { status, bytesSent: sent, finished: false, reachesEnd: false };
  if (cut !== undefined && cut <= sent) {
    // A cut at exactly the body length (or an empty body) still cuts before the response ends.
    await cutAfter(res, Buffer.alloc(0));
    return { status, bytesSent: sent, finished: false, reachesEnd: false };
  }
  const finished = await new Promise<boolean>((resolve) => {
    res.once('finish', () => resolve(true));
    res.once('close', () => resolve(res.writableFinished));
    res.end();
  });
  return { status, bytesSent: sent, finished, reachesEnd: finished && end === size };
}

/** Write `last` (possibly empty), wait until it is flushed to the socket, then destroy the connection. */
async function cutAfter(res: ServerResponse, last: Buffer): Promise<void> {
  if (last.length > 0) {
    await new Promise<void>((resolve) => res.write(last, () => resolve()));
  } else {
    res.flushHeaders();
    await sleep(5);
  }
  res.destroy();
}
