/**
 * Reading `deploy/prometheus/alerts.yml` and `docs/operations.md` for the alert tests: the rule file
 * as Prometheus loads it, GitHub's heading anchors of a Markdown page, and a small PromQL lexer
 * that finds the selectors (metric name + label matchers), function calls and grouping labels of
 * an expression. No PromQL parser is installed (and no `promtool`), so this is a shape check, not
 * a full grammar: it knows PromQL's tokens, functions, aggregations and keywords, and fails on
 * anything else.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { REPO_ROOT } from './deployment-facts.js';

/** The rule file, relative to the repository root. */
export const ALERTS_FILE = 'deploy/prometheus/alerts.yml';
/** The operations guide the runbook URLs point into. */
export const OPERATIONS_GUIDE = 'docs/operations.md';

/** One alerting rule (Prometheus rule file format). */
export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** One rule group. */
export interface RuleGroup {
  name: string;
  interval?: string;
  limit?: number;
  rules: AlertRule[];
}

/**
 * The rule file's groups, parsed strictly (duplicate keys and YAML errors throw).
 * @throws Error naming the YAML problem.
 */
export function loadRuleGroups(file = ALERTS_FILE): RuleGroup[] {
  const doc = parseDocument(readFileSync(resolve(REPO_ROOT, file), 'utf8'), { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
  const root = doc.toJS() as { groups?: RuleGroup[] };
  return root.groups ?? [];
}

/** Every rule of every group. */
export function allRules(groups: readonly RuleGroup[]): AlertRule[] {
  return groups.flatMap((g) => g.rules ?? []);
}

/** The text of a repository file. */
export function readRepoFile(path: string): string {
  return readFileSync(resolve(REPO_ROOT, path), 'utf8');
}

/** A Markdown heading: level, text, and GitHub's anchor for it. */
export interface Heading {
  level: number;
  text: string;
  anchor: string;
}

/**
 * The headings of a Markdown page (fenced code blocks skipped) with their anchors as GitHub makes
 * them: inline markup removed, lower case, every character but letters, digits, spaces, `-` and
 * `_` dropped, spaces turned into `-`, and `-1`, `-2`, … appended to repeats.
 */
export function markdownHeadings(markdown: string): Heading[] {
  const headings: Heading[] = [];
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const fenceMatch = /^\s*(```|~~~)/.exec(line);
    if (fenceMatch) {
      if (fence === undefined) fence = fenceMatch[1];
      else if (fenceMatch[1] === fence) fence = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    const m = /^(#{1,6})\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[2]!;
    const plain = text.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*]/g, '');
    const base = plain.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    headings.push({ level: m[1]!.length, text, anchor: n === 0 ? base : `${base}-${n}` });
  }
  return headings;
}

/** The contents of the page's fenced code blocks of language `lang`. */
export function fencedBlocks(markdown: string, lang: string): string[] {
  return [...markdown.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map((m) => m[1]!);
}

// ---------------------------------------------------------------------------------------------
// PromQL
// ---------------------------------------------------------------------------------------------

/** PromQL functions (prometheus.io/docs/prometheus/latest/querying/functions/). */
export const PROMQL_FUNCTIONS: ReadonlySet<string> = new Set([
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'avg_over_time', 'ceil', 'changes',
  'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh', 'count_over_time', 'day_of_month', 'day_of_week', 'day_of_year',
  'days_in_month', 'deg', 'delta', 'deriv', 'exp', 'floor', 'histogram_avg', 'histogram_count', 'histogram_fraction',
  'histogram_quantile', 'histogram_stddev', 'histogram_stdvar', 'histogram_sum', 'holt_winters', 'hour', 'idelta', 'increase',
  'irate', 'label_join', 'label_replace', 'last_over_time', 'ln', 'log10', 'log2', 'mad_over_time', 'max_over_time',
  'min_over_time', 'minute', 'month', 'pi', 'predict_linear', 'present_over_time', 'quantile_over_time', 'rad', 'rate',
  'resets', 'round', 'scalar', 'sgn', 'sin', 'sinh', 'sort', 'sort_by_label', 'sort_by_label_desc', 'sort_desc', 'sqrt',
  'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh', 'time', 'timestamp', 'vector', 'year',
]);

/** PromQL aggregation operators. */
export const PROMQL_AGGREGATIONS: ReadonlySet<string> = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
]);

/** Keywords that take a label list: `by (a, b)`. */
const GROUPING_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Binary keywords. */
const BINARY_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'atan2']);

type Token =
  | { kind: 'ident'; text: string }
  | { kind: 'string'; text: string }
  | { kind: 'number'; text: string }
  | { kind: 'duration'; text: string }
  | { kind: 'punct'; text: string };

/** @throws Error on a character PromQL does not have. */
function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|(#[^\n]*)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|((?:\d+(?:ms|s|m|h|d|w|y))+)(?![\w.])|(\d+(?:\.\d+)?(?:e[+-]?\d+)?|0x[0-9a-f]+|Inf|NaN)(?![\w])|([a-zA-Z_][a-zA-Z0-9_:]*)|(=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}[\],:@])/giy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < expr.length) {
    const at = re.lastIndex;
    m = re.exec(expr);
    if (!m || m.index !== at) throw new Error(`unexpected character at ${at}: ${expr.slice(at, at + 20)}`);
    if (m[2] !== undefined) tokens.push({ kind: 'string', text: m[2].slice(1, -1) });
    else if (m[3] !== undefined) tokens.push({ kind: 'duration', text: m[3] });
    else if (m[4] !== undefined) tokens.push({ kind: 'number', text: m[4] });
    else if (m[5] !== undefined) tokens.push({ kind: 'ident', text: m[5] });
    else if (m[6] !== undefined) tokens.push({ kind: 'punct', text: m[6] });
  }
  return tokens;
}

/** A label matcher of a selector: `label op "value"`. */
export interface LabelMatcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

/** One instant or range vector selector. */
export interface Selector {
  metric: string;
  matchers: LabelMatcher[];
  /** Followed by a range (`[5m]`). */
  range: boolean;
  /** The innermost function or aggregation it is an argument of (`undefined` at top level). */
  enclosingCall: string | undefined;
}

/** What {@link analyzePromql} finds in an expression. */
export interface PromqlShape {
  selectors: Selector[];
  /** Functions and aggregations called. */
  calls: string[];
  /** Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`. */
  groupingLabels: string[];
}

/**
 * Tokenize `expr` and find its selectors, calls and grouping labels.
 * @throws Error on unbalanced brackets, an unknown function, a malformed matcher or grouping list.
 */
export function analyzePromql(expr: string): PromqlShape {
  const tokens = tokenize(expr);
  const selectors: Selector[] = [];
  const calls: string[] = [];
  const groupingLabels: string[] = [];
  // Open brackets: the call name for a call's `(`, '' for a plain `(`, or the bracket itself.
  const stack: { bracket: string; call: string | undefined }[] = [];
  const closing: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  const peek = (i: number) => tokens[i];
  const isPunct = (t: Token | undefined, text: string) => t?.kind === 'punct' && t.text === text;
  const innermostCall = () => [...stack].reverse().find((s) => s.bracket === '(' && s.call !== undefined)?.call;

  const readLabelList = (i: number): number => {
    // tokens[i] is `(`: read `ident (, ident)* [,] )`.
    if (!isPunct(peek(i), '(')) throw new Error(`expected a label list after ${tokens[i - 1]?.text}`);
    let j = i + 1;
    while (!isPunct(peek(j), ')')) {
      const t = peek(j);
      if (t?.kind !== 'ident') throw new Error(`expected a label name in a label list, got ${t?.text ?? 'the end'}`);
      groupingLabels.push(t.text);
      j++;
      if (isPunct(peek(j), ',')) j++;
      else if (!isPunct(peek(j), ')')) throw new Error(`expected , or ) in a label list, got ${peek(j)?.text ?? 'the end'}`);
    }
    return j + 1;
  };

  let i = 0;
  while (i < tokens.length) {
    const t = tokens[i]!;
    if (t.kind === 'punct' && (t.text === '(' || t.text === '[')) {
      stack.push({ bracket: t.text, call: undefined });
      if (t.text === '[') {
        // A range or subquery: `[5m]`, `[30m:1m]`; nothing but durations and `:` inside.
        let j = i + 1;
        while (peek(j) && !isPunct(peek(j), ']')) {
          const inner = peek(j)!;
          if (!(inner.kind === 'duration' || isPunct(inner, ':'))) throw new Error(`unexpected ${inner.text} in a range`);
          j++;
        }
        i = j;
        continue;
      }
      i++;
      continue;
    }
    if (t.kind === 'punct' && (t.text === ')' || t.text === ']' || t.text === '}')) {
      const open = stack.pop();
      if (open === undefined || open.bracket !== closing[t.text]) throw new Error(`unbalanced ${t.text}`);
      i++;
      // `sum(x) by (le)`: grouping after the aggregation's arguments.
      if (t.text === ')' && open.call !== undefined && PROMQL_AGGREGATIONS.has(open.call) && peek(i)?.kind === 'ident' && ['by', 'without'].includes(peek(i)!.text)) {
        i = readLabelList(i + 1);
      }
      continue;
    }
    if (t.kind === 'ident' && t.text === 'offset') {
      if (peek(i + 1)?.kind !== 'duration') throw new Error('offset needs a duration');
      i += 2;
      continue;
    }
    if (t.kind === 'ident' && GROUPING_KEYWORDS.has(t.text)) {
      // group_left / group_right may come without a list.
      if (!isPunct(peek(i + 1), '(') && (t.text === 'group_left' || t.text === 'group_right')) {
        i++;
        continue;
      }
      i = readLabelList(i + 1);
      continue;
    }
    if (t.kind === 'ident' && BINARY_KEYWORDS.has(t.text)) {
      i++;
      continue;
    }
    if (t.kind === 'ident' && PROMQL_AGGREGATIONS.has(t.text)) {
      calls.push(t.text);
      let j = i + 1;
      if (peek(j)?.kind === 'ident' && ['by', 'without'].includes(peek(j)!.text)) j = readLabelList(j + 1);
      if (!isPunct(peek(j), '(')) throw new Error(`aggregation ${t.text} needs parentheses`);
      stack.push({ bracket: '(', call: t.text });
      i = j + 1;
      continue;
    }
    if (t.kind === 'ident' && isPunct(peek(i + 1), '(')) {
      if (!PROMQL_FUNCTIONS.has(t.text)) throw new Error(`unknown function ${t.text}`);
      calls.push(t.text);
      stack.push({ bracket: '(', call: t.text });
      i += 2;
      continue;
    }
    if (t.kind === 'ident') {
      // A metric name, maybe with matchers and a range.
      const matchers: LabelMatcher[] = [];
      let j = i + 1;
      if (isPunct(peek(j), '{')) {
        j++;
        while (!isPunct(peek(j), '}')) {
          const label = peek(j);
          const op = peek(j + 1);
          const value = peek(j + 2);
          if (label?.kind !== 'ident' || op?.kind !== 'punct' || !['=', '!=', '=~', '!~'].includes(op.text) || value?.kind !== 'string') {
            throw new Error(`malformed matcher after ${t.text}{`);
          }
          matchers.push({ label: label.text, op: op.text as LabelMatcher['op'], value: value.text });
          j += 3;
          if (isPunct(peek(j), ',')) j++;
          else if (!isPunct(peek(j), '}')) throw new Error(`expected , or } in the matchers of ${t.text}`);
        }
        j++;
      }
      selectors.push({ metric: t.text, matchers, range: isPunct(peek(j), '['), enclosingCall: innermostCall() });
      i = j;
      continue;
    }
    if (t.kind === 'punct' && t.text === '{') throw new Error('a selector without a metric name');
    i++;
  }
  if (stack.length > 0) throw new Error(`unclosed ${stack.at(-1)!.bracket}`);
  return { selectors, calls, groupingLabels };
}

/** Base name of a histogram series (`x_bucket`, `x_sum`, `x_count` → `x`). */
export function histogramBase(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}
