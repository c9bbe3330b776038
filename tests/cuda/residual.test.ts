// kernels/layernorm.cu's residual_forward: out = a + b, against src/reference/residual.ts.
// One f32 add per element, rounded once to the dtype, so every comparison is exact; the
// output may be either input's buffer, and misaligned arrays take the scalar path.
import { it } from 'vitest';
import { residualForward } from '../../src/reference/residual.ts';
import { expectClose } from '../helpers/expect-close.ts';
import { DT, describeCuda, randomFloats, roundBf16 } from './helpers.ts';

const EXACT = { rtol: 0, atol: 0 };
const DTYPES = ['f32', 'bf16'] as const;
// Around the vector widths (4 f32, 8 bf16, per thread) and one block (256 threads).
const SIZES = [1, 5, 17, 33, 130, 2051];
const ALIAS = ['separate', 'out = a', 'out = b'];

describeCuda('residual', (h) => {
  for (const n of SIZES) {
    for (const dt of DTYPES) {
      for (let alias = 0; alias < 3; alias++) {
        for (const misalign of n === 130 || n === 2051 ? [0, 1] : [0]) {
          it(`forward N=${n} ${dt}, ${ALIAS[alias]}${misalign ? ', misaligned' : ''}`, () => {
            const r = (x: Float32Array) => (dt === 'bf16' ? roundBf16(x) : x);
            const a = r(randomFloats(n, n, 3));
            const b = r(randomFloats(n, n + 1));
            const out = new Float32Array(n).fill(NaN);
            h.kernel('residualForward', [out, a, b], [DT[dt], alias, misalign]);
            const want = new Float32Array(n);
            residualForward(want, a, b, n);
            expectClose(out, r(want), EXACT, 'out');
          });
        }
      }
    }
  }
});
