// Dropout's mask, shared by the kernels that apply it (dropout.wgsl, attention.wgsl take
// it in with `// #include dropout_mask`). The same function as src/core/dropout.ts, bit
// for bit: element i of the mask with key `key` is kept when a counter-based hash of (i,
// key) is at least DROP_THRESHOLD (round(p * 2^32)), and a kept element is multiplied by
// DROP_SCALE (1/(1-p) rounded to f32). Masks are recomputed, never stored.

override DROP_THRESHOLD: u32 = 0u;
override DROP_SCALE: f32 = 1.0;

// Chris Wellons' lowbias32 (u32 products wrap, as Math.imul's do).
fn lowbias32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

// What element i is multiplied by: DROP_SCALE where kept, 0 where dropped.
fn drop_factor(key: u32, i: u32) -> f32 {
  return select(0.0, DROP_SCALE, lowbias32(lowbias32(i ^ key) + key) >= DROP_THRESHOLD);
}
