/**
 * Loss curves the training techniques return: one point per evaluation,
 * against samples seen and wall time, so runs of different techniques and
 * rank counts compare on the same axes.
 */

/** One loss-curve point: after `samples` training samples (all ranks together), at `ms` since the run started. */
export interface LossPoint {
  step: number;
  samples: number;
  loss: number;
  /** milliseconds since the run started */
  ms: number;
}

/** The first point whose loss is at or below `target`, or undefined if the curve never gets there. */
export function firstBelow(curve: readonly LossPoint[], target: number): LossPoint | undefined {
  return curve.find((p) => p.loss <= target);
}
