/**
 * The download host (`https://download.dataspace.copernicus.eu/odata/v1`), mounted at
 * `/download/odata/v1` (documentation.dataspace.copernicus.eu/APIs/OData.html, "Product download"
 * and "Listing product nodes"):
 * - `GET Products(<Id>)/Nodes` and `.../Nodes(<SAFE>)/Nodes(GRANULE)/.../Nodes` list children
 *   (`{"result": [...]}`, see node-tree.ts). No token needed.
 * - `GET .../Nodes(<SAFE>)/Nodes(GRANULE)/Nodes(<granule>)/Nodes(IMG_DATA)[/Nodes(R10m)]/Nodes(<file>)/$value`
 *   streams a band file; `.../Nodes(<SAFE>)/Nodes(manifest.safe)/$value` the manifest;
 *   `.../Nodes(<SAFE>)/Nodes(GRANULE)/Nodes(<granule>)/Nodes(MTD_TL.xml)/$value` and
 *   `.../Nodes(<SAFE>)/Nodes(MTD_MSIL2A.xml)/$value` (or `MTD_MSIL1C.xml`) the metadata files. All
 *   need `Authorization: Bearer <access token>` (401 otherwise). Other files of the SAFE answer 404.
 * - Band streams are limited to `maxConcurrentDownloads` at once; the next gets the real 429
 *   `DAT-ZIP-100` body (fixture `zipper_429_max_session_exceeded.txt`) without `Retry-After`.
 *   A slot is held from the first byte until the response closes (finished, cut or abandoned).
 *   The manifest and the metadata files take a slot only with `manifestCountsAsDownload`; they
 *   never count in the band counters or the concurrency peak (counters.ts).
 * - `GET Products(<Id>)/$value` (the whole zip) answers 501: the sim serves files only.
 * A product is found by Id when it was looked up before (catalogue, or any Nodes path), or by
 * the SAFE name in the path (whose derived Id must match). The 401/404 `detail` texts are the
 * sim's own (no recorded real bodies).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { answerImmediateFault, faultTag } from './fault-answer.js';
import { streamFile } from './file-stream.js';
import { maxSessionsBody, sendDetail, sendJson } from './http-util.js';
import { listingEntry, resolveNode } from './node-tree.js';
import type { SimContext } from './options.js';
import type { ProductLayout } from './product-catalogue.js';
import { bufferSource, type ByteSource } from './synthetic-bytes.js';

const PATH_RE = /^\/Products\(([^)/]+)\)((?:\/Nodes\([^)/]+\))*)(\/Nodes|\/\$value)?\/?$/;
const UNAUTHORIZED: Record<string, string> = { missing: 'Not authenticated', invalid: 'Invalid token', expired: 'Expired signature!' };

interface Target {
  layout: ProductLayout | undefined;
  id: string;
  /** Node names after `Products(<Id>)`: `[<SAFE>, 'GRANULE', ...]`. */
  segments: string[];
  action: 'listing' | 'value' | 'entity';
}

function parseTarget(ctx: SimContext, rest: string): Target | undefined {
  const m = PATH_RE.exec(rest);
  if (!m) return undefined;
  let segments: string[];
  try {
    segments = [...m[2]!.matchAll(/\/Nodes\(([^)/]+)\)/g)].map((s) => decodeURIComponent(s[1]!));
  } catch {
    return undefined;
  }
  const id = decodeURIComponent(m[1]!).replace(/^'|'$/g, '').toLowerCase();
  const action = m[3] === '/Nodes' ? 'listing' : m[3] === '/$value' ? 'value' : 'entity';
  // The SAFE name in the path identifies the product even if nobody looked its Id up yet.
  const byName = segments[0] === undefined ? undefined : ctx.catalogue.find(segments[0]);
  const layout = segments[0] === undefined ? ctx.catalogue.findById(id) : byName?.id === id ? byName : undefined;
  return { layout, id, segments, action };
}

/** Handle a request whose path is below `/download/odata/v1` (`rest`, e.g. `/Products(...)/Nodes`). */
export async function handleDownload(ctx: SimContext, req: IncomingMessage, res: ServerResponse, rest: string, downloadBase: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendDetail(res, 405, 'Method Not Allowed');
  const t = parseTarget(ctx, rest);
  if (!t || t.action === 'entity') return sendDetail(res, 404, 'Not Found');
  if (t.action === 'listing') return listing(ctx, res, t, downloadBase);

  const auth = ctx.tokens.check(req.headers.authorization);
  if (!auth.ok) {
    ctx.counters.bump('unauthorized401');
    return sendDetail(res, 401, UNAUTHORIZED[auth.reason]!);
  }
  if (!t.layout) return sendDetail(res, 404, `Product ${t.id} not found`);
  if (t.segments.length === 0) return sendDetail(res, 501, 'cdse-sim serves single files (Nodes(...)/$value), not whole-product zips');
  const node = resolveNode(t.layout.tree, t.segments.slice(1));
  const path = t.segments.slice(1).join('/');
  if (!node) return sendDetail(res, 404, `Node ${path} not found in ${t.layout.product.safeName}`);
  if (node.children) return sendDetail(res, 400, `Node ${path} is a folder: list it with /Nodes`);

  let kind: FileKind;
  let source: ByteSource | undefined;
  if (path === 'manifest.safe') {
    kind = 'manifest';
    source = bufferSource((await ctx.catalogue.servedManifest(t.layout)).bytes);
  } else {
    const metadata = ctx.catalogue.metadataBytes(t.layout, path);
    kind = metadata ? 'metadata' : 'band';
    source = metadata ? bufferSource(metadata) : ctx.catalogue.bandSource(t.layout, path);
  }
  if (!source) return sendDetail(res, 404, `cdse-sim does not serve ${path}: only band files (IMG_DATA/**.jp2), metadata files (MTD_TL.xml, MTD_MSIL*.xml) and manifest.safe`);
  await serveFile(ctx, req, res, t.layout, path, source, kind);
}

/** What a served file is: it decides the fault target, the slot and the counters. */
type FileKind = 'band' | 'manifest' | 'metadata';

async function serveFile(ctx: SimContext, req: IncomingMessage, res: ServerResponse, layout: ProductLayout, path: string, source: ByteSource, kind: FileKind): Promise<void> {
  const head = req.method === 'HEAD';
  const sceneId = layout.product.sceneId;
  const isBand = kind === 'band';
  // The limit is checked before faults are drawn, so a refused request does not use up a fault.
  const limited = !head && (isBand || ctx.options.manifestCountsAsDownload);
  if (limited && ctx.slotsInUse >= ctx.options.maxConcurrentDownloads) {
    ctx.counters.bump('rejected429');
    ctx.log.info({ sceneId, path, inUse: ctx.slotsInUse }, 'download refused: max sessions');
    return sendJson(res, 429, maxSessionsBody());
  }
  const fault = head ? undefined : ctx.faults.take({ target: kind, sceneId, path, size: source.size });
  if (fault?.kind === 'expireToken') {
    ctx.counters.fault(faultTag(fault));
    ctx.counters.bump('unauthorized401');
    ctx.tokens.expire(req.headers.authorization);
    return sendDetail(res, 401, UNAUTHORIZED.expired!);
  }
  if (answerImmediateFault(ctx, res, fault)) return;
  if (limited) {
    ctx.slotsInUse++;
    if (isBand) ctx.counters.enterDownload();
    let released = false;
    res.once('close', () => {
      if (released) return;
      released = true;
      ctx.slotsInUse--;
      if (isBand) ctx.counters.leaveDownload();
    });
  }
  if (fault) {
    ctx.counters.fault(faultTag(fault));
    ctx.log.info({ sceneId, path, fault }, 'fault injected');
  }
  const slow = fault?.kind === 'slowBytesPerSecond' ? fault.bytesPerSecond : undefined;
  // Metadata files have their real size while band sizes are scaled: at `bytesPerSecond / sizeScale`
  // they take the time, relative to the bands, that they take on CDSE (at sizeScale 0.002 and
  // 250 kB/s a 0.5 MB MTD_TL.xml would otherwise stream for 2 s, twice a scaled 10 m band).
  const rate = kind === 'metadata' && ctx.options.bytesPerSecond !== undefined ? ctx.options.bytesPerSecond / ctx.options.sizeScale : ctx.options.bytesPerSecond;
  const rates = [rate, slow].filter((r): r is number => r !== undefined);
  const outcome = await streamFile(res, {
    source,
    head,
    rangeHeader: req.headers.range,
    rangeSupport: ctx.options.rangeSupport,
    bytesPerSecond: rates.length > 0 ? Math.min(...rates) : undefined,
    cutAfterBytes: fault?.kind === 'cutAfterBytes' ? fault.bytes : undefined,
    corruptOffset: fault?.kind === 'corrupt' ? Math.min(fault.offset ?? Math.floor(source.size / 2), source.size - 1) : undefined,
    truncateBytes: fault?.kind === 'truncate' ? (fault.bytes ?? 1) : undefined,
    onStart: (status) => {
      if (kind === 'manifest') ctx.counters.bump('manifestRequests');
      else if (kind === 'metadata') ctx.counters.metadataStarted(sceneId, path);
      else ctx.counters.started(sceneId, path, status === 206);
    },
    onBytes: (n) => (isBand ? ctx.counters.bytes(sceneId, path, n) : undefined),
  });
  if (isBand && outcome.reachesEnd) ctx.counters.completed(sceneId, path, req.headers['user-agent'] ?? '');
  ctx.log.debug({ sceneId, path, status: outcome.status, bytes: outcome.bytesSent, finished: outcome.finished, fault: fault?.kind }, 'file served');
}

function listing(ctx: SimContext, res: ServerResponse, t: Target, downloadBase: string): void {
  ctx.counters.bump('listingRequests');
  if (!t.layout) return sendDetail(res, 404, `Product ${t.id} not found`);
  if (answerImmediateFault(ctx, res, ctx.faults.take({ target: 'listing', sceneId: t.layout.product.sceneId, path: t.segments.slice(1).join('/') }))) return;
  const productUrl = `${downloadBase}/Products(${t.layout.id})`;
  if (t.segments.length === 0) {
    return sendJson(res, 200, { result: [listingEntry(t.layout.tree, `${productUrl}/Nodes(${t.layout.product.safeName})`)] });
  }
  const node = resolveNode(t.layout.tree, t.segments.slice(1));
  if (!node) return sendDetail(res, 404, `Node ${t.segments.slice(1).join('/')} not found in ${t.layout.product.safeName}`);
  const nodeUrl = productUrl + t.segments.map((s) => `/Nodes(${s})`).join('');
  const result = [...(node.children?.values() ?? [])].map((child) => listingEntry(child, `${nodeUrl}/Nodes(${child.name})`));
  sendJson(res, 200, { result });
}
