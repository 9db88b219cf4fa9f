/**
 * `import ... from "distlab/techniques"` in a cell: data-parallel training
 * techniques, one file each, sharing the shape described in types.ts.
 *
 * How they compose. Within one training step they apply in this order, and
 * each stage takes the previous one's output:
 *
 *   1. accumulate  GradientAccumulation: m micro-batches' gradients summed
 *                  locally and divided by m (no communication);
 *   2. compress    a GradientSync that encodes (TopKCompression,
 *                  QsgdCompression, PowerSgdCompression)...
 *   3. sync        ...exchanges and decodes, or AllReduceMean, or DDP's
 *                  bucketed allReduce overlapped with backward;
 *   4. step        Sgd, the same update on every rank.
 *
 * e.g. accumulation over a compressed sync:
 *   const dp = new DataParallel(model, dist, { lr: 0.1, gradientSync: new TopKCompression({ ratio: 0.01 }) });
 *   const acc = new GradientAccumulation(dp, { microBatches: 4 });
 *   await acc.step(microBatches);
 */
export * from "./types";
export * from "./validate";
export { localGradients, localGradientsOf, readTensors, scalarValue, concatGradients, splitGradients, flatParameters, maxAbsDifference, addScaled, type LocalGradients } from "./gradients";
export { Sgd } from "./sgd";
export { withSpan } from "./span";
export { countBytes, type ByteCounts, type CountingCollectives } from "./byte-counter";
export { DataParallel, AllReduceMean, DATA_PARALLEL_DEFAULTS, validateDataParallelOptions, type DataParallelOptions } from "./data-parallel";
// The asynchronous, local-update, decentralized and large-batch family: these own their training
// loop (a step is not "sync then Sgd" when ranks run at different paces or only talk to neighbours).
export { parameterServer, validateParameterServerOptions, PARAMETER_SERVER_DEFAULTS, type ParameterServerOptions, type ParameterServerReport } from "./parameter-server";
export { StalenessClock, validateStaleness, type Release } from "./parameter-server-clock";
export { localSgd, synchronousSgd, nesterovOuterStep, validateLocalSgdOptions, LOCAL_SGD_DEFAULTS, type LocalSgdOptions, type LocalSgdReport } from "./local-sgd";
export { gossipSgd, gossipAverage, consensusDistance, ringNeighbours, ringMixingMatrix, validateGossipOptions, GOSSIP_DEFAULTS, type GossipOptions, type GossipReport } from "./gossip";
export { largeBatchTraining, scaledLr, validateLargeBatchOptions, LARGE_BATCH_DEFAULTS, type LargeBatchOptions, type LargeBatchReport } from "./large-batch";
export { Lamb, lambLayerStep, lambTrustRatio, validateLambOptions, LAMB_DEFAULTS, type LambOptions } from "./lamb";
export { stragglerTraining, validateStragglerOptions, STRAGGLER_DEFAULTS, type StragglerOptions, type StragglerReport } from "./stragglers";
export { equalBatches, proportionalBatches, predictedStepMs, median, type StragglerPolicy } from "./stragglers-policy";
export { firstBelow, flattenTensors, assignFlat, sleep, nowMs, type BatchFn, type LossPoint, type PeerCollectives } from "./local-sgd-vectors";
export { DistributedDataParallel, assignBuckets, DDP_DEFAULTS, validateDdpOptions, type DdpOptions, type DdpStepTiming } from "./ddp";
export { stagedBackward, type StageReady } from "./staged-backward";
export { GradientAccumulation, GRADIENT_ACCUMULATION_DEFAULTS, validateGradientAccumulationOptions, type GradientAccumulationOptions } from "./gradient-accumulation";
export { TopKCompression, TOP_K_DEFAULTS, validateTopKOptions, topKCount, topKIndices, type TopKOptions } from "./compression-topk";
export { QsgdCompression, QSGD_DEFAULTS, validateQsgdOptions, qsgdEncode, qsgdDecode, type QsgdOptions } from "./compression-qsgd";
export { PowerSgdCompression, POWER_SGD_DEFAULTS, validatePowerSgdOptions, asMatrix, orthonormalizeColumns, type PowerSgdOptions } from "./compression-powersgd";
export { lossPlotSvg, type PlotSeries, type PlotOptions } from "./local-sgd-plot";
export { lossPlot, seriesOf, type LossPlot } from "./loss-plot";
export { ringAllReduceMeanAsync, type PointToPoint } from "./async-allreduce";
export { type PhaseCategory } from "./span";
