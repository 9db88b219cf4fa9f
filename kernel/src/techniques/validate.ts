/**
 * Option checks shared by the technique files: synchronous, and every error
 * names the option as `<technique>.<field>` so a bad value fails before any
 * training starts.
 */

export function checkNumber(name: string, value: unknown): number {
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  return value;
}

/** An integer in [min, max]. */
export function checkInteger(name: string, value: unknown, min: number, max = Infinity): number {
  checkNumber(name, value);
  const n = value as number;
  if (!Number.isInteger(n) || n < min || n > max) {
    const range = max === Infinity ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new RangeError(`${name} must be ${range}, got ${n}`);
  }
  return n;
}

/** A number in the interval; `open` excludes the bound on that side. */
export function checkRange(name: string, value: unknown, low: number, high: number, open: { low?: boolean; high?: boolean } = {}): number {
  const n = checkNumber(name, value);
  const aboveLow = open.low ? n > low : n >= low;
  const belowHigh = open.high ? n < high : n <= high;
  if (!aboveLow || !belowHigh) {
    throw new RangeError(`${name} must be in ${open.low ? "(" : "["}${low}, ${high}${open.high ? ")" : "]"}, got ${n}`);
  }
  return n;
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be true or false, got ${describe(value)}`);
  return value;
}

export function checkOneOf<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== "string" || !choices.includes(value as T)) {
    throw new RangeError(`${name} must be one of ${choices.join("|")}, got ${describe(value)}`);
  }
  return value as T;
}

/** Fails on option names the technique does not know (a typo would otherwise be ignored silently). */
export function checkKnownKeys(technique: string, options: object, known: object): void {
  for (const key of Object.keys(options)) {
    if (!Object.prototype.hasOwnProperty.call(known, key)) {
      throw new TypeError(`${technique}.${key} is not an option; known: ${Object.keys(known).join(", ")}`);
    }
  }
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  return String(value);
}
