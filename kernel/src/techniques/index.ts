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
export { flattenTensors, assignFlat } from "./flat-vectors";
export { firstBelow, type LossPoint } from "./loss-curve";
export { sleep, nowMs } from "./timing";
export { DistributedDataParallel, assignBuckets, DDP_DEFAULTS, validateDdpOptions, type DdpOptions, type DdpStepTiming } from "./ddp";
export { stagedBackward, type StageReady } from "./staged-backward";
export { GradientAccumulation, GRADIENT_ACCUMULATION_DEFAULTS, validateGradientAccumulationOptions, type GradientAccumulationOptions } from "./gradient-accumulation";
export { TopKCompression, TOP_K_DEFAULTS, validateTopKOptions, topKCount, topKIndices, type TopKOptions } from "./compression-topk";
export { QsgdCompression, QSGD_DEFAULTS, validateQsgdOptions, qsgdEncode, qsgdDecode, type QsgdOptions } from "./compression-qsgd";
export { PowerSgdCompression, POWER_SGD_DEFAULTS, validatePowerSgdOptions, asMatrix, orthonormalizeColumns, type PowerSgdOptions } from "./compression-powersgd";
export { plotSpec, plotSvg, plotRows, spansDecades, LOG_SCALE_SPAN, type PlotSeries, type PlotOptions, type PlotRow } from "./plot";
export { lossPlot, seriesOf, VEGA_LITE_MIME_TYPE, type LossPlot } from "./loss-plot";
export { ringAllReduceMeanAsync, type PointToPoint } from "./async-allreduce";
export { type PhaseCategory } from "./span";
// Model parallelism: the tiny GPT's layers cut across ranks.
export { TensorParallelGpt, TENSOR_PARALLEL_DEFAULTS, validateTensorParallelOptions, checkTensorParallelShape, type TensorParallelOptions, type TensorParallelForward, type TensorParallelBackward } from "./tensor-parallel";
export { tensorParallelRegions, sequenceParallelRegions, allReduceSum, reduceScatterSequence, allGatherSequence, type Region, type TensorParallelCollectives } from "./tensor-parallel-regions";
export { paperActivationBytes, float32ActivationBytes, checkSequenceSplit, sequenceSlice, type ActivationShape } from "./sequence-parallel";
// Pipeline parallelism: stages on ranks, micro-batches through them by a schedule.
export { PipelineParallel, PIPELINE_DEFAULTS, validatePipelineOptions, type PipelineOptions, type PipelineStepResult, type PipelineComm } from "./pipeline-parallel";
export { buildSchedule, simulateSchedule, validatePipelineShape, microBatchesNeeded, PIPELINE_SCHEDULES, type PipelineScheduleName, type PipelineOp, type PipelineSchedule, type SimulatedPipeline } from "./pipeline-schedules";
export { PipelineChunk, splitLayers } from "./pipeline-chunks";
export { measurePipelineBubble, type MeasuredBubble, type StageSpan } from "./pipeline-bubble";
// Memory for compute: activations kept every few layers, the rest recomputed in backward.
export { ActivationCheckpointing, ACTIVATION_CHECKPOINTING_DEFAULTS, validateActivationCheckpointingOptions, checkpointSegments, peakHeldFormula, recomputedLayersFormula, type ActivationCheckpointingOptions, type CheckpointedGradients, type HeldSample } from "./activation-checkpointing";
export { MagnitudePruning, PrunedGradientSync, cubicSparsity, countZeros, validatePruningOptions, PRUNING_DEFAULTS, type PruningOptions } from "./pruning";
export { layerSparsities, PRUNING_ALLOCATIONS, type PruningAllocation } from "./pruning-allocation";
// Sharded data parallelism: ZeRO stages 1-3 (stage 3: fully sharded data parallel).
export { Zero, ZERO_DEFAULTS, ZERO_STAGES, validateZeroOptions, zeroHeldBytesFormula, zeroWireElementsFormula, type ZeroOptions, type ZeroStage, type ZeroCollectives, type ZeroHeldBytes } from "./zero";
export { planShards, type ShardPlan, type UnitShard } from "./zero-shards";
export { FlatAdam, type AdamHyperparameters } from "./zero-adam";
// Composition: data, tensor and pipeline parallelism on a device mesh {dp, pp, tp}.
export { compose, ParallelPlan, COMPOSE_DEFAULTS, MESH_DIMENSIONS, validateComposeOptions, validateComposition, meshCoordinates, meshDimensionOf, type ComposeOptions, type ComposedStep, type MeshDegrees, type MeshDimension } from "./compose";
