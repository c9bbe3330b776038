// The element type of every reference op. The model runs in f32 (Float32Array), the
// gradient tests run the same code in f64 (Float64Array) so finite differences are
// exact enough to check every element tightly.
export type Buf = Float32Array | Float64Array;
