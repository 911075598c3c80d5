/**
 * The Kubernetes manifests (k8s/) against a real API (Postgres, Redis; `buildApp` as main.ts
 * builds it): what the cluster will call on the API answers as the manifests expect.
 *
 * For the base and every overlay it proves that
 * - the API container's probes (startup, liveness, readiness) are routes that answer 200 on a
 *   healthy API, and the path Prometheus scrapes serves the metrics, `scenecache_queue_jobs`
 *   (the HPA component's metric) among them;
 * - the KEDA trigger's URL is a real route: with a tenant key (as KEDA sends it, Bearer) it
 *   answers 200 JSON whose `valueLocation` is the number of unfinished jobs, and without a key
 *   401 — so the TriggerAuthentication is needed, and enough.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createApiKey } from '@scenecache/db';
import { L2A, startTestApi, type TestApi } from '../../apps/api/test/helpers.js';
import { ENTRY_POINTS, REPO_ROOT } from './deployment-facts.js';
import { podSpecOf, renderKustomization, type K8sObject } from './kustomize.js';

const ADMIN_KEY = 'k8s-test-admin-key-0123456789';
const OVERLAYS_DIR = join(REPO_ROOT, 'k8s', 'overlays');
/** The base and every overlay folder. */
const RENDERS = ['base', ...readdirSync(OVERLAYS_DIR).filter((d) => statSync(join(OVERLAYS_DIR, d)).isDirectory()).map((d) => `overlays/${d}`)];

interface ApiContainer {
  command: string[];
  startupProbe?: { httpGet: { path: string } };
  livenessProbe?: { httpGet: { path: string } };
  readinessProbe?: { httpGet: { path: string } };
}

/** The value at a GJSON-style dotted path (the subset KEDA's `valueLocation` uses here: plain keys). */
function valueAt(body: unknown, location: string): unknown {
  if (!/^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$/.test(location)) throw new Error(`valueLocation ${location} uses more than plain keys`);
  return location.split('.').reduce<unknown>((node, key) => (typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined), body);
}

describe('k8s/ manifests against a real API', () => {
  let api: TestApi;
  let kedaKey: string;

  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_API_KEY: ADMIN_KEY } });
    // As the operations guide says: a tenant key of its own for KEDA.
    kedaKey = (await createApiKey(api.db, { tenantId: 'keda', name: 'keda-autoscaler' })).secret;
    // One unfinished job, so the backlog is not trivially 0.
    const enqueued = await api.request('POST', '/v1/downloads', { headers: { authorization: `Bearer ${ADMIN_KEY}` }, json: { tenant_id: 'k8s-test', scene_id: L2A, bands: ['B04'] } });
    expect(enqueued.status).toBe(202);
  });
  afterAll(async () => {
    await api?.close();
  });

  describe.each(RENDERS)('k8s/%s', (renderName) => {
    let objects: K8sObject[];
    let container: ApiContainer;
    let annotations: Record<string, string>;
    beforeAll(() => {
      objects = renderKustomization(join(REPO_ROOT, 'k8s', renderName));
      const workload = objects.find((o) => (podSpecOf(o)?.containers as ApiContainer[] | undefined)?.some((c) => c.command[1] === ENTRY_POINTS.api));
      container = (podSpecOf(workload!)!.containers as ApiContainer[]).find((c) => c.command[1] === ENTRY_POINTS.api)!;
      annotations = (workload!.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations;
    });

    it("the API container's probe paths answer 200 on a healthy API", async () => {
      const paths = [container.startupProbe, container.livenessProbe, container.readinessProbe].map((p) => p!.httpGet.path);
      expect(new Set(paths).size).toBe(2);
      for (const path of paths) expect({ path, status: (await api.request('GET', path)).status }).toEqual({ path, status: 200 });
    });

    it('the scrape path serves the metrics, the queue-depth gauge among them', async () => {
      const res = await fetch(`${api.baseUrl}${annotations['prometheus.io/path']}`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain('# TYPE scenecache_queue_jobs gauge');
      for (const state of ['waiting', 'prioritized', 'delayed', 'active']) expect(text).toMatch(new RegExp(`^scenecache_queue_jobs\\{state="${state}"\\} \\d+$`, 'm'));
    });

    it("the KEDA trigger's URL answers the backlog to a Bearer tenant key, and 401 without one", async () => {
      const scaledObjects = objects.filter((o) => o.kind === 'ScaledObject');
      if (scaledObjects.length === 0) {
        // Without KEDA (the HPA component) nothing calls the API to scale.
        expect(objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')).toHaveLength(1);
        return;
      }
      const [trigger] = (scaledObjects[0]!.spec as { triggers: { metadata: Record<string, string> }[] }).triggers;
      const url = new URL(trigger!.metadata.url!);
      const withKey = await api.request('GET', url.pathname + url.search, { headers: { authorization: `Bearer ${kedaKey}` } });
      expect(withKey.status).toBe(200);
      expect(withKey.headers['content-type']).toMatch(/^application\/json/);
      const value = valueAt(withKey.body, trigger!.metadata.valueLocation!);
      expect(value).toBe(1);
      const queue = withKey.body.queue as Record<string, number>;
      expect(value).toBe(queue.waiting! + queue.prioritized! + queue.delayed! + queue.active!);
      expect((await api.request('GET', url.pathname + url.search)).status).toBe(401);
    });
  });
});
