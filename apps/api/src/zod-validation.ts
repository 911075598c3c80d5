/**
 * Route schemas are zod schemas (the job contract in @scenecache/core is one). Types and the reply
 * serializer (which enforces the response schemas) come from `fastify-type-provider-zod`; request
 * validation is this module's compiler, because the API's error contract names the field at fault
 * in the client's terms (the library reports JSON pointers).
 *
 * Every validation failure becomes a {@link ValidationError} `invalid_payload` naming the field at
 * fault in the client's terms: `jobs[3].bands[0]`, the query parameter, or the header name.
 */
import type { FastifySchemaCompiler } from 'fastify';
import type { z } from 'zod';
import { ValidationError } from '@scenecache/core';

/** Display names of the headers we validate (Fastify hands them over lower-cased). */
const HEADER_NAMES: Readonly<Record<string, string>> = { 'idempotency-key': 'Idempotency-Key' };

/** `['jobs', 3, 'bands', 0]` → `jobs[3].bands[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

const PART_NAMES: Readonly<Record<string, string>> = { body: 'body', querystring: 'query string', params: 'path', headers: 'headers' };

/**
 * The client-facing error of a failed zod parse: the first unknown field if any (a typo explains
 * the other issues), else the first issue.
 *
 * @param httpPart - `body`, `querystring`, `params` or `headers` (headers get their display name).
 * @param prefix - path to prepend, e.g. `['jobs', 3]` for a batch item.
 */
export function zodErrorToValidationError(
  error: z.ZodError,
  httpPart = 'body',
  prefix: readonly PropertyKey[] = [],
): ValidationError {
  const issues = error.issues;
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0];
  if (!issue) return new ValidationError('invalid_payload', `invalid ${PART_NAMES[httpPart] ?? httpPart}`);
  let path: PropertyKey[] = [...prefix, ...issue.path];
  let message: string;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    path = [...path, key];
    const where = httpPart === 'querystring' ? 'query parameter' : 'field';
    message = `unknown ${where} ${formatPath(path)}`;
  } else if (path.length === 0) {
    const part = PART_NAMES[httpPart] ?? httpPart;
    message = issue.code === 'invalid_type' && httpPart === 'body' ? 'the body must be a JSON object' : `${part}: ${issue.message}`;
  } else {
    message = `${formatPath(path)}: ${issue.message}`;
  }
  let field = formatPath(path);
  if (httpPart === 'headers' && path.length > 0) {
    const name = String(path[0]).toLowerCase();
    field = HEADER_NAMES[name] ?? name;
    message = `${field} header: ${issue.message}`;
  }
  return new ValidationError('invalid_payload', message, field === '' ? undefined : field);
}

/** Validates a request part with the route's zod schema; the parsed (coerced) value replaces it. */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  return (data: unknown) => {
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    return { error: zodErrorToValidationError(result.error, httpPart) };
  };
};
