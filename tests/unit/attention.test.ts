import { describe, it } from 'vitest';
import { attentionBackward, attentionForward } from '../../src/reference/attention.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { checkGradients, filled, randn, Rng, weightedSum } from '../helpers/finite-diff.ts';

const B = 2, T = 3, C = 6, NH = 2, HS = C / NH;

function run(qkv: Float64Array, b = B, t = T) {
  const out = new Float64Array(b * t * C);
  const preatt = new Float64Array(b * NH * t * t);
  const att = new Float64Array(b * NH * t * t);
  attentionForward(out, preatt, att, qkv, b, t, C, NH);
  return { out, preatt, att };
}

describe('attention', () => {
  it('at t=0 returns v0 of each head', () => {
    const qkv = randn(B * T * 3 * C, new Rng(1));
    const { out } = run(qkv);
    for (let b = 0; b < B; b++) {
      const v0 = qkv.subarray(b * T * 3 * C + 2 * C, b * T * 3 * C + 3 * C);
      expectClose(out.subarray(b * T * C, b * T * C + C), v0, { rtol: 1e-14, atol: 0 }, `b=${b} t=0`);
    }
  });

  it('matches softmax(q k^T / sqrt(HS) + causal mask) v written out per head', () => {
    const qkv = randn(B * T * 3 * C, new Rng(2));
    const { out, preatt, att } = run(qkv);
    const q = (b: number, t: number, h: number, i: number) => qkv[(b * T + t) * 3 * C + h * HS + i];
    const k = (b: number, t: number, h: number, i: number) => qkv[(b * T + t) * 3 * C + C + h * HS + i];
    const v = (b: number, t: number, h: number, i: number) => qkv[(b * T + t) * 3 * C + 2 * C + h * HS + i];
    const expOut = new Float64Array(B * T * C);
    const expPre = new Float64Array(B * NH * T * T);
    const expAtt = new Float64Array(B * NH * T * T);
    for (let b = 0; b < B; b++) for (let h = 0; h < NH; h++) for (let t = 0; t < T; t++) {
      const s: number[] = [];
      for (let u = 0; u <= t; u++) {
        let d = 0;
        for (let i = 0; i < HS; i++) d += q(b, t, h, i) * k(b, u, h, i);
        s.push(d / Math.sqrt(HS));
      }
      const e = s.map(Math.exp);
      const z = e.reduce((x, y) => x + y, 0);
      const row = ((b * NH + h) * T + t) * T;
      for (let u = 0; u <= t; u++) {
        expPre[row + u] = s[u];
        expAtt[row + u] = e[u] / z;
        for (let i = 0; i < HS; i++) expOut[(b * T + t) * C + h * HS + i] += (e[u] / z) * v(b, u, h, i);
      }
    }
    expectClose(preatt, expPre, { rtol: 1e-12, atol: 1e-14 }, 'preatt');
    expectClose(att, expAtt, { rtol: 1e-12, atol: 1e-14 }, 'att');
    expectClose(out, expOut, { rtol: 1e-12, atol: 1e-14 }, 'out');
    // softmax rows sum to 1 over the unmasked positions
    const sums: number[] = [];
    for (let r = 0; r < B * NH * T; r++) sums.push(att.subarray(r * T, (r + 1) * T).reduce((x, y) => x + y, 0));
    expectClose(sums, new Array(B * NH * T).fill(1), { rtol: 1e-14 }, 'row sums');
  });

  it('is causal: changing a later token changes no earlier output', () => {
    const qkv = randn(1 * 4 * 3 * C, new Rng(3));
    const before = run(qkv, 1, 4).out;
    for (let c = 0; c < 3 * C; c++) qkv[3 * 3 * C + c] += 1;
    const after = run(qkv, 1, 4).out;
    expectClose(after.subarray(0, 3 * C), before.subarray(0, 3 * C), { rtol: 0, atol: 0 }, 'outputs at t<3');
  });

  it('stays finite for large scores (softmax subtracts the max)', () => {
    const qkv = randn(B * T * 3 * C, new Rng(4), 100);
    const { out } = run(qkv);
    expectClose(out.map((x) => (Number.isFinite(x) ? 0 : 1)), new Float64Array(out.length), { atol: 0 }, 'finite');
  });

  it('backward matches finite differences', () => {
    const rng = new Rng(5);
    const qkv = randn(B * T * 3 * C, rng);
    const w = randn(B * T * C, rng);
    checkGradients('attention', {
      inputs: { qkv },
      loss: () => weightedSum(run(qkv).out, w),
      backward: (prior) => {
        const { att } = run(qkv);
        const dqkv = filled(B * T * 3 * C, prior);
        const n = B * NH * T * T;
        attentionBackward(dqkv, new Float64Array(n), new Float64Array(n), w, qkv, att, B, T, C, NH);
        return { qkv: dqkv };
      },
    });
  });

  it('backward also gives d loss / d att and d loss / d preatt', () => {
    const rng = new Rng(6);
    const qkv = randn(B * T * 3 * C, rng);
    const w = randn(B * T * C, rng);
    const { att } = run(qkv);
    const n = B * NH * T * T;
    const dpreatt = new Float64Array(n);
    const datt = new Float64Array(n);
    attentionBackward(new Float64Array(B * T * 3 * C), dpreatt, datt, w, qkv, att, B, T, C, NH);
    // out is linear in att: d/datt[b,h,t,u] = v_u . w[b,t,h]
    const expDatt = new Float64Array(n);
    const expDpre = new Float64Array(n);
    for (let b = 0; b < B; b++) for (let h = 0; h < NH; h++) for (let t = 0; t < T; t++) {
      const row = ((b * NH + h) * T + t) * T;
      for (let u = 0; u <= t; u++) {
        for (let i = 0; i < HS; i++) expDatt[row + u] += qkv[(b * T + u) * 3 * C + 2 * C + h * HS + i] * w[(b * T + t) * C + h * HS + i];
      }
      let dot = 0;
      for (let u = 0; u <= t; u++) dot += att[row + u] * expDatt[row + u];
      for (let u = 0; u <= t; u++) expDpre[row + u] = att[row + u] * (expDatt[row + u] - dot);
    }
    expectClose(datt, expDatt, { rtol: 1e-12, atol: 1e-14 }, 'datt');
    expectClose(dpreatt, expDpre, { rtol: 1e-12, atol: 1e-14 }, 'dpreatt');
  });
});
