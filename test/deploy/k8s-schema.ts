/**
 * Validation of Kubernetes objects against the Kubernetes and KEDA OpenAPI schemas, with the
 * typed models of kubernetes-models 4.5 and @kubernetes-models/keda 0.4 (KEDA 2.10 CRDs).
 *
 * The models' `validate()` rejects wrong types and missing required fields but accepts unknown
 * keys, so a misspelt or misplaced field (`readinesProbe`, `runAsNonroot`, a probe one level too
 * deep) would pass and be silently dropped by the API server. {@link schemaErrors} closes that
 * gap: it runs the same validator a second time on a Proxy of the object that records which keys
 * the validator reads. A schema with properties reads every property it declares (present or
 * not); a free-form map (labels, ConfigMap data) is enumerated instead. So a key of an object
 * whose properties were read one by one, but never itself read, is not in the schema.
 */
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import type { K8sObject } from './kustomize.js';

/** A model class: `new Model(data).validate()` throws on a schema violation. */
interface ModelClass {
  new (data: never): { validate(): void; toJSON(): unknown };
  prototype: { validate(this: unknown): void };
}

/** The kinds k8s/ may use, by `apiVersion/kind`. Anything else is an error (add it here, with its model). */
export const MODELS: Readonly<Record<string, ModelClass>> = Object.freeze({
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
});

/** What the validator did with one object (map) of the document. */
interface Visit {
  path: string;
  keys: string[];
  read: Set<string>;
  enumerated: boolean;
}

/** A Proxy of `value` (and, lazily, of everything under it) that records reads into `visits`. */
function recordReads(value: unknown, path: string, visits: Visit[]): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const visit: Visit | undefined = Array.isArray(value) ? undefined : { path, keys: Object.keys(value), read: new Set(), enumerated: false };
  if (visit) visits.push(visit);
  return new Proxy(value, {
    get(target, key, receiver) {
      const child: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== 'string') return child;
      visit?.read.add(key);
      return Object.prototype.hasOwnProperty.call(target, key) ? recordReads(child, `${path}/${key}`, visits) : child;
    },
    has(target, key) {
      if (typeof key === 'string') visit?.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      if (visit) visit.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

/**
 * Schema errors of one object: the model's validation message, and every key the schema does
 * not declare (as a JSON pointer). Empty when the object is valid.
 * @throws when no model is known for its apiVersion and kind.
 */
export function schemaErrors(object: K8sObject): string[] {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (Model === undefined) throw new Error(`no schema model for ${object.apiVersion} ${object.kind} (${object.metadata.name})`);
  const model = new Model(object as never);
  try {
    model.validate();
  } catch (err) {
    return [(err as Error).message];
  }
  const visits: Visit[] = [];
  Model.prototype.validate.call(recordReads(model.toJSON(), '', visits));
  return visits.filter((v) => !v.enumerated && v.read.size > 0).flatMap((v) => v.keys.filter((k) => !v.read.has(k)).map((k) => `${v.path}/${k}: not in the schema`));
}
