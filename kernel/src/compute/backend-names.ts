/**
 * The TensorFlow.js backends distlab can put a rank or the notebook on, by
 * the name TF.js registers them under. Kept apart from backend-choice.ts
 * (which loads them) so the `--tf-backend` flag's spec can list them
 * without loading any backend.
 */
export const TF_BACKENDS = ["wasm", "cpu", "webgpu", "tensorflow"] as const;
export type TfBackendName = (typeof TF_BACKENDS)[number];
