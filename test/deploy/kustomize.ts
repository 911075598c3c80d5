/**
 * A small kustomize for the deployment tests (no kubectl here): renders a kustomization folder
 * of k8s/ into its objects, for the subset of kustomize that k8s/ uses — and fails loudly on
 * anything else, so a kustomization that outgrows it is noticed instead of mis-rendered:
 *
 * - `resources:` (YAML files, or folders holding a Kustomization), `components:` (folders holding
 *   a Component with `resources:` and `patches:`);
 * - `namespace:` (sets `metadata.namespace` on namespaced objects and renames the Namespace
 *   object, as kustomize 5 does);
 * - `images:` (`name` → `newName`/`newTag` in containers' and init containers' `image`);
 * - `patches:` with `path:` only: strategic-merge patches identified by kind and name — maps
 *   merge, `null` removes a key, lists of objects merge by `name` in built-in kinds (containers,
 *   env, volumes, ports…) and are replaced in custom resources (JSON merge patch), and a
 *   top-level `$patch: delete` removes the object.
 *
 * Semantics as in kustomize 5.5 (`kubectl kustomize`): components run after the resources,
 * then the kustomization's own patches, namespace and images.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as parsed from YAML. */
export type K8sObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } & Record<string, unknown> };

/** What a kustomization file may hold (the subset {@link renderKustomization} supports). */
interface Kustomization {
  apiVersion: string;
  kind: 'Kustomization' | 'Component';
  namespace?: string;
  resources?: string[];
  components?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: { path: string }[];
}

const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'components', 'images', 'patches']);
const KUSTOMIZATION_FILE = 'kustomization.yaml';

/** Kinds that are not namespaced (among those a kustomization here may hold). */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PriorityClass', 'StorageClass', 'ClusterTriggerAuthentication']);

/** Whether an apiVersion is a built-in Kubernetes group (strategic merge) or a custom resource (JSON merge). */
function isBuiltIn(apiVersion: string): boolean {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
  return group === '' || !group.includes('.') || group.endsWith('.k8s.io');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every YAML document of a file (empty documents dropped). @throws on a YAML error. */
export function readYamlDocuments(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: unknown[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** The kustomization of a folder. @throws when it is missing or uses a field this renderer does not know. */
export function readKustomization(dir: string): Kustomization {
  const file = join(dir, KUSTOMIZATION_FILE);
  if (!existsSync(file)) throw new Error(`${dir}: no ${KUSTOMIZATION_FILE}`);
  const [doc, ...more] = readYamlDocuments(file);
  if (!isPlainObject(doc) || more.length > 0) throw new Error(`${file}: expected one mapping`);
  const unknown = Object.keys(doc).filter((k) => !SUPPORTED_FIELDS.has(k));
  if (unknown.length > 0) throw new Error(`${file}: fields not supported by the test renderer: ${unknown.join(', ')}`);
  if (doc.kind !== 'Kustomization' && doc.kind !== 'Component') throw new Error(`${file}: kind ${String(doc.kind)}`);
  for (const patch of (doc.patches ?? []) as unknown[]) {
    if (!isPlainObject(patch) || Object.keys(patch).join() !== 'path') throw new Error(`${file}: only \`patches: - path: <file>\` is supported`);
  }
  return doc as unknown as Kustomization;
}

/** Every file a kustomization folder refers to (resources that are files, patches), as absolute paths. */
export function referencedFiles(dir: string): string[] {
  const k = readKustomization(dir);
  const files = [join(dir, KUSTOMIZATION_FILE)];
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new Error(`${dir}: resource ${entry} does not exist`);
    if (statSync(path).isFile()) files.push(path);
  }
  for (const { path } of k.patches ?? []) files.push(resolve(dir, path));
  return files;
}

function asObject(value: unknown, where: string): K8sObject {
  if (!isPlainObject(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !isPlainObject(value.metadata) || typeof value.metadata.name !== 'string') {
    throw new Error(`${where}: not a Kubernetes object (apiVersion, kind, metadata.name)`);
  }
  return value as K8sObject;
}

/** Strategic-merge `patch` into `target` (see the module comment for the supported subset). */
function mergePatch(target: unknown, patch: unknown, strategic: boolean, path: string): unknown {
  if (!isPlainObject(patch)) return patch;
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new Error(`${path}/${key}: patch directive not supported by the test renderer`);
    if (value === null) {
      delete out[key];
    } else if (Array.isArray(value) && strategic && Array.isArray(out[key]) && value.every((v) => isPlainObject(v) && typeof v.name === 'string')) {
      const merged = [...(out[key] as unknown[])];
      for (const item of value as Record<string, unknown>[]) {
        const at = merged.findIndex((m) => isPlainObject(m) && m.name === item.name);
        if (at >= 0) merged[at] = mergePatch(merged[at], item, strategic, `${path}/${key}[${String(item.name)}]`);
        else merged.push(item);
      }
      out[key] = merged;
    } else {
      out[key] = mergePatch(out[key], value, strategic, `${path}/${key}`);
    }
  }
  return out;
}

/** Apply the patch files of a kustomization (or component) to `objects`, in order. */
function applyPatches(dir: string, patches: readonly { path: string }[], objects: K8sObject[]): K8sObject[] {
  let result = objects;
  for (const { path } of patches) {
    const file = resolve(dir, path);
    for (const doc of readYamlDocuments(file)) {
      const patch = asObject(doc, file);
      const matches = result.filter((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name && o.apiVersion.split('/')[0] === patch.apiVersion.split('/')[0]);
      if (matches.length !== 1) throw new Error(`${file}: patch target ${patch.kind}/${patch.metadata.name} matches ${matches.length} objects`);
      const [target] = matches;
      if ((patch as Record<string, unknown>).$patch === 'delete') {
        result = result.filter((o) => o !== target);
        continue;
      }
      const merged = mergePatch(target, patch, isBuiltIn(target!.apiVersion), `${file}`) as K8sObject;
      result = result.map((o) => (o === target ? merged : o));
    }
  }
  return result;
}

/** The pod spec of an object that has one (Deployment, Job, …). */
export function podSpecOf(object: K8sObject): Record<string, unknown> | undefined {
  const spec = object.spec as { template?: { spec?: Record<string, unknown> } } | undefined;
  return spec?.template?.spec;
}

function setImages(objects: K8sObject[], images: NonNullable<Kustomization['images']>): K8sObject[] {
  return objects.map((object) => {
    const pod = podSpecOf(object);
    if (pod === undefined) return object;
    const copy = structuredClone(object);
    const podCopy = podSpecOf(copy)!;
    for (const list of ['containers', 'initContainers'] as const) {
      for (const container of (podCopy[list] ?? []) as { image?: string }[]) {
        if (container.image === undefined) continue;
        const name = container.image.replace(/[:@].*$/, '');
        const rule = images.find((i) => i.name === name);
        if (rule === undefined) continue;
        const tag = container.image.slice(name.length);
        container.image = `${rule.newName ?? name}${rule.newTag === undefined ? tag : `:${rule.newTag}`}`;
      }
    }
    return copy;
  });
}

function setNamespace(objects: K8sObject[], namespace: string): K8sObject[] {
  return objects.map((object) => {
    const copy = structuredClone(object);
    if (copy.kind === 'Namespace') copy.metadata.name = namespace;
    else if (!CLUSTER_SCOPED.has(copy.kind)) copy.metadata.namespace = namespace;
    return copy;
  });
}

/**
 * Render the kustomization in `dir` (a Kustomization, not a Component) into its objects.
 * @throws on a missing file, a field or patch form this renderer does not support, a patch
 *   matching no object or several, or a YAML error.
 */
export function renderKustomization(dir: string): K8sObject[] {
  const k = readKustomization(dir);
  if (k.kind !== 'Kustomization') throw new Error(`${dir}: a Component cannot be rendered alone`);
  return render(dir, k);
}

function loadResources(dir: string, k: Kustomization): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new Error(`${dir}: resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) objects.push(...renderKustomization(path));
    else objects.push(...readYamlDocuments(path).map((doc) => asObject(doc, path)));
  }
  return objects;
}

function render(dir: string, k: Kustomization): K8sObject[] {
  let objects = loadResources(dir, k);
  for (const entry of k.components ?? []) {
    const componentDir = resolve(dir, entry);
    const component = readKustomization(componentDir);
    if (component.kind !== 'Component') throw new Error(`${componentDir}: not a Component`);
    if (component.namespace !== undefined || component.images !== undefined || component.components !== undefined) {
      throw new Error(`${componentDir}: a component here may only have resources and patches`);
    }
    objects = applyPatches(componentDir, component.patches ?? [], [...objects, ...loadResources(componentDir, component)]);
  }
  objects = applyPatches(dir, k.patches ?? [], objects);
  if (k.namespace !== undefined) objects = setNamespace(objects, k.namespace);
  if (k.images !== undefined) objects = setImages(objects, k.images);
  return objects;
}
