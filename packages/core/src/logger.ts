/**
 * pino JSON logging. Bind `{jobId, tenantId, sceneId}` with `logger.child()` per job.
 *
 * No secret reaches a log: credentials in the places they can appear are censored by pino's
 * `redact` ({@link REDACTED_PATHS}: request headers, passwords, tokens), and every logged error
 * goes through {@link serializeError}, which drops what may carry raw request bytes (Node's HTTP
 * parser attaches the whole rejected request as `rawPacket`) or request headers.
 */
import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Log paths censored wherever they appear (pino `redact`, fast-redact syntax). */
export const REDACTED_PATHS: readonly string[] = Object.freeze([
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.access_token',
  '*.refresh_token',
  '*.secret',
  'password',
  'secret',
]);

/** Properties of an error object that may hold raw request bytes or headers: never logged. */
const UNSAFE_ERROR_FIELDS = ['rawPacket', 'headers', 'config', 'request', 'response'];

/**
 * pino's error serializer, minus the fields that may carry request bytes or credentials
 * ({@link UNSAFE_ERROR_FIELDS}), also on its causes.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out = stdSerializers.err(err) as unknown as Record<string, unknown>;
  const strip = (o: Record<string, unknown>, depth: number): void => {
    for (const f of UNSAFE_ERROR_FIELDS) delete o[f];
    const cause = o.cause;
    if (depth < 5 && typeof cause === 'object' && cause !== null) strip(cause as Record<string, unknown>, depth + 1);
  };
  strip(out, 0);
  return out;
}

/**
 * The process's root logger.
 * @param name - the component (`api`, `worker`, `cdse-sim`, `demo`).
 * @param level - pino level. @defaultValue `info`
 * @param destination - where the JSON lines go (tests capture them). @defaultValue stdout
 */
export function createLogger(name: string, level = 'info', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    serializers: { err: serializeError, error: serializeError },
  };
  return destination ? pino(options, destination) : pino(options);
}
