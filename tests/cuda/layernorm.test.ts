// kernels/layernorm.cu: LayerNorm forward (a warp per row), the residual add fused into it,
// and the deterministic backward (per-block dweight/dbias partials reduced in a fixed order),
// against src/reference/layernorm.ts and residual.ts.
//
// f32: 1e-5 relative to the reference, which sums in f64. bf16: the reference runs in f32 on
// the bf16-rounded inputs; an activation the kernel stores in bf16 is within half a bf16 ulp
// (2^-8 relative) of the reference's f32 value, so rtol 4e-3 there: tight enough that a row
// or column read from the wrong place fails. Statistics and parameter gradients stay f32
// in both modes.
import { expect, it } from 'vitest';
import { layernormBackward, layernormForward } from '../../src/reference/layernorm.ts';
import { residualForward } from '../../src/reference/residual.ts';
import { expectClose, type Tolerance } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, roundBf16, type CudaHarness } from './helpers.ts';

const DTYPES = ['f32', 'bf16'] as const;
type DtypeName = (typeof DTYPES)[number];

const F32: Tolerance = { rtol: 1e-5, atol: 1e-5 };
const BF16_ACT: Tolerance = { rtol: 4e-3, atol: 1e-5 };
const actTol = (dt: DtypeName) => (dt === 'bf16' ? BF16_ACT : F32);
const asAct = (x: Float32Array, dt: DtypeName) => (dt === 'bf16' ? roundBf16(x) : x);

// [N, C]: odd C (scalar paths), C a multiple of both vector widths (4 f32, 8 bf16), rows
// over several forward blocks (8 rows each) and backward blocks (32 rows each, so several
// partials to reduce), and rows wider than one pass of a warp or of a backward block.
const SHAPES: [number, number][] = [
  [1, 1],
  [5, 3],
  [17, 7],
  [5, 33],
  [3, 130],
  [4, 264],
  [70, 7],
  [40, 24],
  [2, 2056],
];

/** Inputs with a different mean and spread per row, so mean and rstd both matter. */
function rows(N: number, C: number, seed: number): Float32Array {
  const x = randomFloats(N * C, seed);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) x[n * C + c] = x[n * C + c] * (0.5 + (n % 4)) + 0.3 * (n % 5) - 0.5;
  return x;
}

function forwardRef(inp: Float32Array, w: Float32Array, b: Float32Array, N: number, C: number) {
  const out = new Float32Array(N * C);
  const mean = new Float32Array(N);
  const rstd = new Float32Array(N);
  layernormForward(out, mean, rstd, inp, w, b, N, C);
  return { out, mean, rstd };
}

interface Grads {
  dinp: Float32Array;
  dw: Float32Array;
  db: Float32Array;
}

function backwardCase(N: number, C: number, dt: DtypeName) {
  const inp = asAct(rows(N, C, 40 + C), dt);
  const w = randomFloats(C, 41, 1.5);
  const { mean, rstd } = forwardRef(inp, w, randomFloats(C, 42), N, C);
  return {
    inp,
    w,
    mean,
    rstd,
    dout: asAct(randomFloats(N * C, 43), dt),
    // Nonzero starting gradients: every output accumulates.
    dinp0: asAct(randomFloats(N * C, 44), dt),
    dw0: randomFloats(C, 45),
    db0: randomFloats(C, 46),
  };
}

function runBackward(h: CudaHarness, c: ReturnType<typeof backwardCase>, N: number, C: number, dt: DtypeName): Grads {
  const g = { dinp: c.dinp0.slice(), dw: c.dw0.slice(), db: c.db0.slice() };
  h.kernel('layernormBackward', [g.dinp, g.dw, g.db, c.dout, c.inp, c.w, c.mean, c.rstd], [DT[dt], N, C]);
  return g;
}

describeCuda('layernorm', (h) => {
  for (const [N, C] of SHAPES) {
    for (const dt of DTYPES) {
      it(`forward N=${N} C=${C} ${dt}`, () => {
        const inp = asAct(rows(N, C, C), dt);
        const w = randomFloats(C, 2, 1.5);
        const b = randomFloats(C, 3);
        const out = new Float32Array(N * C).fill(NaN);
        const mean = new Float32Array(N).fill(NaN);
        const rstd = new Float32Array(N).fill(NaN);
        h.kernel('layernormForward', [out, mean, rstd, inp, w, b], [DT[dt], N, C]);
        const want = forwardRef(inp, w, b, N, C);
        expectClose(mean, want.mean, { rtol: 1e-5, atol: 1e-6 }, 'mean');
        expectClose(rstd, want.rstd, { rtol: 1e-5, atol: 0 }, 'rstd');
        expectClose(out, want.out, actTol(dt), 'out');
      });

      it(`fused residual + forward N=${N} C=${C} ${dt}`, () => {
        const a = asAct(rows(N, C, 10 + C), dt);
        const b = asAct(randomFloats(N * C, 11), dt);
        const w = randomFloats(C, 12, 1.5);
        const bias = randomFloats(C, 13);
        const residual = new Float32Array(N * C).fill(NaN);
        const out = new Float32Array(N * C).fill(NaN);
        const mean = new Float32Array(N).fill(NaN);
        const rstd = new Float32Array(N).fill(NaN);
        h.kernel('fusedResidualLayernormForward', [residual, out, mean, rstd, a, b, w, bias], [DT[dt], N, C]);
        // The residual is one add rounded once to the dtype: exact. The normalised row is
        // the stored (rounded) residual's, as layernorm_forward of it would give.
        const res = new Float32Array(N * C);
        residualForward(res, a, b, N * C);
        const wantRes = asAct(res, dt);
        expectClose(residual, wantRes, { rtol: 0, atol: 0 }, 'residual');
        const want = forwardRef(wantRes, w, bias, N, C);
        expectClose(mean, want.mean, { rtol: 1e-5, atol: 1e-6 }, 'mean');
        expectClose(rstd, want.rstd, { rtol: 1e-5, atol: 0 }, 'rstd');
        expectClose(out, want.out, actTol(dt), 'out');
      });

      it(`backward N=${N} C=${C} ${dt}: dinp, dweight, dbias accumulate`, () => {
        const c = backwardCase(N, C, dt);
        const got = runBackward(h, c, N, C, dt);
        const want = { dinp: c.dinp0.slice(), dw: c.dw0.slice(), db: c.db0.slice() };
        layernormBackward(want.dinp, want.dw, want.db, c.dout, c.inp, c.w, c.mean, c.rstd, N, C);
        expectClose(got.dinp, want.dinp, actTol(dt), 'dinp');
        expectClose(got.dw, want.dw, F32, 'dweight');
        expectClose(got.db, want.db, F32, 'dbias');
      });
    }
  }

  it('backward is bit-identical on a second run (several partials, bf16 and f32)', () => {
    for (const [N, C, dt] of [
      [70, 7, 'bf16'],
      [40, 24, 'f32'],
    ] as const) {
      const c = backwardCase(N, C, dt);
      const a = runBackward(h, c, N, C, dt);
      const b = runBackward(h, c, N, C, dt);
      for (const k of ['dinp', 'dw', 'db'] as const) expect(new Uint32Array(a[k].buffer)).toEqual(new Uint32Array(b[k].buffer));
    }
  });
});
