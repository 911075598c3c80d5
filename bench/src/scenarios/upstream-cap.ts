/**
 * Scenario `upstream-cap`: Upstream cap: time-weighted mean of slots in use. Placeholder, being built (issue 6).
 */
import type { Scenario } from '../scenario.js';

/** The `upstream-cap` scenario. */
export const scenario: Scenario = {
  id: 'upstream-cap',
  title: 'Upstream cap: time-weighted mean of slots in use',
  run() {
    return Promise.reject(new Error('scenario upstream-cap is not built yet'));
  },
};
