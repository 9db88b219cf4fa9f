// The slice of the WebAssembly JS API this layer uses. The kernel compiles
// with lib ES2022 and no DOM, which declares no WebAssembly types; Node has
// the API at runtime.
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Adds 64 KiB pages; returns the previous size in pages. */
  grow(pages: number): number;
}

interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  validate(bytes: Uint8Array): boolean;
}

export const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
