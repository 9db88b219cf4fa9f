/**
 * The colour of each span category, shared by the static HTML picture
 * (render-html.ts) and the JupyterLab extension (extension/src/traces.ts
 * imports this file from the kernel's build), so both draw a category the
 * same way. Chosen to read on light and dark backgrounds.
 */
import type { SpanCategory } from "./span";

export const CATEGORY_COLORS: Readonly<Record<SpanCategory, string>> = {
  compute: "#4c78a8",
  comm: "#f58518",
  data: "#54a24b",
  idle: "#9d9d9d",
  other: "#b279a2",
};
