/**
 * A TypeScript type text for a runtime value, so that a variable moved by
 * `%dist push/pull/scatter/gather` type-checks in later cells. Coarse on
 * purpose: primitives, typed arrays, arrays of one element type; `any`
 * for everything else.
 */
export function typeTextOf(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "number":
    case "string":
    case "boolean":
    case "bigint":
      return typeof value;
    case "undefined":
      return "undefined";
    case "object":
      break;
    default:
      return "any";
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return value.constructor.name;
  if (Array.isArray(value)) {
    const elements = new Set(value.map(typeTextOf));
    if (elements.size === 1) {
      const [element] = elements;
      return /^\w+$/.test(element!) ? `${element}[]` : `Array<${element}>`;
    }
    return "any[]";
  }
  return "any";
}
