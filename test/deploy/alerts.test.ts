/**
 * Issue 5 — the Prometheus alert rules (`deploy/prometheus/alerts.yml`) and the operations guide
 * they link to (`docs/operations.md`), without a Prometheus: the file has the rule format
 * Prometheus loads (every rule with alert, expr, for, severity, summary, description,
 * runbook_url); each runbook URL is a heading anchor of the guide, and the guide's alert section
 * has one heading per rule and no other; the expressions have PromQL's shape (balanced brackets,
 * known functions, well-formed matchers), sum counters through rate/increase and take fleet-wide
 * gauges with `max`, and select only the two scrape jobs the deployment defines; annotation
 * templates are balanced and use Prometheus template functions; every internal link of the guide
 * resolves and its YAML snippets parse.
 *
 * promtool is not installed here (Debian's `prometheus` package has it): this is a shape check,
 * not PromQL's grammar. That every metric and label the rules use is exported by the code is
 * `alerts.int.test.ts` (real API and worker metrics).
 */
import { parse } from 'yaml';
import {
  ALERTS_FILE,
  allRules,
  analyzePromql,
  fencedBlocks,
  loadRuleGroups,
  markdownHeadings,
  OPERATIONS_GUIDE,
  PROMQL_AGGREGATIONS,
  PROMQL_FUNCTIONS,
  readRepoFile,
  type RuleGroup,
} from './alert-rules.js';

/** The scrape job names the rules assume (deploy/compose/prometheus/prometheus.yml uses them). */
const JOBS = ['scenecache-api', 'scenecache-worker'];
/** Gauges that read shared state at scrape time: every process reports the fleet-wide value. */
const FLEET_GAUGES = [
  'scenecache_queue_jobs',
  'scenecache_upstream_slots_in_use',
  'scenecache_upstream_slots_limit',
  'scenecache_upstream_window_bytes',
  'scenecache_upstream_budget_bytes',
  'scenecache_global_cache_bytes',
  'scenecache_global_cache_budget_bytes',
];
const SEVERITIES = ['critical', 'warning', 'info'];
/** Prometheus' alert template functions used in annotations (prometheus.io/docs/prometheus/latest/configuration/template_reference/). */
const TEMPLATE_FUNCTIONS = new Set(['humanize', 'humanize1024', 'humanizeDuration', 'humanizePercentage', 'humanizeTimestamp', 'printf', 'title', 'toUpper', 'toLower']);
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

const groups: RuleGroup[] = loadRuleGroups();
const rules = allRules(groups);
const guide = readRepoFile(OPERATIONS_GUIDE);
const headings = markdownHeadings(guide);

describe(`${ALERTS_FILE}: the rule file format`, () => {
  it('has named groups of rules, with only the keys Prometheus knows', () => {
    expect(groups.length).toBeGreaterThanOrEqual(1);
    expect(new Set(groups.map((g) => g.name)).size).toBe(groups.length);
    for (const group of groups) {
      expect(Object.keys(group).filter((k) => !['name', 'interval', 'limit', 'rules'].includes(k))).toEqual([]);
      expect(group.name).toMatch(/^scenecache-[a-z-]+$/);
      expect(group.rules.length).toBeGreaterThan(0);
    }
    expect(rules.length).toBeGreaterThanOrEqual(12);
  });

  it.each(rules.map((r) => [r.alert, r] as const))('%s: alert, expr, for, severity, summary, description, runbook_url', (_name, rule) => {
    expect(Object.keys(rule).filter((k) => !['alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'].includes(k))).toEqual([]);
    expect(rule.alert).toMatch(/^Scenecache[A-Z][A-Za-z]+$/);
    expect(typeof rule.expr).toBe('string');
    expect(rule.expr.trim()).not.toBe('');
    expect(rule.for).toMatch(DURATION);
    expect(SEVERITIES).toContain(rule.labels?.severity);
    for (const key of ['summary', 'description', 'runbook_url']) {
      expect(typeof rule.annotations?.[key]).toBe('string');
      expect(rule.annotations![key]!.trim().length).toBeGreaterThan(10);
    }
  });

  it('selects the scrape jobs the compose Prometheus defines (deploy/compose/prometheus/prometheus.yml)', () => {
    const config = parse(readRepoFile('deploy/compose/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string }[] };
    expect(config.scrape_configs.map((c) => c.job_name).sort()).toEqual(JOBS);
  });

  it('has unique alert names', () => {
    const names = rules.map((r) => r.alert);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });
});

describe('runbook links into docs/operations.md', () => {
  const anchors = new Set(headings.map((h) => h.anchor));

  it.each(rules.map((r) => [r.alert, r] as const))('%s links to its own heading of the guide', (name, rule) => {
    const url = rule.annotations!.runbook_url!;
    expect(url).toMatch(new RegExp(`^${OPERATIONS_GUIDE.replace('.', '\\.')}#[a-z0-9_-]+$`));
    const anchor = url.slice(url.indexOf('#') + 1);
    expect(anchors).toContain(anchor);
    expect(headings.find((h) => h.anchor === anchor)?.text).toBe(name);
  });

  it('the guide has one subsection per alert under "Alerts", and none for alerts that do not exist', () => {
    const start = headings.findIndex((h) => h.level === 2 && h.text === 'Alerts');
    expect(start).toBeGreaterThanOrEqual(0);
    const end = headings.findIndex((h, i) => i > start && h.level <= 2);
    const sections = headings.slice(start + 1, end === -1 ? undefined : end).filter((h) => h.level === 3).map((h) => h.text);
    expect([...sections].sort()).toEqual(rules.map((r) => r.alert).sort());
  });

  it('every internal link of the guide resolves to a heading', () => {
    const anchors = new Set(headings.map((h) => h.anchor));
    const links = [...guide.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(20);
    expect(links.filter((l) => !anchors.has(l))).toEqual([]);
  });

  it("the guide's YAML snippets parse", () => {
    const blocks = fencedBlocks(guide, 'yaml');
    expect(blocks.length).toBeGreaterThanOrEqual(1);
    for (const block of blocks) expect(() => void parse(block, { uniqueKeys: true })).not.toThrow();
  });

  it('headings get the anchors GitHub gives them', () => {
    expect(markdownHeadings('# Upgrades and rollback\n## `QUEUE_PREFIX` & co.\n```\n# not a heading\n```\n### Sizing\n### Sizing\n')).toEqual([
      { level: 1, text: 'Upgrades and rollback', anchor: 'upgrades-and-rollback' },
      { level: 2, text: '`QUEUE_PREFIX` & co.', anchor: 'queue_prefix--co' },
      { level: 3, text: 'Sizing', anchor: 'sizing' },
      { level: 3, text: 'Sizing', anchor: 'sizing-1' },
    ]);
  });
});

describe('PromQL shape of the expressions', () => {
  it.each(rules.map((r) => [r.alert, r] as const))('%s: tokens, brackets, functions and matchers are PromQL', (_name, rule) => {
    const shape = analyzePromql(rule.expr);
    expect(shape.selectors.length).toBeGreaterThan(0);
    for (const call of shape.calls) expect(PROMQL_FUNCTIONS.has(call) || PROMQL_AGGREGATIONS.has(call)).toBe(true);
  });

  it.each(rules.map((r) => [r.alert, r] as const))('%s: counters through rate/increase, fleet gauges through max, jobs by their names', (_name, rule) => {
    for (const s of analyzePromql(rule.expr).selectors) {
      if (/_(total|bucket|count|sum)$/.test(s.metric)) {
        // Counters and histogram series count per process: only their rate or increase is summed.
        expect([s.metric, s.range, s.enclosingCall]).toEqual([s.metric, true, expect.stringMatching(/^(rate|increase)$/)]);
      }
      if (FLEET_GAUGES.includes(s.metric)) {
        // Every process reports the same fleet-wide value: a sum would count it once per process.
        expect([s.metric, s.enclosingCall]).toEqual([s.metric, expect.stringMatching(/^(max|absent)$/)]);
      }
      for (const m of s.matchers.filter((x) => x.label === 'job')) {
        expect(m.op).toBe('=');
        expect(JOBS).toContain(m.value);
      }
      if (s.metric === 'up') expect(s.matchers.some((m) => m.label === 'job')).toBe(true);
    }
  });

  it('the transfer budget alerts compare the 30-day window with the exported budget (UPSTREAM_MONTHLY_BYTES), not a byte count written in the rule', () => {
    const byName = new Map(rules.map((r) => [r.alert, r]));
    const ratio = 'max(scenecache_upstream_window_bytes) / max(scenecache_upstream_budget_bytes)';
    const flat = (expr: string) => expr.replace(/\s+/g, ' ').trim();
    const window = ['scenecache_upstream_window_bytes', 'max', []];
    const budget = ['scenecache_upstream_budget_bytes', 'max', []];

    const high = byName.get('ScenecacheUpstreamBudgetHigh');
    expect(high).toBeDefined();
    expect(flat(high!.expr)).toBe(`${ratio} > 0.9`);
    expect(analyzePromql(high!.expr).selectors.map((s) => [s.metric, s.enclosingCall, s.matchers])).toEqual([window, budget]);
    expect([high!.for, high!.labels?.severity]).toEqual(['15m', 'warning']);

    // At or over 100 %, or (workers start a file only when it fits, so the window stops short of
    // 100 %) jobs waited for the budget; the ratio is the value either way.
    const exhausted = byName.get('ScenecacheUpstreamBudgetExhausted');
    expect(exhausted).toBeDefined();
    expect(flat(exhausted!.expr)).toBe(
      `( ${ratio} >= 1 ) or ( ${ratio} and on () sum(increase(scenecache_lock_waits_total{reason="upstream-budget"}[15m])) > 0 )`,
    );
    expect(analyzePromql(exhausted!.expr).selectors.map((s) => [s.metric, s.enclosingCall, s.matchers])).toEqual([
      window,
      budget,
      window,
      budget,
      ['scenecache_lock_waits_total', 'increase', [{ label: 'reason', op: '=', value: 'upstream-budget' }]],
    ]);
    expect([exhausted!.for, exhausted!.labels?.severity]).toEqual(['5m', 'critical']);
  });

  it('the cache budget alert compares the registered bytes with the exported budget (GLOBAL_CACHE_MAX_BYTES) for 30 minutes', () => {
    const rule = rules.find((r) => r.alert === 'ScenecacheCacheOverBudget');
    expect(rule).toBeDefined();
    expect(rule!.expr.replace(/\s+/g, ' ').trim()).toBe('max(scenecache_global_cache_bytes) > max(scenecache_global_cache_budget_bytes)');
    expect(analyzePromql(rule!.expr).selectors.map((s) => [s.metric, s.enclosingCall, s.matchers])).toEqual([
      ['scenecache_global_cache_bytes', 'max', []],
      ['scenecache_global_cache_budget_bytes', 'max', []],
    ]);
    expect([rule!.for, rule!.labels?.severity]).toEqual(['30m', 'warning']);
    expect(groups.find((g) => g.rules.includes(rule!))?.name).toBe('scenecache-cache');
  });

  it.each(rules.map((r) => [r.alert, r] as const))('%s: annotation templates are balanced and use template functions', (_name, rule) => {
    for (const text of Object.values(rule.annotations ?? {})) {
      expect(text.split('{{').length).toBe(text.split('}}').length);
      for (const [, body] of text.matchAll(/\{\{(.*?)\}\}/g)) {
        const words = body!.trim().split(/\s*\|\s*|\s+/);
        expect(words[0]).toMatch(/^\$(value|labels\.[a-z_]+)$/);
        for (const fn of words.slice(1).filter((w) => /^[a-zA-Z]/.test(w))) expect(TEMPLATE_FUNCTIONS).toContain(fn);
      }
    }
  });

  it('the checker itself rejects what is not PromQL, and reads what is', () => {
    expect(() => analyzePromql('sum(rate(x_total[5m])')).toThrow(/unclosed/);
    expect(() => analyzePromql('sum(rate(x_total[5m])))')).toThrow(/unbalanced/);
    expect(() => analyzePromql('sumz(x)')).toThrow(/unknown function sumz/);
    expect(() => analyzePromql('x{job=scenecache-api}')).toThrow(/malformed matcher/);
    expect(() => analyzePromql('max by state (x)')).toThrow(/label list/);
    expect(() => analyzePromql('rate(x_total[5 minutes])')).toThrow();
    expect(analyzePromql('sum by (le) (rate(a_bucket{route=~"/v1/.*",route!~"/v1/admin/.*"}[5m])) and on () max(b offset 1h) > 0')).toEqual({
      selectors: [
        { metric: 'a_bucket', matchers: [{ label: 'route', op: '=~', value: '/v1/.*' }, { label: 'route', op: '!~', value: '/v1/admin/.*' }], range: true, enclosingCall: 'rate' },
        { metric: 'b', matchers: [], range: false, enclosingCall: 'max' },
      ],
      calls: ['sum', 'rate', 'max'],
      groupingLabels: ['le'],
    });
    expect(analyzePromql('min_over_time(sum(max by (state) (q{state=~"a|b"}))[30m:1m]) > 0').selectors[0]).toMatchObject({ metric: 'q', enclosingCall: 'max', range: false });
  });
});
