// The mesh dimension of a comm span and its colour are the kernel's own (kernel/src/trace/mesh-dimension.ts,
// no imports of its own), bundled from its build, so the renderer classifies spans as compose() names its groups.
export { MESH_DIMENSIONS, MESH_DIMENSION_COLORS, MESH_DIMENSION_LABELS, meshDimensionOfSpan, type MeshDimension } from "distlab/dist/trace/mesh-dimension";
