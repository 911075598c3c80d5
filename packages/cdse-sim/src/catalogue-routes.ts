/**
 * The catalogue host (`https://catalogue.dataspace.copernicus.eu/odata/v1`), mounted at `/odata/v1`:
 * - `GET Products?$filter=Name eq '<name>.SAFE'` → `{"@odata.context": "$metadata#Products", "value": [...]}`
 *   (fixture `eodag_cop_dataspace_odata_search_S2_L1C.json`); `$expand=Attributes` (and `Assets`)
 *   adds them and names them in the context (`$metadata#Products(Attributes(),Assets())`, the format
 *   since 2024-09, documentation.dataspace.copernicus.eu/APIs/Others/UpcomingChanges.html);
 *   `$count=true` adds `@odata.count`. An unknown product gives `value: []`, as a search that
 *   matches nothing. Names are stored with `.SAFE`, so `Name eq '<name>'` without it matches nothing.
 * - `GET Products(<Id>)` → the entity; `GET Products(<Id>)/$value` → 301 to the download host
 *   (fixture `catalogue_value_301_redirect_to_zipper_headers.txt`).
 * The sim understands only `Name eq '...'` filters; anything else answers 400 `{"detail": {...}}`.
 * `$skip` over 10 000 answers the documented 422 (APIs/Others/ReleaseNotes.html, 2024-11-12).
 * No token is needed.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { answerImmediateFault } from './fault-answer.js';
import { nginxPage, sendDetail, sendJson, sendText } from './http-util.js';
import { odataProduct } from './odata-product.js';
import type { SimContext } from './options.js';

const NAME_EQ_RE = /^\s*Name\s+eq\s+'((?:[^']|'')*)'\s*$/;
const ENTITY_RE = /^\/Products\(([^)]+)\)(\/\$value)?\/?$/;

function badRequest(res: ServerResponse, message: string): void {
  sendJson(res, 400, { detail: { message, request_id: randomUUID() } });
}

/** The documented 422 for a query parameter over its limit (FastAPI validation error). */
function tooLarge(res: ServerResponse, param: string, value: string, le: number): void {
  sendJson(res, 422, {
    detail: [{ type: 'less_than_equal', loc: ['query', param], msg: `Input should be less than or equal to ${le}`, input: value, ctx: { le } }],
  });
}

/** Handle a request whose path is below `/odata/v1` (`rest` = the remaining path, e.g. `/Products`). */
export function handleCatalogue(ctx: SimContext, req: IncomingMessage, res: ServerResponse, rest: string, query: URLSearchParams, downloadBase: string): void {
  ctx.counters.bump('catalogueRequests');
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendDetail(res, 405, 'Method Not Allowed');
  if (rest === '/Products' || rest === '/Products/') return search(ctx, res, query);
  const m = ENTITY_RE.exec(rest);
  if (!m) return sendDetail(res, 404, 'Not Found');
  const id = decodeURIComponent(m[1]!).replace(/^'|'$/g, '');
  const layout = ctx.catalogue.findById(id);
  if (answerImmediateFault(ctx, res, ctx.faults.take({ target: 'catalogue', sceneId: layout?.product.sceneId }))) return;
  if (m[2]) {
    // The catalogue does not serve bytes: it sends clients to the download host (fetch then drops
    // Authorization on the cross-host hop, which is why clients should call the download host directly).
    return sendText(res, 301, nginxPage(301), 'text/html', { Location: `${downloadBase}/Products(${id})/$value` });
  }
  if (!layout) return sendDetail(res, 404, `Product ${id} not found`);
  sendJson(res, 200, { '@odata.context': '$metadata#Products/$entity', ...odataProduct(layout) });
}

function search(ctx: SimContext, res: ServerResponse, query: URLSearchParams): void {
  const skip = query.get('$skip') ?? '0';
  const top = query.get('$top') ?? '20';
  if (!/^\d+$/.test(skip) || !/^\d+$/.test(top)) return badRequest(res, 'Invalid $skip or $top: expected a non-negative integer');
  if (Number(skip) > 10_000) return tooLarge(res, '$skip', skip, 10_000);
  if (Number(top) > 1000) return tooLarge(res, '$top', top, 1000);
  const expand = query.getAll('$expand').flatMap((e) => e.split(',')).map((e) => e.trim()).filter(Boolean);
  const unknownExpand = expand.find((e) => e !== 'Attributes' && e !== 'Assets');
  if (unknownExpand !== undefined) return badRequest(res, `Invalid $expand value: ${unknownExpand} (cdse-sim supports Attributes, Assets)`);
  const filter = query.get('$filter');
  const m = filter === null ? null : NAME_EQ_RE.exec(filter);
  if (!m) {
    return badRequest(res, filter === null
      ? "cdse-sim needs $filter=Name eq '<product>.SAFE'"
      : `Invalid filter: ${filter} (cdse-sim supports only Name eq '<product>.SAFE')`);
  }
  const name = m[1]!.replace(/''/g, "'");
  // Catalogue names end in .SAFE: a bare scene id matches nothing, as on CDSE.
  const layout = name.endsWith('.SAFE') ? ctx.catalogue.find(name) : undefined;
  if (answerImmediateFault(ctx, res, ctx.faults.take({ target: 'catalogue', sceneId: layout?.product.sceneId ?? name }))) return;
  const hits = layout && Number(skip) === 0 && Number(top) > 0 ? [odataProduct(layout, expand)] : [];
  const context = expand.length > 0 ? `$metadata#Products(${expand.map((e) => `${e}()`).join(',')})` : '$metadata#Products';
  sendJson(res, 200, {
    '@odata.context': context,
    ...(query.get('$count')?.toLowerCase() === 'true' ? { '@odata.count': layout ? 1 : 0 } : {}),
    value: hits,
  });
}
