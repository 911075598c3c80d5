#!/bin/sh
# One-shot MinIO setup of docker-compose.yml (service minio-init, image minio/mc); idempotent, runs
# at every `docker compose up`. Environment: MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, GLOBAL_BUCKET.
#
# - The global bucket, so the first job does not race to create it (workers also create it if
#   missing). Tenant buckets ({TENANT_BUCKET_PREFIX}{tenant_id}) are created by the workers on a
#   tenant's first job (ObjectStore.ensureBucket): they are not known here.
# - The lifecycle rule lifecycle.json: abort multipart uploads still incomplete after 1 day (parts
#   left by a worker killed mid-upload whose AbortMultipartUpload never ran). This is the rule for
#   AWS S3 and servers that honour it. MinIO accepts it but does not store it (minio/minio#19115,
#   "working as intended"; older releases refuse it): MinIO aborts stale uploads in every bucket
#   by itself, after MINIO_API_STALE_UPLOADS_EXPIRY (24h, set on the minio service), which is what
#   covers this stack, tenant buckets included. A refusal is reported, not fatal.
set -eu

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$GLOBAL_BUCKET"
if mc ilm rule import "local/$GLOBAL_BUCKET" < /init/lifecycle.json; then
  echo "minio-init: lifecycle rule submitted for $GLOBAL_BUCKET"
else
  echo "minio-init: this MinIO refused the AbortIncompleteMultipartUpload rule; it aborts stale uploads itself (MINIO_API_STALE_UPLOADS_EXPIRY)" >&2
fi
echo "minio-init: bucket $GLOBAL_BUCKET ready"
