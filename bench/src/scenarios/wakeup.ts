/**
 * Scenario `wakeup`: Waiter wake-up: registration → completion of the waiting jobs. Placeholder, being built (issue 6).
 */
import type { Scenario } from '../scenario.js';

/** The `wakeup` scenario. */
export const scenario: Scenario = {
  id: 'wakeup',
  title: 'Waiter wake-up: registration → completion of the waiting jobs',
  run() {
    return Promise.reject(new Error('scenario wakeup is not built yet'));
  },
};
