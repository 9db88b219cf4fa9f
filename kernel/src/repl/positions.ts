/**
 * Jupyter counts cursor positions in unicode code points (protocol 5.2+);
 * JavaScript strings and TypeScript count UTF-16 code units.
 */

/** Code point index -> UTF-16 offset in `text` (clamped to the text's end). */
export function codePointsToUtf16(text: string, codePoints: number): number {
  let offset = 0;
  for (let i = 0; i < codePoints && offset < text.length; i++) {
    offset += (text.codePointAt(offset) ?? 0) > 0xffff ? 2 : 1;
  }
  return offset;
}

/** UTF-16 offset -> code point index in `text`. */
export function utf16ToCodePoints(text: string, offset: number): number {
  let count = 0;
  for (let i = 0; i < offset && i < text.length; count++) {
    i += (text.codePointAt(i) ?? 0) > 0xffff ? 2 : 1;
  }
  return count;
}
