/**
 * WGSL that the compute shaders of this folder share: their binding
 * declarations and their entry point over a flattened grid of workgroups
 * (dispatch.ts's splitGroups spreads more than 65,535 workgroups over y).
 */

/** How a shader uses a binding: a storage buffer it reads, one it writes (and may read), or a uniform. */
export type WgslAccess = "read" | "read_write" | "uniform";

/** `[name, access, type]`; a storage buffer's type is `array<f32>` unless given. */
export type WgslBinding = readonly [name: string, access: WgslAccess, type?: string];

/** `@group(0) @binding(i) var<...> name: type;` per binding, in order, numbered from `first`. */
export function wgslBindings(bindings: readonly WgslBinding[], first = 0): string {
  return bindings
    .map(([name, access, type], i) => {
      const space = access === "uniform" ? "uniform" : `storage, ${access}`;
      return `@group(0) @binding(${first + i}) var<${space}> ${name}: ${type ?? "array<f32>"};`;
    })
    .join("\n");
}

/**
 * The entry point `main` with `threads` invocations per workgroup. `body`
 * (WGSL statements) sees `group`, the workgroup's index on the flattened
 * grid (wid.x + wid.y * groups.x), and `lid`, the invocation's index in its
 * workgroup.
 */
export function flatGridMain(threads: number, body: string): string {
  return /* wgsl */ `@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * groups.x;${body}
}`;
}
