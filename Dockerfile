# syntax=docker/dockerfile:1
#
# One image for every scenecache process. `node` is the entrypoint and PID 1 (no npm, no shell,
# no init: the API, the worker and the sim handle SIGTERM themselves); the command names the
# compiled entry point to run, relative to /app:
#
#   api      apps/api/dist/main.js            (the default command)
#   worker   apps/worker/dist/main.js
#   migrate  packages/db/dist/migrate.cli.js  [up | down | to <name> | status]
#   keys     packages/db/dist/keys.cli.js     create --admin | create --tenant <id> | list | revoke <id>
#   sim      packages/cdse-sim/dist/main.js   (cdse-sim, for dev and demos; set CDSE_SIM_HOST=0.0.0.0)
#
#   docker build -t scenecache .
#   docker run --rm --env-file .env scenecache apps/worker/dist/main.js
#
# Runtime: set S3_ENDPOINT (MinIO, S3...): without it the processes start the embedded s3rver,
# which writes EMBEDDED_S3_DIR (.data/s3) and is meant for a laptop, not a container. With
# S3_ENDPOINT set nothing writes to disk: the containers run with a read-only root filesystem and
# need no writable volume. Runs as uid/gid 1000 (the base image's `node` user), numeric so
# Kubernetes `runAsNonRoot` can verify it; the application files belong to root (read-only to it).

# ---- build: compile the TypeScript of the processes the image runs --------------------------------
FROM node:22-slim AS build
WORKDIR /app
# Manifests first: the dependency layer is rebuilt only when they change. Every workspace's
# package.json is needed, or `npm ci` finds the lockfile out of sync.
COPY package.json package-lock.json .npmrc ./
COPY packages/core/package.json packages/core/package.json
COPY packages/db/package.json packages/db/package.json
COPY packages/storage/package.json packages/storage/package.json
COPY packages/global-cache/package.json packages/global-cache/package.json
COPY packages/copernicus/package.json packages/copernicus/package.json
COPY packages/cdse-sim/package.json packages/cdse-sim/package.json
COPY packages/testing/package.json packages/testing/package.json
COPY packages/client/package.json packages/client/package.json
COPY apps/api/package.json apps/api/package.json
COPY apps/worker/package.json apps/worker/package.json
COPY apps/demo/package.json apps/demo/package.json
COPY migrations/package.json migrations/package.json
# --ignore-scripts: nothing here needs an install script (msgpackr-extract, an optional native
# accelerator of bullmq's msgpackr, ships prebuilt; without it msgpackr uses its JavaScript code).
RUN --mount=type=cache,target=/root/.npm,sharing=locked npm ci --ignore-scripts
COPY tsconfig.base.json ./
COPY packages packages
COPY apps apps
COPY migrations migrations
# `npm run build` builds every project (the demo, the test helpers, the benchmarks too); the image
# needs only these three and what they reference (core, db, migrations, storage, global-cache, copernicus).
RUN ./node_modules/.bin/tsc -b apps/api apps/worker packages/cdse-sim

# ---- runtime: production dependencies, compiled code, the files read at run time -----------------
FROM node:22-slim AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="scenecache" \
      org.opencontainers.image.description="Download each Sentinel-2 band from CDSE once; give every tenant a server-side copy. Commands: api, worker, migrate, keys, cdse-sim." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/node:22-slim"
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY packages/core/package.json packages/core/package.json
COPY packages/db/package.json packages/db/package.json
COPY packages/storage/package.json packages/storage/package.json
COPY packages/global-cache/package.json packages/global-cache/package.json
COPY packages/copernicus/package.json packages/copernicus/package.json
COPY packages/cdse-sim/package.json packages/cdse-sim/package.json
COPY packages/testing/package.json packages/testing/package.json
COPY packages/client/package.json packages/client/package.json
COPY apps/api/package.json apps/api/package.json
COPY apps/worker/package.json apps/worker/package.json
COPY apps/demo/package.json apps/demo/package.json
COPY migrations/package.json migrations/package.json
# Runtime dependencies of every workspace (the workspaces are linked, not copied). s3rver comes
# along: @scenecache/storage imports it for the embedded S3, which stays off once S3_ENDPOINT is set.
RUN --mount=type=cache,target=/root/.npm,sharing=locked npm ci --omit=dev --ignore-scripts
COPY --from=build /app/migrations/dist migrations/dist
COPY --from=build /app/packages/core/dist packages/core/dist
COPY --from=build /app/packages/db/dist packages/db/dist
COPY --from=build /app/packages/storage/dist packages/storage/dist
COPY --from=build /app/packages/global-cache/dist packages/global-cache/dist
COPY --from=build /app/packages/copernicus/dist packages/copernicus/dist
COPY --from=build /app/packages/cdse-sim/dist packages/cdse-sim/dist
COPY --from=build /app/apps/api/dist apps/api/dist
COPY --from=build /app/apps/worker/dist apps/worker/dist
# The dashboard page the API serves (Chart.js comes from node_modules/chart.js).
COPY apps/api/public apps/api/public
# The real manifests cdse-sim builds its products from (its default CDSE_SIM_FIXTURES_DIR).
COPY fixtures/cdse fixtures/cdse
USER 1000:1000
EXPOSE 8080 9464 8089
ENTRYPOINT ["node"]
CMD ["apps/api/dist/main.js"]
