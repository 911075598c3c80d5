/**
 * Tenant ids: a slug that, behind `TENANT_BUCKET_PREFIX`, makes a valid S3 bucket name.
 *
 * S3 general purpose bucket naming rules (AWS S3 User Guide, "General purpose bucket naming
 * rules"): 3–63 characters; lower-case letters, digits, dots and hyphens; begin and end with a
 * letter or digit; must not start with `xn--`, `sthree-` or `amzn-s3-demo-`, nor end with
 * `-s3alias`, `--ol-s3`, `.mrap`, `--x-s3` or `--table-s3`. We also forbid dots in tenant ids
 * (they break virtual-hosted-style TLS), so a tenant id is `[a-z0-9-]`, starting and ending with
 * a letter or digit.
 */
import { ValidationError } from './errors.js';

const TENANT_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'];
const RESERVED_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3'];

/**
 * The tenant's bucket name: `{prefix}{tenantId}`.
 *
 * @throws ValidationError `invalid_tenant_id` (field `tenant_id`) when the id is not a lower-case
 *   slug or the resulting bucket name breaks an S3 naming rule; the message names the rule.
 */
export function tenantBucketName(tenantId: string, prefix: string): string {
  const fail = (why: string): never => {
    throw new ValidationError(
      'invalid_tenant_id',
      `tenant_id ${JSON.stringify(String(tenantId).slice(0, 80))} ${why}`,
      'tenant_id',
    );
  };
  if (typeof tenantId !== 'string' || tenantId.length === 0) fail('is empty');
  if (!TENANT_RE.test(tenantId)) {
    fail('must be lower-case letters, digits and hyphens, starting and ending with a letter or digit');
  }
  // The id names the tenant beyond its bucket too (keys, logs, other stores): hold it to the
  // reserved prefixes itself, not only the prefixed bucket name.
  for (const p of RESERVED_PREFIXES) if (tenantId.startsWith(p)) fail(`must not start with ${p} (reserved by S3)`);
  const bucket = `${prefix}${tenantId}`;
  if (bucket.length < 3 || bucket.length > 63) {
    fail(`makes bucket name ${bucket} of ${bucket.length} characters; S3 allows 3–63 (tenant ids up to ${63 - prefix.length})`);
  }
  for (const p of RESERVED_PREFIXES) if (bucket.startsWith(p)) fail(`makes bucket name ${bucket}, which S3 reserves (prefix ${p})`);
  for (const s of RESERVED_SUFFIXES) if (bucket.endsWith(s)) fail(`makes bucket name ${bucket}, which S3 reserves (suffix ${s})`);
  return bucket;
}
