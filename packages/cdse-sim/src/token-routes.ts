/**
 * The identity host's token endpoint, mounted at `/auth/realms/CDSE/protocol/openid-connect/token`
 * (real: `https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token`).
 * `POST`, form-encoded (`application/x-www-form-urlencoded`): see token-service.ts for the grants.
 * Headers as in fixture `cdse_keycloak_token_response_password_grant.json`
 * (`cache-control: no-store`, `pragma: no-cache`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { answerImmediateFault } from './fault-answer.js';
import { readBody, sendJson } from './http-util.js';
import type { SimContext } from './options.js';

/** The token endpoint's path. */
export const TOKEN_PATH = '/auth/realms/CDSE/protocol/openid-connect/token';

/** Handle `POST {TOKEN_PATH}`. */
export async function handleToken(ctx: SimContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const noStore = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
  if (req.method !== 'POST') {
    return sendJson(res, 405, { error: 'invalid_request', error_description: 'HTTP method not allowed' }, noStore);
  }
  const form = new URLSearchParams((await readBody(req, 64 * 1024)).toString('utf8'));
  if (answerImmediateFault(ctx, res, ctx.faults.take({ target: 'token' }))) return;
  const answer = ctx.tokens.grant(form);
  if (answer.outcome === 'login') ctx.counters.bump('tokenLogins');
  else if (answer.outcome === 'refresh') ctx.counters.bump('tokenRefreshes');
  else ctx.counters.bump('tokenFailures');
  ctx.log.debug({ grant: form.get('grant_type'), username: form.get('username'), status: answer.status }, 'token request');
  sendJson(res, answer.status, answer.body, noStore);
}
