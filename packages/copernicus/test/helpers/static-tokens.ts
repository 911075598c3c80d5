import type { AccessTokenSource } from '../../src/authorized-request.js';

/** A token source without Redis: `token-1`, then `token-2` after an invalidation, … */
export class CountingTokens implements AccessTokenSource {
  generation = 1;
  invalidations: string[] = [];
  /** The `login` flag of each invalidation. */
  logins: boolean[] = [];

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
