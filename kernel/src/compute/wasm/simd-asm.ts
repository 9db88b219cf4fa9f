/**
 * A small WebAssembly assembler for simd-kernels.ts: functions over named
 * locals, written as nested arrays of instruction bytes, and a module that
 * imports its memory (env.memory) instead of declaring one.
 *
 * Only what the kernels use is here: i32 arithmetic on byte offsets and
 * counts, f32 scalars, f32x4 vectors, loads and stores, block/loop/if.
 * Opcodes: https://webassembly.github.io/spec/core/binary/instructions.html
 */
import { MODULE_HEADER, section, sleb, str, uleb, vector } from "../../wasm-encoding";

export type ValueType = "i32" | "f32" | "v128";
const TYPE_CODE: Record<ValueType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

/** Instruction bytes, nested as written; flattened when the function is assembled. */
export type Code = number | Code[];

function flatten(code: Code, out: number[] = []): number[] {
  if (typeof code === "number") out.push(code);
  else for (const c of code) flatten(c, out);
  return out;
}

const simd = (op: number): number[] => [0xfd, ...uleb(op)];

/** Instructions that take their operands from the stack. */
export const op = {
  // i32
  i32: (v: number): Code => [0x41, ...sleb(v | 0)],
  add: 0x6a, sub: 0x6b, mul: 0x6c, divU: 0x6e, and: 0x71, shl: 0x74,
  ltU: 0x49, ltS: 0x48, geU: 0x4f, geS: 0x4e, eq: 0x46, eqz: 0x45,
  select: 0x1b,
  // f32
  f32: (v: number): Code => { const b = new Uint8Array(new Float32Array([v]).buffer); return [0x43, ...b]; },
  f32Add: 0x92, f32Sub: 0x93, f32Mul: 0x94, f32Div: 0x95, f32Sqrt: 0x91,
  f32Load: (offset = 0): Code => [0x2a, 0x02, ...uleb(offset)],
  f32Store: (offset = 0): Code => [0x38, 0x02, ...uleb(offset)],
  f32ConvertI32U: 0xb3,
  // v128 (f32x4 lanes)
  load: (offset = 0): Code => [...simd(0x00), 0x04, ...uleb(offset)],
  store: (offset = 0): Code => [...simd(0x0b), 0x04, ...uleb(offset)],
  splat: simd(0x13) as Code,
  lane: (i: number): Code => [...simd(0x1f), i],
  vconst: (a: number, b: number, c: number, d: number): Code => [...simd(0x0c), ...new Uint8Array(new Float32Array([a, b, c, d]).buffer)],
  vAdd: simd(0xe4) as Code, vSub: simd(0xe5) as Code, vMul: simd(0xe6) as Code, vDiv: simd(0xe7) as Code, vSqrt: simd(0xe3) as Code,
  vLe: simd(0x45) as Code, vGt: simd(0x44) as Code, vMax: simd(0xe9) as Code, vAnd: simd(0x4e) as Code,
  bitselect: simd(0x52) as Code,
} as const;

/** One function: named parameters then named locals, each with its type. */
export class Func {
  readonly #index = new Map<string, number>();
  readonly #types: ValueType[] = [];
  readonly params: ValueType[];

  constructor(params: Record<string, ValueType>, locals: Record<string, ValueType> = {}) {
    for (const [name, type] of [...Object.entries(params), ...Object.entries(locals)]) {
      this.#index.set(name, this.#types.length);
      this.#types.push(type);
    }
    this.params = Object.values(params);
  }

  #at(name: string): number {
    const i = this.#index.get(name);
    if (i === undefined) throw new Error(`simd-asm: no local ${name}`);
    return i;
  }

  get = (name: string): Code => [0x20, ...uleb(this.#at(name))];
  set = (name: string, value: Code): Code => [value, 0x21, ...uleb(this.#at(name))];

  /**
   * for (name = from; name < to; name += step) body — i32, signed compare;
   * `to` and `step` are evaluated on every iteration (pass locals or constants).
   */
  for(name: string, from: Code, to: Code, step: number | Code, body: Code[]): Code {
    return [
      this.set(name, from),
      [0x02, 0x40], [0x03, 0x40],
      this.get(name), to, op.geS, [0x0d, 1],
      body,
      this.set(name, [this.get(name), typeof step === "number" ? op.i32(step) : step, op.add]),
      [0x0c, 0], 0x0b, 0x0b,
    ];
  }

  /** The function's body bytes: local declarations, then code, then end. */
  body(code: Code[]): number[] {
    const locals = this.#types.slice(this.params.length);
    const groups: number[] = [];
    for (const type of locals) groups.push(1, TYPE_CODE[type]);
    const bytes = [...uleb(locals.length), ...groups, ...flatten(code), 0x0b];
    return [...uleb(bytes.length), ...bytes];
  }
}

/** if (condition) then — i32 condition, no result. */
export const ifThen = (condition: Code, then: Code[]): Code => [condition, 0x04, 0x40, then, 0x0b];
/** `a + b` for i32 operands. */
export const add = (a: Code, b: Code): Code => [a, b, op.add];
/** `a * b` for i32 operands. */
export const mul = (a: Code, b: Code): Code => [a, b, op.mul];
/** Horizontal sum of an f32x4 local's lanes, (l0 + l1) + (l2 + l3), as an f32. */
export const hsum = (v: Code): Code => [v, op.lane(0), v, op.lane(1), op.f32Add, v, op.lane(2), v, op.lane(3), op.f32Add, op.f32Add];


/** A module importing env.memory (any size) and exporting each function by name; no results (kernels write memory). */
export function moduleBytes(functions: Array<{ name: string; func: Func; code: Code[] }>): Uint8Array {
  const types = functions.map(({ func }) => [0x60, ...uleb(func.params.length), ...func.params.map((t) => TYPE_CODE[t]), 0]);
  const bytes = [
    ...MODULE_HEADER,
    ...section(1, vector(types)),
    ...section(2, vector([[...str("env"), ...str("memory"), 0x02, 0x00, 0x00]])),
    ...section(3, vector(functions.map((_, i) => uleb(i)))),
    ...section(7, vector(functions.map(({ name }, i) => [...str(name), 0x00, ...uleb(i)]))),
    ...section(10, vector(functions.map(({ func, code }) => func.body(code)))),
  ];
  return new Uint8Array(bytes);
}
