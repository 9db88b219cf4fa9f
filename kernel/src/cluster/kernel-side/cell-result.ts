/**
 * Builds the one execute_result of a distributed cell from the per-rank last
 * values: `application/json` is the array indexed by rank, `text/plain` shows
 * one line per rank, or one line when every rank agrees.
 */
import type { DisplayPayload } from "../../protocol/backend";
import type { CellValue } from "../rank-messages";

/** Undefined when no rank ended in a value (the cell gets no execute_result). */
export function buildCellResult(values: readonly CellValue[]): DisplayPayload | undefined {
  if (values.every((value) => value.json === undefined && value.text === undefined)) return undefined;
  const json = values.map((value) => (value.json === undefined ? null : value.json));
  const texts = values.map((value) => value.text ?? "undefined");
  const allSame = texts.every((text) => text === texts[0]) && values.length > 1;
  const plain = allSame
    ? `[all ${values.length} ranks] ${texts[0]}`
    : texts.map((text, rank) => `[rank ${rank}] ${indentContinuation(text)}`).join("\n");
  return { data: { "text/plain": plain, "application/json": json } };
}

/** Multi-line values keep their continuation lines under the first. */
function indentContinuation(text: string): string {
  return text.replace(/\n/g, "\n         ");
}
