/**
 * The sim's own control API under `/__sim` (not part of CDSE), for tests, benchmarks and the demo
 * when the sim runs in another process:
 * - `GET /__sim/counters` → {@link SimCounters} JSON; `POST /__sim/reset` zeroes them (204).
 * - `GET /__sim/faults` → `{faults: ActiveFault[], chaos: ChaosOptions | null}`.
 * - `POST /__sim/faults` with a fault, an array of faults, or `{faults?: Fault[], chaos?: ChaosOptions | null}`
 *   → 201 with the same shape as GET; 400 `{detail}` when any fault is invalid (none is added then).
 * - `DELETE /__sim/faults` clears faults and chaos (204).
 * - `GET /__sim/info` → `{urls: {tokenUrl, catalogueUrl, downloadUrl}, credentials}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimCounters } from './counters.js';
import { parseFault, type ChaosOptions, type Fault } from './fault-injection.js';
import { readBody, sendDetail, sendJson } from './http-util.js';
import type { SimContext } from './options.js';

/** Parse a `POST /__sim/faults` body. @throws TypeError when it is not one of the accepted shapes. */
function parseFaultsBody(body: unknown): { faults: Fault[]; chaos: ChaosOptions | null | undefined } {
  if (Array.isArray(body)) return { faults: body.map(parseFault), chaos: undefined };
  if (typeof body !== 'object' || body === null) throw new TypeError('expected a fault, an array of faults, or {faults, chaos}');
  const o = body as Record<string, unknown>;
  if ('kind' in o) return { faults: [parseFault(o)], chaos: undefined };
  if (o.faults !== undefined && !Array.isArray(o.faults)) throw new TypeError('faults must be an array');
  const chaos = o.chaos as ChaosOptions | null | undefined;
  if (chaos !== undefined && chaos !== null && (typeof chaos !== 'object' || typeof chaos.seed !== 'number')) {
    throw new TypeError('chaos must be null or an object with a numeric seed');
  }
  return { faults: ((o.faults as unknown[] | undefined) ?? []).map(parseFault), chaos };
}

/** Handle a request below `/__sim` (`rest`, e.g. `/counters`). `info` gives the URLs and credentials. */
export async function handleAdmin(ctx: SimContext, req: IncomingMessage, res: ServerResponse, rest: string, info: () => unknown): Promise<void> {
  const route = `${req.method ?? 'GET'} ${rest.replace(/\/+$/, '')}`;
  const faultState = (): unknown => ({ faults: ctx.faults.list(), chaos: ctx.faults.chaosOptions() ?? null });
  switch (route) {
    case 'GET /counters':
      return sendJson(res, 200, ctx.counters.snapshot() satisfies SimCounters);
    case 'POST /reset':
      ctx.counters.reset();
      res.writeHead(204).end();
      return;
    case 'GET /faults':
      return sendJson(res, 200, faultState());
    case 'DELETE /faults':
      ctx.faults.clear();
      res.writeHead(204).end();
      return;
    case 'GET /info':
      return sendJson(res, 200, info());
    case 'POST /faults': {
      let parsed: ReturnType<typeof parseFaultsBody>;
      try {
        parsed = parseFaultsBody(JSON.parse((await readBody(req)).toString('utf8')) as unknown);
      } catch (err) {
        return sendDetail(res, 400, err instanceof Error ? err.message : String(err));
      }
      for (const f of parsed.faults) ctx.faults.add(f);
      if (parsed.chaos !== undefined) ctx.faults.setChaos(parsed.chaos ?? undefined);
      ctx.log.info({ faults: parsed.faults, chaos: parsed.chaos }, 'faults added');
      return sendJson(res, 201, faultState());
    }
    default:
      return sendDetail(res, 404, `no sim control route ${route}`);
  }
}
