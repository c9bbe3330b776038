// A small stand-in for vitest's test API, so the CUDA kernel tests (tests/cuda/*.test.ts)
// run unchanged on the GPU machine, which has Node (carried) but no npm and no vitest.
// scripts/pack-device.sh bundles those test files with `vitest` aliased to this module;
// the matchers are vitest's own (@vitest/expect on chai), so an assertion means the same
// there as here. Only what the CUDA tests use: describe/it/test (+ .skip, .each),
// before/after hooks, expect. Results print as JSON lines and a one-line summary.
import * as chai from 'chai';
import { JestAsymmetricMatchers, JestChaiExpect, JestExtend } from '@vitest/expect';

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

type Fn = () => unknown | Promise<unknown>;
interface Test {
  name: string;
  fn: Fn | null; // null: skipped
}
interface Suite {
  name: string;
  skip: boolean;
  tests: Array<Test | Suite>;
  beforeAll: Fn[];
  afterAll: Fn[];
  beforeEach: Fn[];
  afterEach: Fn[];
  parent: Suite | null;
}

const root: Suite = { name: '', skip: false, tests: [], beforeAll: [], afterAll: [], beforeEach: [], afterEach: [], parent: null };
let current = root;

function addSuite(name: string, fn: () => void, skip: boolean): void {
  const suite: Suite = { name, skip, tests: [], beforeAll: [], afterAll: [], beforeEach: [], afterEach: [], parent: current };
  current.tests.push(suite);
  const parent = current;
  current = suite;
  try {
    fn();
  } finally {
    current = parent;
  }
}

type Each = <T>(cases: readonly T[]) => (name: string, fn: (c: T) => unknown, timeout?: number) => void;

function format(name: string, c: unknown, i: number): string {
  const args = Array.isArray(c) ? c : [c];
  let k = 0;
  return name.replace(/%[sdifjo#%]/g, (m) => (m === '%%' ? '%' : m === '%#' ? String(i) : String(args[k++])));
}

function makeEach(add: (name: string, fn: Fn) => void): Each {
  return (cases) => (name, fn) => cases.forEach((c, i) => add(format(name, c, i), () => (Array.isArray(c) ? (fn as (...a: unknown[]) => unknown)(...c) : fn(c))));
}

const addTest = (name: string, fn: Fn) => current.tests.push({ name, fn });
const skipTest = (name: string) => current.tests.push({ name, fn: null });

export const describe = Object.assign((name: string, fn: () => void) => addSuite(name, fn, false), {
  skip: (name: string, fn: () => void) => addSuite(name, fn, true),
  each: ((cases: readonly unknown[]) => (name: string, fn: (c: unknown) => void) =>
    cases.forEach((c, i) => addSuite(format(name, c, i), () => (Array.isArray(c) ? (fn as (...a: unknown[]) => void)(...c) : fn(c)), false))) as unknown as Each,
});
export const it = Object.assign((name: string, fn?: Fn, _timeout?: number) => (fn ? addTest(name, fn) : skipTest(name)), {
  skip: (name: string, _fn?: Fn) => skipTest(name),
  each: makeEach(addTest),
  skipIf: (cond: boolean) => (cond ? (name: string) => skipTest(name) : (name: string, fn: Fn) => addTest(name, fn)),
  runIf: (cond: boolean) => (cond ? (name: string, fn: Fn) => addTest(name, fn) : (name: string) => skipTest(name)),
});
export const test = it;
export const beforeAll = (fn: Fn) => current.beforeAll.push(fn);
export const afterAll = (fn: Fn) => current.afterAll.push(fn);
export const beforeEach = (fn: Fn) => current.beforeEach.push(fn);
export const afterEach = (fn: Fn) => current.afterEach.push(fn);
/** vitest's provide/inject from a global setup: there is none here. */
export const inject = (_key: string): undefined => undefined;
export const expect = chai.expect as unknown as typeof import('vitest').expect;

interface Tally {
  passed: number;
  failed: number;
  skipped: number;
}

function hooks(suite: Suite | null, pick: (s: Suite) => Fn[]): Fn[] {
  const chain: Fn[][] = [];
  for (let s = suite; s; s = s.parent) chain.unshift(pick(s));
  return chain.flat();
}

async function runSuite(suite: Suite, path: string[], tally: Tally, skip: boolean): Promise<void> {
  const skipped = skip || suite.skip;
  const names = suite.name ? [...path, suite.name] : path;
  if (!skipped) for (const h of suite.beforeAll) await h();
  for (const t of suite.tests) {
    if ('tests' in t) {
      await runSuite(t, names, tally, skipped);
      continue;
    }
    const name = [...names, t.name].join(' > ');
    if (skipped || !t.fn) {
      tally.skipped++;
      console.log(JSON.stringify({ test: name, status: 'skipped' }));
      continue;
    }
    const start = performance.now();
    try {
      for (const h of hooks(suite, (s) => s.beforeEach)) await h();
      await t.fn();
      for (const h of hooks(suite, (s) => s.afterEach).reverse()) await h();
      tally.passed++;
      console.log(JSON.stringify({ test: name, status: 'passed', ms: Math.round(performance.now() - start) }));
    } catch (e) {
      tally.failed++;
      const message = e instanceof Error ? e.message : String(e);
      console.log(JSON.stringify({ test: name, status: 'failed', ms: Math.round(performance.now() - start), error: message.slice(0, 2000) }));
    }
  }
  if (!skipped) for (const h of suite.afterAll) await h();
}

/** Runs every registered test in registration order; resolves to the number that failed. */
export async function runAll(label: string): Promise<number> {
  const tally: Tally = { passed: 0, failed: 0, skipped: 0 };
  await runSuite(root, [], tally, false);
  console.log(JSON.stringify({ bench: 'cuda-tests', label, ...tally }));
  console.log(`${label}: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
  return tally.failed;
}
