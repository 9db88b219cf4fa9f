// The WGSL pieces the webgpu kernels share (kernel/src/compute/webgpu/wgsl-preamble.ts): binding
// declarations numbered in order, and the entry point over a flattened grid of workgroups.
import { test } from "node:test";
import assert from "node:assert/strict";
import { flatGridMain, wgslBindings } from "../../kernel/src/compute/webgpu/wgsl-preamble";

test("bindings are declared in order from the first number, storage as array<f32> unless typed", () => {
  assert.equal(
    wgslBindings([["qkv", "read"], ["out", "read_write"], ["s", "uniform", "Sizes"], ["idx", "read", "array<u32>"]], 1),
    [
      "@group(0) @binding(1) var<storage, read> qkv: array<f32>;",
      "@group(0) @binding(2) var<storage, read_write> out: array<f32>;",
      "@group(0) @binding(3) var<uniform> s: Sizes;",
      "@group(0) @binding(4) var<storage, read> idx: array<u32>;",
    ].join("\n"),
  );
  assert.equal(wgslBindings([]), "");
});

test("the entry point gives its body the flat workgroup index and the invocation's index", () => {
  const main = flatGridMain(64, "\n  out[group * 64u + lid] = 1.0;");
  assert.match(main, /^@compute @workgroup_size\(64\)\nfn main\(@builtin\(workgroup_id\) wid: vec3<u32>, @builtin\(num_workgroups\) groups: vec3<u32>, @builtin\(local_invocation_index\) lid: u32\) \{/);
  assert.match(main, /let group = wid\.x \+ wid\.y \* groups\.x;\n  out\[group \* 64u \+ lid\] = 1\.0;\n\}$/);
});
