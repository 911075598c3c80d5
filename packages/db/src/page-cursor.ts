/**
 * Opaque keyset-pagination cursors for the list endpoints: a JSON array of the last row's key,
 * base64url-encoded. Each list decodes the array and checks its own fields.
 */
import { ValidationError } from '@scenecache/core';

/** The error every malformed cursor gets: 400 `invalid_payload`, field `cursor`. */
export function invalidCursor(): ValidationError {
  return new ValidationError('invalid_payload', 'cursor is not a cursor this API returned', 'cursor');
}

/** Encode a keyset position (a JSON array) as an opaque base64url string. */
export function encodePageCursor(position: readonly unknown[]): string {
  return Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');
}

/**
 * Decode a cursor made by {@link encodePageCursor} into its array of `length` elements; the caller
 * checks the elements themselves.
 *
 * @throws ValidationError `invalid_payload` (field `cursor`) when it is not base64url (at most
 *   600 characters) of a JSON array of `length` elements.
 */
export function decodePageCursor(cursor: string, length: number): unknown[] {
  if (cursor.length === 0 || cursor.length > 600 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalidCursor();
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!Array.isArray(decoded) || decoded.length !== length) throw invalidCursor();
  return decoded as unknown[];
}
