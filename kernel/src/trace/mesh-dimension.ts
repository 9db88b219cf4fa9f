/**
 * The mesh dimension of a communication span, read from its own `group` arg,
 * and the colour the timelines draw it in. compose() (techniques/compose.ts)
 * runs every collective in a group its device mesh names after the axis:
 * "dp[0,1]", "tp[1,0]", "pp[0,0]" (the axis, then the rank's coordinates on
 * the other axes), and its stage messages as "p2p:pp[0,0]:0->2". A span of any
 * other group (the world, a user's sub-group) has no mesh dimension and keeps
 * its category's colour.
 *
 * No imports of its own: the JupyterLab extension bundles it from the
 * kernel's build (extension/src/traces.ts), as it does category-colors.ts.
 */
export const MESH_DIMENSIONS = ["dp", "pp", "tp"] as const;
export type MeshDimension = (typeof MESH_DIMENSIONS)[number];

/** Distinct from each other and from every category's colour (category-colors.ts); read on light and dark backgrounds. */
export const MESH_DIMENSION_COLORS: Readonly<Record<MeshDimension, string>> = {
  dp: "#9d755d",
  pp: "#72b7b2",
  tp: "#eeca3b",
};

/** What the legend says for each dimension. */
export const MESH_DIMENSION_LABELS: Readonly<Record<MeshDimension, string>> = {
  dp: "comm · dp (data parallel)",
  pp: "comm · pp (pipeline)",
  tp: "comm · tp (tensor parallel)",
};

/** "tp[0,1]" -> "tp", "p2p:pp[0,0]:0->2" -> "pp"; undefined for a group no mesh named. */
export function meshDimensionOfGroup(group: string): MeshDimension | undefined {
  const match = /^(?:p2p:)?(dp|pp|tp)\[/.exec(group);
  return match ? (match[1] as MeshDimension) : undefined;
}

/** The mesh dimension of a span: only communication spans whose `args.group` a mesh named have one. */
export function meshDimensionOfSpan(span: { cat: string; args?: { group?: unknown } }): MeshDimension | undefined {
  const group = span.args?.group;
  return span.cat === "comm" && typeof group === "string" ? meshDimensionOfGroup(group) : undefined;
}
