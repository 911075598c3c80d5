/** Types of scripts/generate-client.mjs (imported by packages/client/test/generated.test.ts). */

/** Absolute path of the generated types, packages/client/src/openapi.ts. */
export declare const CLIENT_TYPES_FILE: string;

/** The command that writes {@link CLIENT_TYPES_FILE}: `npm run client:generate`. */
export declare const GENERATE_COMMAND: string;

/**
 * The TypeScript source of {@link CLIENT_TYPES_FILE} for an OpenAPI 3 document (not modified).
 * Deterministic: the same document gives the same bytes.
 */
export declare function renderClientTypes(document: object): Promise<string>;
