// memory.copy inside a shared WebAssembly memory, callable from JavaScript.
//
// Why not TypedArray#set: V8 copies into and out of a SharedArrayBuffer with
// relaxed-atomic word copies at about half the speed of a plain copy
// (docs/collectives.md, "Figures behind the code"). WebAssembly's bulk-memory copy inside
// the shared memory is a plain memmove, the same speed as unshared memory.
import { MODULE_HEADER, section, str } from "../wasm-encoding";
import { Wasm, type WasmMemory } from "./wasm-api";

/** Copies `bytes` bytes from byte offset `src` to `dst` of the memory (ranges may overlap). */
export type MemoryCopy = (dst: number, src: number, bytes: number) => void;

function moduleBytes(): Uint8Array {
  const body = [0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfc, 0x0a, 0x00, 0x00, 0x0b];
  return new Uint8Array([
    ...MODULE_HEADER,
    // one type: (i32 dst, i32 src, i32 bytes) -> ()
    ...section(1, [0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00]),
    // import env.memory: shared (flag 3), min 1 page, max 65536 pages
    ...section(2, [0x01, ...str("env"), ...str("memory"), 0x02, 0x03, 0x01, 0x80, 0x80, 0x04]),
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, ...str("copy"), 0x00, 0x00]),
    // local.get 0, local.get 1, local.get 2, memory.copy 0 0, end
    ...section(10, [0x01, body.length, ...body]),
  ]);
}

/** memory.copy over `memory` (a shared memory), or undefined where bulk memory is unavailable. */
export function wasmMemoryCopy(memory: WasmMemory): MemoryCopy | undefined {
  const bytes = moduleBytes();
  if (!Wasm.validate(bytes)) return undefined;
  try {
    const instance = new Wasm.Instance(new Wasm.Module(bytes), { env: { memory } });
    return instance.exports.copy as MemoryCopy;
  } catch {
    return undefined;
  }
}
