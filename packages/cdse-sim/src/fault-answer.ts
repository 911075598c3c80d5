/** Answering a request with an immediate fault (a status, a 429) instead of serving it. */
import type { ServerResponse } from 'node:http';
import type { FaultEffect } from './fault-injection.js';
import { maxSessionsBody, nginxPage, sendJson, sendText } from './http-util.js';
import type { SimContext } from './options.js';

/**
 * If `effect` is an immediate one (`status`, `status429`), answer `res` with it and return true.
 * 5xx answers are nginx HTML pages (what CDSE's proxies send for gateway errors) unless the fault
 * gives a body; other statuses get a JSON `{"detail"}`.
 */
export function answerImmediateFault(ctx: SimContext, res: ServerResponse, effect: (FaultEffect & { source: string }) | undefined): boolean {
  if (!effect) return false;
  const tag = faultTag(effect);
  if (effect.kind === 'status429') {
    ctx.counters.fault(tag);
    const headers: Record<string, string> = effect.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(effect.retryAfterSeconds) };
    sendJson(res, 429, maxSessionsBody(), headers);
    return true;
  }
  if (effect.kind === 'status') {
    ctx.counters.fault(tag);
    const headers: Record<string, string> = effect.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(effect.retryAfterSeconds) };
    if (effect.body !== undefined) sendText(res, effect.status, effect.body, 'text/plain; charset=utf-8', headers);
    else if (effect.status >= 500) sendText(res, effect.status, nginxPage(effect.status), 'text/html', headers);
    else sendJson(res, effect.status, { detail: `injected fault: HTTP ${effect.status}` }, headers);
    return true;
  }
  return false;
}

/** The counter tag of a fault: its kind, prefixed `chaos:` when rolled by chaos. */
export function faultTag(effect: FaultEffect & { source: string }): string {
  return effect.source === 'chaos' ? `chaos:${effect.kind}` : effect.kind;
}
