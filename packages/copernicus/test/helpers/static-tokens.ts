import type { AccessTokenSource } from '../../src/authorized-request.js';

/** A token source without Redis: `token-1`, then `token-2` after an invalidation, … */
export class CountingTokens implements AccessTokenSource {
  generation = 1;
  invalidations: string[] = [];
  /** The `login` flag of each invalidation. */
  logins: boolean[] = [];
  /** Reasons passed to `rememberRefused`. */
  refusedReasons: string[] = [];

  rememberRefused(reason: string): Promise<void> {
    this.refusedReasons.push(reason);
    return Promise.resolve();
  }

  getAccessToken(): Promise<string> {
    return Promise.resolve(`token-${this.generation}`);
  }

  invalidate(staleToken: string, options: { login?: boolean } = {}): Promise<void> {
    this.invalidations.push(staleToken);
    this.logins.push(options.login === true);
    if (staleToken === `token-${this.generation}`) this.generation++;
    return Promise.resolve();
  }
}
