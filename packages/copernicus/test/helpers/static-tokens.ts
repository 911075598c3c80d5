import type { AccessTokenSource } from '../../src/authorized-request.js';

/** A token source without Redis: `token-1`, then `token-2` after an invalidation, … */
export class CountingTokens implements AccessTokenSource {
  generation = 1;
  invalidations: string[] = [];

  getAccessToken(): Promise<string> {
    return Promise.resolve(`token-${this.generation}`);
  }

  invalidate(staleToken: string): Promise<void> {
    this.invalidations.push(staleToken);
    if (staleToken === `token-${this.generation}`) this.generation++;
    return Promise.resolve();
  }
}
