/**
 * The Kubernetes manifests (k8s/), validated without a cluster and tied to the code.
 *
 * Each kustomization (the base and every overlay) is rendered by a small kustomize (kustomize.ts)
 * and every object is checked against the Kubernetes or KEDA schema, unknown keys included
 * (k8s-schema.ts). Then what a cluster would only find out at run time:
 * - every file is listed by a kustomization and every listed file exists;
 * - each container runs a built entry point of the image (deployment-facts ENTRY_POINTS);
 * - every environment variable it gets is a known setting, resolves to an existing ConfigMap or
 *   Secret key, and the whole environment passes `loadSettings` (so a pod would start);
 * - the worker's probes are the worker's own paths (WORKER_HTTP_PATHS) on WORKER_METRICS_PORT,
 *   the API's ports are API_PORT; the grace periods outlast SHUTDOWN_TIMEOUT_MS;
 * - pods run non-root on a read-only root filesystem, without privileges or a token;
 * - selectors select the pods they mean; the autoscaler (KEDA or HPA) targets the workers on the
 *   queue's backlog in the units of WORKER_CONCURRENCY;
 * - the NetworkPolicies let through the probes' and Prometheus' ports, KEDA's calls and the
 *   egress to every endpoint the settings name;
 * - no render holds a Secret (an apply would overwrite the operator's); the Secrets the pods read
 *   are the ones k8s/secrets-example lists, with example values only; the lock connection and the
 *   migrations bypass PgBouncer.
 * The API's probe paths and the KEDA trigger's URL are tried on a real API in k8s-api.int.test.ts.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { createLogger, loadSettings, QUEUE_DEPTH_STATES, queueDepthGauge, type Settings } from '@scenecache/core';
import { WORKER_HTTP_PATHS } from '../../apps/worker/src/health-server.js';
import { ENTRY_POINTS, entryPointExists, knownEnvNames, REPO_ROOT } from './deployment-facts.js';
import { podSpecOf, readKustomization, readYamlDocuments, referencedFiles, renderKustomization, type K8sObject } from './kustomize.js';
import { schemaErrors } from './k8s-schema.js';

const K8S_DIR = resolve(REPO_ROOT, 'k8s');
const OVERLAYS_DIR = join(K8S_DIR, 'overlays');
/** The Secrets the operator creates out of band, as k8s/secrets-example lists them (never part of a render). */
const SECRETS_EXAMPLE = 'secrets-example';
/** The renders under test: the base and every overlay folder. */
const RENDERS: readonly string[] = ['base', ...readdirSync(OVERLAYS_DIR).filter((d) => statSync(join(OVERLAYS_DIR, d)).isDirectory()).map((d) => `overlays/${d}`)];
/** The image every container runs (before an overlay's `images:`). */
const IMAGE = 'scenecache';
/** Extra seconds the kubelet must wait past the processes' own deadline (exit, log flush). */
const GRACE_MARGIN_SECONDS = 5;

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string }; prefix?: string }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Probe {
  httpGet?: { path: string; port: number | string };
  timeoutSeconds?: number;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown> & { seccompProfile?: { type: string } };
  volumes?: { name: string; emptyDir?: Record<string, unknown> }[];
  restartPolicy?: string;
}
interface Workload {
  object: K8sObject;
  pod: PodSpec;
  labels: Record<string, string>;
}
interface NetworkPolicyPeer {
  namespaceSelector?: { matchLabels?: Record<string, string> };
  podSelector?: { matchLabels?: Record<string, string> };
  ipBlock?: { cidr: string };
}
interface NetworkPolicyRule {
  from?: NetworkPolicyPeer[];
  to?: NetworkPolicyPeer[];
  ports?: { port?: number | string; protocol?: string }[];
}
interface NetworkPolicySpec {
  podSelector: { matchLabels?: Record<string, string> };
  policyTypes?: string[];
  ingress?: NetworkPolicyRule[];
  egress?: NetworkPolicyRule[];
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Every folder under k8s/ holding a kustomization.yaml. */
function kustomizationDirs(): string[] {
  return filesUnder(K8S_DIR)
    .filter((f) => f.endsWith('/kustomization.yaml'))
    .map((f) => f.slice(0, -'/kustomization.yaml'.length));
}

/** One render's objects and what the tests look up in them. */
class Rendered {
  readonly objects: K8sObject[];
  /** The Secrets the cluster holds beside the render (created by the operator). */
  private readonly secrets: K8sObject[];

  constructor(readonly name: string) {
    this.objects = renderKustomization(join(K8S_DIR, name));
    this.secrets = renderKustomization(join(K8S_DIR, SECRETS_EXAMPLE)).filter((o) => o.kind === 'Secret');
  }

  all(kind: string): K8sObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  find(kind: string, name: string): K8sObject | undefined {
    return this.objects.find((o) => o.kind === kind && o.metadata.name === name);
  }

  get(kind: string, name: string): K8sObject {
    const found = this.find(kind, name);
    if (found === undefined) throw new Error(`${this.name}: no ${kind} ${name}`);
    return found;
  }

  /** Objects that run pods. */
  workloads(): Workload[] {
    return this.objects.flatMap((object) => {
      const pod = podSpecOf(object) as PodSpec | undefined;
      if (pod === undefined) return [];
      const template = (object.spec as { template: { metadata?: { labels?: Record<string, string> } } }).template;
      return [{ object, pod, labels: template.metadata?.labels ?? {} }];
    });
  }

  /** The workload whose container runs `entryPoint` (exactly one). */
  workloadRunning(entryPoint: string): { workload: Workload; container: Container } {
    const found = this.workloads().flatMap((workload) => workload.pod.containers.filter((c) => c.command?.[1] === entryPoint).map((container) => ({ workload, container })));
    if (found.length !== 1) throw new Error(`${this.name}: ${found.length} containers run ${entryPoint}`);
    return found[0]!;
  }

  /** The keys and values of a ConfigMap or Secret (Secret `data` base64-decoded). */
  keysOf(kind: 'ConfigMap' | 'Secret', name: string): Record<string, string> {
    const secret = kind === 'Secret' ? this.secrets.find((o) => o.metadata.name === name) : undefined;
    if (kind === 'Secret' && secret === undefined) throw new Error(`${this.name}: no Secret ${name} in k8s/${SECRETS_EXAMPLE}`);
    const object = (secret ?? this.get(kind, name)) as K8sObject & { data?: Record<string, string>; stringData?: Record<string, string> };
    if (kind === 'ConfigMap') return { ...object.data };
    const decoded = Object.fromEntries(Object.entries(object.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    return { ...decoded, ...object.stringData };
  }

  /**
   * The environment a container gets, in Kubernetes' order (envFrom in order, then env), and the
   * names it sets. @throws when a referenced ConfigMap, Secret or key does not exist.
   */
  environmentOf(container: Container): { env: Record<string, string>; names: string[] } {
    const env: Record<string, string> = {};
    for (const source of container.envFrom ?? []) {
      if (source.prefix !== undefined) throw new Error(`${container.name}: envFrom prefix is not used here`);
      const keys = source.configMapRef ? this.keysOf('ConfigMap', source.configMapRef.name) : this.keysOf('Secret', source.secretRef!.name);
      Object.assign(env, keys);
    }
    for (const entry of container.env ?? []) {
      const ref = entry.valueFrom?.secretKeyRef ?? entry.valueFrom?.configMapKeyRef;
      if (ref === undefined) {
        env[entry.name] = entry.value ?? '';
        continue;
      }
      const keys = this.keysOf(entry.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name);
      if (!(ref.key in keys)) throw new Error(`${container.name}: env ${entry.name} refers to ${ref.name}/${ref.key}, which does not exist`);
      env[entry.name] = keys[ref.key]!;
    }
    return { env, names: Object.keys(env) };
  }

  /** The settings a container's process would load. */
  settingsOf(container: Container): Settings {
    return loadSettings(this.environmentOf(container).env);
  }
}

/** A container port by number or name. @throws when the container does not declare it. */
function containerPort(container: Container, port: number | string): number {
  const found = container.ports?.find((p) => (typeof port === 'number' ? p.containerPort === port : p.name === port));
  if (found === undefined) throw new Error(`${container.name}: no container port ${port}`);
  return found.containerPort;
}

/** Whether `selector` (matchLabels) selects pods labelled `labels`. */
function selects(selector: { matchLabels?: Record<string, string> } | undefined, labels: Record<string, string>): boolean {
  return Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

/** The ingress rules of the namespace's policies that let a pod labelled `labels` be reached on TCP `port` from namespace `fromNamespace`. */
function ingressAllows(r: Rendered, labels: Record<string, string>, port: number, fromNamespace: string): boolean {
  return r.all('NetworkPolicy').some((np) => {
    const spec = np.spec as NetworkPolicySpec;
    if (!selects(spec.podSelector, labels) || !(spec.policyTypes ?? ['Ingress']).includes('Ingress')) return false;
    return (spec.ingress ?? []).some(
      (rule) =>
        (rule.ports === undefined || rule.ports.some((p) => (p.protocol ?? 'TCP') === 'TCP' && (p.port === undefined || p.port === port))) &&
        (rule.from === undefined || rule.from.some((peer) => peer.ipBlock === undefined && peer.podSelector === undefined && selects(peer.namespaceSelector, { 'kubernetes.io/metadata.name': fromNamespace }))),
    );
  });
}

/** Whether the namespace's policies let a pod labelled `labels` connect to `port`/`protocol` anywhere (a rule with no `to`) or to kube-system (DNS). */
function egressAllows(r: Rendered, labels: Record<string, string>, port: number, protocol: 'TCP' | 'UDP'): boolean {
  return r.all('NetworkPolicy').some((np) => {
    const spec = np.spec as NetworkPolicySpec;
    if (!selects(spec.podSelector, labels) || !(spec.policyTypes ?? []).includes('Egress')) return false;
    return (spec.egress ?? []).some((rule) => (rule.ports ?? []).some((p) => (p.protocol ?? 'TCP') === protocol && p.port === port));
  });
}

/** The TCP port a URL connects to. */
function portOf(url: string): number {
  const u = new URL(url);
  if (u.port !== '') return Number(u.port);
  const defaults: Record<string, number> = { 'http:': 80, 'https:': 443, 'redis:': 6379, 'rediss:': 6379, 'postgres:': 5432, 'postgresql:': 5432 };
  return defaults[u.protocol]!;
}

describe('k8s/ files', () => {
  it('every file is listed by a kustomization, every listed file exists, and each resource file holds one object', () => {
    const listed = new Set(kustomizationDirs().flatMap((dir) => referencedFiles(dir)));
    const onDisk = filesUnder(K8S_DIR);
    expect(onDisk.filter((f) => !listed.has(f)).map((f) => relative(REPO_ROOT, f))).toEqual([]);
    expect([...listed].filter((f) => !onDisk.includes(f)).map((f) => relative(REPO_ROOT, f))).toEqual([]);
    for (const dir of kustomizationDirs()) {
      for (const entry of readKustomization(dir).resources ?? []) {
        const path = resolve(dir, entry);
        if (statSync(path).isFile()) expect({ file: relative(REPO_ROOT, path), objects: readYamlDocuments(path).length }).toEqual({ file: relative(REPO_ROOT, path), objects: 1 });
      }
    }
  });

  it('the base, an example overlay and an example without KEDA are there', () => {
    expect(RENDERS).toEqual(expect.arrayContaining(['base', 'overlays/example', 'overlays/example-hpa']));
  });
});

describe.each(RENDERS)('k8s/%s', (renderName) => {
  // Set in beforeAll: a render or settings error then fails each test with its message.
  let r: Rendered;
  let api: { workload: Workload; container: Container };
  let worker: { workload: Workload; container: Container };
  let migrate: { workload: Workload; container: Container };
  let apiSettings: Settings;
  let workerSettings: Settings;
  let namespace: K8sObject | undefined;
  beforeAll(() => {
    r = new Rendered(renderName);
    api = r.workloadRunning(ENTRY_POINTS.api);
    worker = r.workloadRunning(ENTRY_POINTS.worker);
    migrate = r.workloadRunning(ENTRY_POINTS.migrate);
    apiSettings = r.settingsOf(api.container);
    workerSettings = r.settingsOf(worker.container);
    [namespace] = r.all('Namespace');
  });

  it('every object is valid against its Kubernetes or KEDA schema, with no unknown field', () => {
    const errors = Object.fromEntries(r.objects.map((o): [string, string[]] => [`${o.kind}/${o.metadata.name}`, schemaErrors(o)]).filter(([, e]) => e.length > 0));
    expect(errors).toEqual({});
    // The objects of a whole deployment, nothing missing from the render, nothing else.
    const autoscaling = r.all('HorizontalPodAutoscaler').length > 0 ? ['HorizontalPodAutoscaler'] : ['ScaledObject', 'TriggerAuthentication'];
    const common = ['ConfigMap', 'Deployment', 'Deployment', 'Job', 'Namespace', 'NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'NetworkPolicy', 'PodDisruptionBudget', 'PodDisruptionBudget', 'Service', 'ServiceAccount'];
    expect(r.objects.map((o) => o.kind).sort()).toEqual([...common, ...autoscaling].sort());
  });

  it('names are unique, and every object lives in the one Namespace', () => {
    const ids = r.objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    expect(r.all('Namespace')).toHaveLength(1);
    const namespaced = r.objects.filter((o) => o.kind !== 'Namespace');
    expect(namespaced.filter((o) => o.metadata.namespace !== namespace!.metadata.name).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
  });

  it('every container runs a built entry point of the image, by path, with node', () => {
    const image = r.workloads()[0]!.pod.containers[0]!.image;
    for (const { object, pod } of r.workloads()) {
      for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const where = `${object.kind}/${object.metadata.name}/${container.name}`;
        // One image for every workload; only overlays pin a registry and a tag.
        expect({ where, image: container.image }).toEqual({ where, image });
        if (renderName === 'base') expect(container.image).toBe(IMAGE);
        else expect(container.image).toMatch(/^[a-z0-9.-]+(:\d+)?\/[a-z0-9/-]+:[\w.-]+$/);
        const [node, entryPoint, ...rest] = container.command ?? [];
        expect({ where, node, rest }).toEqual({ where, node: 'node', rest: [] });
        expect(Object.values(ENTRY_POINTS)).toContain(entryPoint);
        expect({ where, built: entryPointExists(entryPoint!) }).toEqual({ where, built: true });
      }
    }
  });

  it('every environment variable is a known setting of its process, resolves, and the settings load', () => {
    for (const { object, pod } of r.workloads()) {
      for (const container of pod.containers) {
        const where = `${object.kind}/${object.metadata.name}/${container.name}`;
        const known = knownEnvNames(container.command![1]!);
        const { names } = r.environmentOf(container);
        expect({ where, unknown: names.filter((n) => !known.has(n)) }).toEqual({ where, unknown: [] });
        expect(() => r.settingsOf(container)).not.toThrow();
        // Settings the processes must not fall back to defaults for in a cluster.
        const settings = r.settingsOf(container);
        expect({ where, s3: settings.s3Endpoint === undefined ? 'embedded s3rver' : 'configured' }).toEqual({ where, s3: 'configured' });
        expect({ where, local: [settings.databaseUrl, settings.lockDatabaseUrl, settings.redisUrl].filter((u) => /127\.0\.0\.1|localhost/.test(u)) }).toEqual({ where, local: [] });
      }
    }
    // A key is set in one place only: envFrom of two sources would make the order matter.
    const configKeys = Object.keys(r.keysOf('ConfigMap', 'scenecache-config'));
    const secretKeys = Object.keys(r.keysOf('Secret', 'scenecache-secrets'));
    expect(configKeys.filter((k) => secretKeys.includes(k))).toEqual([]);
    // The API and the workers agree on what they share.
    expect(apiSettings.queuePrefix).toBe(workerSettings.queuePrefix);
    expect(apiSettings.upstreamConcurrency).toBe(workerSettings.upstreamConcurrency);
  });

  it("the worker's probes are the worker's own paths on WORKER_METRICS_PORT; Prometheus scrapes its /metrics there", () => {
    const { container, workload } = worker;
    const port = workerSettings.workerMetricsPort;
    expect(container.livenessProbe?.httpGet?.path).toBe(WORKER_HTTP_PATHS.liveness);
    expect(container.readinessProbe?.httpGet?.path).toBe(WORKER_HTTP_PATHS.readiness);
    expect(container.startupProbe?.httpGet?.path).toBe(WORKER_HTTP_PATHS.liveness);
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
      expect(containerPort(container, probe!.httpGet!.port)).toBe(port);
    }
    const annotations = (workload.object.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations ?? {};
    expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': WORKER_HTTP_PATHS.metrics });
  });

  it("the API's probes and Service use API_PORT; the Service selects the API pods", () => {
    const { container, workload } = api;
    const port = apiSettings.apiPort;
    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
      expect(containerPort(container, probe!.httpGet!.port)).toBe(port);
    }
    const service = r.get('Service', 'scenecache-api').spec as { selector: Record<string, string>; ports: { port: number; targetPort: number | string }[] };
    expect(selects({ matchLabels: service.selector }, workload.labels)).toBe(true);
    expect(r.workloads().filter((w) => selects({ matchLabels: service.selector }, w.labels)).map((w) => w.object.metadata.name)).toEqual([workload.object.metadata.name]);
    expect(service.ports.map((p) => containerPort(container, p.targetPort))).toEqual([port]);
    const annotations = (workload.object.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations ?? {};
    expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' });
    // The API spreads over at least two pods, one of which a disruption always leaves.
    expect((workload.object.spec as { replicas: number }).replicas).toBeGreaterThanOrEqual(2);
  });

  it('the grace periods outlast SHUTDOWN_TIMEOUT_MS (plus the preStop pause)', () => {
    for (const [{ workload, container }, settings] of [
      [worker, workerSettings],
      [api, apiSettings],
    ] as const) {
      const preStopMs = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
      // Unset, Kubernetes waits 30 s.
      const graceMs = (workload.pod.terminationGracePeriodSeconds ?? 30) * 1000;
      const neededMs = preStopMs + settings.shutdownTimeoutMs + GRACE_MARGIN_SECONDS * 1000;
      expect({ name: workload.object.metadata.name, enough: graceMs >= neededMs }).toEqual({ name: workload.object.metadata.name, enough: true });
    }
    // Both processes read the same deadline.
    expect(apiSettings.shutdownTimeoutMs).toBe(workerSettings.shutdownTimeoutMs);
  });

  it('pods run as non-root on a read-only root filesystem, without privileges or an API token; memory is bounded', () => {
    for (const { object, pod } of r.workloads()) {
      const where = `${object.kind}/${object.metadata.name}`;
      expect({ where, ...pod.securityContext }).toMatchObject({ where, runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
      expect({ where, token: pod.automountServiceAccountToken }).toEqual({ where, token: false });
      const account = r.get('ServiceAccount', pod.serviceAccountName!) as K8sObject & { automountServiceAccountToken?: boolean };
      expect(account.automountServiceAccountToken).toBe(false);
      for (const container of pod.containers) {
        expect({ where, ...container.securityContext }).toMatchObject({ where, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
        expect(container.securityContext?.privileged).toBeUndefined();
        expect(container.securityContext?.capabilities?.add).toBeUndefined();
        expect({ where, memoryLimit: container.resources?.limits?.memory, memoryRequest: container.resources?.requests?.memory }).toEqual({ where, memoryLimit: expect.any(String) as string, memoryRequest: expect.any(String) as string });
      }
    }
    // The long-running processes get a writable /tmp (emptyDir) next to the read-only root.
    for (const { workload, container } of [api, worker]) {
      const mount = container.volumeMounts?.find((m) => m.mountPath === '/tmp');
      expect(workload.pod.volumes?.find((v) => v.name === mount?.name)?.emptyDir).toBeDefined();
    }
    // The Namespace enforces the restricted Pod Security Standard these pods meet.
    expect((namespace!.metadata.labels as Record<string, string>)['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  it('selectors select their pods: Deployments, PodDisruptionBudgets, NetworkPolicies', () => {
    for (const { object, labels } of r.workloads()) {
      if (object.kind === 'Deployment') expect(selects((object.spec as { selector: { matchLabels: Record<string, string> } }).selector, labels)).toBe(true);
    }
    for (const pdb of r.all('PodDisruptionBudget')) {
      const selected = r.workloads().filter((w) => w.object.kind === 'Deployment' && selects((pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector, w.labels));
      expect({ pdb: pdb.metadata.name, selects: selected.map((w) => w.object.metadata.name) }).toEqual({ pdb: pdb.metadata.name, selects: [pdb.metadata.name] });
    }
    expect(r.all('PodDisruptionBudget').map((p) => p.metadata.name).sort()).toEqual(['scenecache-api', 'scenecache-worker']);
    expect((r.get('PodDisruptionBudget', 'scenecache-api').spec as { minAvailable: number }).minAvailable).toBe(1);
    for (const np of r.all('NetworkPolicy')) {
      const selector = (np.spec as NetworkPolicySpec).podSelector;
      expect({ policy: np.metadata.name, selectsSomething: r.workloads().some((w) => selects(selector, w.labels)) }).toEqual({ policy: np.metadata.name, selectsSomething: true });
    }
  });

  it('one autoscaler sizes the workers on the backlog, one pod per WORKER_CONCURRENCY jobs', () => {
    const deployment = worker.workload.object;
    // The autoscaler owns the replica count; a replicas field would reset it at every apply.
    expect((deployment.spec as { replicas?: number }).replicas).toBeUndefined();
    const scaledObjects = r.all('ScaledObject');
    const hpas = r.all('HorizontalPodAutoscaler');
    expect(scaledObjects.length + hpas.length).toBe(1);
    const states = Object.keys(QUEUE_DEPTH_STATES).sort();
    if (scaledObjects.length === 1) {
      const spec = scaledObjects[0]!.spec as {
        scaleTargetRef: { apiVersion?: string; kind?: string; name: string };
        minReplicaCount: number;
        maxReplicaCount: number;
        triggers: { type: string; metricType?: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[];
      };
      expect(spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
      expect(spec.minReplicaCount).toBeGreaterThanOrEqual(1);
      expect(spec.maxReplicaCount).toBeGreaterThan(spec.minReplicaCount);
      expect(spec.triggers).toHaveLength(1);
      const [trigger] = spec.triggers;
      expect(trigger).toMatchObject({ type: 'metrics-api', metricType: 'AverageValue', metadata: { valueLocation: 'queue.backlog', authMode: 'bearer' } });
      expect(Number(trigger!.metadata.targetValue)).toBe(workerSettings.workerConcurrency);
      // The URL names the API's Service, in this namespace, on the Service's port.
      const url = new URL(trigger!.metadata.url!);
      const service = r.get('Service', url.hostname.split('.')[0]!).spec as { ports: { port: number; targetPort: number | string }[] };
      expect(url.hostname).toBe(`scenecache-api.${namespace!.metadata.name}.svc`);
      expect(service.ports.map((p) => p.port)).toContain(portOf(url.href));
      expect(url.protocol).toBe('http:');
      // Its key comes from a TriggerAuthentication whose Secret exists, never from the pods' env Secret.
      const auth = r.get('TriggerAuthentication', trigger!.authenticationRef!.name).spec as { secretTargetRef: { parameter: string; name: string; key: string }[] };
      expect(auth.secretTargetRef.map((s) => s.parameter)).toEqual(['token']);
      const [ref] = auth.secretTargetRef;
      expect(Object.keys(r.keysOf('Secret', ref!.name))).toContain(ref!.key);
      expect(ref!.name).not.toBe('scenecache-secrets');
      // KEDA's operator may call the API.
      expect(ingressAllows(r, api.workload.labels, containerPort(api.container, service.ports[0]!.targetPort), 'keda')).toBe(true);
    } else {
      const spec = hpas[0]!.spec as {
        scaleTargetRef: { apiVersion: string; kind: string; name: string };
        minReplicas: number;
        maxReplicas: number;
        metrics: { type: string; external?: { metric: { name: string; selector?: { matchExpressions?: { key: string; operator: string; values: string[] }[] } }; target: { type: string; averageValue?: string } } }[];
      };
      expect(spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
      expect(spec.minReplicas).toBeGreaterThanOrEqual(1);
      expect(spec.maxReplicas).toBeGreaterThan(spec.minReplicas);
      expect(spec.metrics).toHaveLength(1);
      const external = spec.metrics[0]!.external!;
      // The metric the processes export (packages/core queue-depth.ts), over the backlog's states.
      const gauge = queueDepthGauge({ getJobCounts: () => Promise.resolve({}) }, createLogger('k8s-test', 'silent'));
      expect(external.metric.name).toBe(gauge.name);
      expect(external.metric.selector?.matchExpressions).toEqual([{ key: gauge.labelNames[0], operator: 'In', values: expect.any(Array) as string[] }]);
      expect([...external.metric.selector!.matchExpressions![0]!.values].sort()).toEqual(states);
      expect(external.target.type).toBe('AverageValue');
      expect(Number(external.target.averageValue)).toBe(workerSettings.workerConcurrency);
      // Without KEDA nothing of KEDA's is left behind.
      expect(r.objects.filter((o) => o.apiVersion.startsWith('keda.sh/')).map((o) => o.kind)).toEqual([]);
    }
  });

  it('the NetworkPolicies deny by default and let through probes, Prometheus and the egress the settings need', () => {
    const denyAll = r.all('NetworkPolicy').find((np) => {
      const spec = np.spec as NetworkPolicySpec;
      return Object.keys(spec.podSelector).length === 0 && spec.ingress === undefined && spec.egress === undefined;
    });
    expect((denyAll?.spec as NetworkPolicySpec | undefined)?.policyTypes?.sort()).toEqual(['Egress', 'Ingress']);
    // Prometheus (namespace monitoring) scrapes the ports the annotations name.
    expect(ingressAllows(r, worker.workload.labels, workerSettings.workerMetricsPort, 'monitoring')).toBe(true);
    expect(ingressAllows(r, api.workload.labels, apiSettings.apiPort, 'monitoring')).toBe(true);
    // Clients come through the ingress controller.
    expect(ingressAllows(r, api.workload.labels, apiSettings.apiPort, 'ingress-nginx')).toBe(true);
    // Nobody else reaches the workers.
    expect(ingressAllows(r, worker.workload.labels, workerSettings.workerMetricsPort, 'ingress-nginx')).toBe(false);
    // Every endpoint each process is configured with is reachable, and DNS.
    for (const { workload, container } of [api, worker, migrate]) {
      const s = r.settingsOf(container);
      const urls = [s.databaseUrl, s.lockDatabaseUrl, s.redisUrl, s.s3Endpoint!, s.cdseTokenUrl, s.cdseCatalogueUrl, s.cdseDownloadUrl];
      for (const url of urls) expect({ pod: workload.object.metadata.name, url, allowed: egressAllows(r, workload.labels, portOf(url), 'TCP') }).toMatchObject({ allowed: true });
      expect(egressAllows(r, workload.labels, 53, 'UDP')).toBe(true);
    }
  });

  it('the lock connection and the migrations reach Postgres directly, not through PgBouncer', () => {
    for (const settings of [apiSettings, workerSettings]) {
      expect(settings.lockDatabaseUrl).not.toBe(settings.databaseUrl);
      expect(new URL(settings.lockDatabaseUrl).host).not.toBe(new URL(settings.databaseUrl).host);
      expect(new URL(settings.lockDatabaseUrl).pathname).toBe(new URL(settings.databaseUrl).pathname);
    }
    const migrateSettings = r.settingsOf(migrate.container);
    expect(migrateSettings.databaseUrl).toBe(workerSettings.lockDatabaseUrl);
    expect(migrate.workload.object.kind).toBe('Job');
    expect(['Never', 'OnFailure']).toContain(migrate.workload.pod.restartPolicy);
  });

  it('renders no Secret: applying a release never overwrites the Secrets the operator created', () => {
    expect(r.all('Secret').map((o) => o.metadata.name)).toEqual([]);
  });
});

describe(`k8s/${SECRETS_EXAMPLE}`, () => {
  const secrets = renderKustomization(join(K8S_DIR, SECRETS_EXAMPLE));

  it('holds only the Secrets the workloads read, valid, in their namespace, with example values only', () => {
    expect(secrets.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['Secret/scenecache-keda-api-key', 'Secret/scenecache-secrets']);
    for (const secret of secrets) {
      expect({ name: secret.metadata.name, errors: schemaErrors(secret) }).toEqual({ name: secret.metadata.name, errors: [] });
      expect(secret.metadata.namespace).toBe('scenecache');
      const values = (secret as K8sObject & { stringData: Record<string, string> }).stringData;
      for (const [key, value] of Object.entries(values)) expect({ secret: secret.metadata.name, key, example: /example/i.test(value) }).toEqual({ secret: secret.metadata.name, key, example: true });
    }
  });
});

describe('the test renderer', () => {
  it('applies overlays: namespace, images, strategic-merge patches by container name, component deletions', () => {
    const base = new Rendered('base');
    const example = new Rendered('overlays/example');
    const noKeda = new Rendered('overlays/example-hpa');
    const apiOf = (r: Rendered) => r.workloadRunning(ENTRY_POINTS.api).container;
    expect(apiOf(base).image).toBe(IMAGE);
    expect(apiOf(example).image).toBe('registry.example.com/scenecache:0.1.0');
    // The patch merged into the container (by name) without dropping its other fields.
    expect(apiOf(example).resources).not.toEqual(apiOf(base).resources);
    expect(apiOf(example).readinessProbe).toEqual(apiOf(base).readinessProbe);
    expect(example.keysOf('ConfigMap', 'scenecache-config').GLOBAL_BUCKET).not.toBe(base.keysOf('ConfigMap', 'scenecache-config').GLOBAL_BUCKET);
    expect(example.keysOf('ConfigMap', 'scenecache-config').API_PORT).toBe(base.keysOf('ConfigMap', 'scenecache-config').API_PORT);
    expect(noKeda.all('ScaledObject')).toEqual([]);
    expect(noKeda.get('HorizontalPodAutoscaler', 'scenecache-worker').metadata.namespace).toBe('scenecache');
    expect(noKeda.objects.length).toBe(example.objects.length - 2 + 1);
  });

  it('flags a misspelt field that the models alone accept', () => {
    const deployment = structuredClone(new Rendered('base').get('Deployment', 'scenecache-worker'));
    const pod = podSpecOf(deployment) as unknown as PodSpec & Record<string, unknown>;
    const container = pod.containers[0] as Container & Record<string, unknown>;
    container.readinesProbe = container.readinessProbe;
    pod.terminationGracePeriodSecond = 60;
    expect(schemaErrors(deployment)).toEqual(['/spec/template/spec/terminationGracePeriodSecond: not in the schema', '/spec/template/spec/containers/0/readinesProbe: not in the schema']);
    expect(() => schemaErrors({ ...deployment, apiVersion: 'apps/v1beta1' })).toThrow(/no schema model/);
  });
});
