/** pino JSON logging. Bind `{jobId, tenantId, sceneId}` with `logger.child()` per job. */
import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process's root logger.
 * @param name - the component (`api`, `worker`, `cdse-sim`, `demo`).
 * @param level - pino level. @defaultValue `info`
 */
export function createLogger(name: string, level = 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
