import { test } from "node:test";
import assert from "node:assert/strict";
import { validateParameterServerOptions } from "../../kernel/src/techniques/parameter-server";
import { validateLocalSgdOptions, LOCAL_SGD_DEFAULTS } from "../../kernel/src/techniques/local-sgd";
import { validateGossipOptions } from "../../kernel/src/techniques/gossip";
import { validateLargeBatchOptions } from "../../kernel/src/techniques/large-batch";
import { validateLambOptions } from "../../kernel/src/techniques/lamb";
import { validateStragglerOptions } from "../../kernel/src/techniques/stragglers";

const ps = { staleness: 1, steps: 10, batchSize: 8, lr: 0.1 };
const local = { innerSteps: 4, steps: 16, batchSize: 8, innerLr: 0.1 };
const large = { steps: 10, batchSize: 8, baseLr: 0.1, baseBatch: 8 };
const straggle = { policy: "backup" as const, steps: 5, globalBatch: 64, lr: 0.1 };

test("parameter server: a negative or fractional staleness fails naming the option; Infinity is asynchronous", () => {
  assert.throws(() => validateParameterServerOptions({ ...ps, staleness: -1 }, 4), /parameterServer\.staleness must be an integer >= 0.*got -1/);
  assert.throws(() => validateParameterServerOptions({ ...ps, staleness: 1.5 }, 4), /parameterServer\.staleness/);
  assert.equal(validateParameterServerOptions({ ...ps, staleness: Infinity }, 4).staleness, Infinity);
  assert.throws(() => validateParameterServerOptions(ps, 1), /at least 2 ranks/);
  assert.throws(() => validateParameterServerOptions({ ...ps, slowRank: 0 }, 4), /parameterServer\.slowRank/);
  assert.throws(() => validateParameterServerOptions({ ...ps, lr: 0 }, 4), /parameterServer\.lr/);
  assert.throws(() => validateParameterServerOptions({ ...ps, stalness: 2 } as never, 4), /parameterServer\.stalness is not an option/);
});

test("local SGD: H < 1 and steps not a multiple of H fail naming the option; DiLoCo's outer optimizer is the default", () => {
  assert.throws(() => validateLocalSgdOptions({ ...local, innerSteps: 0 }), /localSgd\.innerSteps must be an integer >= 1, got 0/);
  assert.throws(() => validateLocalSgdOptions({ ...local, steps: 10 }), /localSgd\.steps must be a multiple of localSgd\.innerSteps/);
  assert.throws(() => validateLocalSgdOptions({ ...local, outerMomentum: 1 }), /localSgd\.outerMomentum/);
  const o = validateLocalSgdOptions(local);
  assert.equal(o.outerLr, 0.7);
  assert.equal(o.outerMomentum, 0.9);
  assert.deepEqual([LOCAL_SGD_DEFAULTS.outerLr, LOCAL_SGD_DEFAULTS.outerMomentum], [0.7, 0.9]);
});

test("gossip and large batch: out-of-range options fail naming the option", () => {
  assert.throws(() => validateGossipOptions({ steps: 0, batchSize: 8, lr: 0.1 }), /gossip\.steps/);
  assert.throws(() => validateGossipOptions({ steps: 5, batchSize: 8, lr: -1 }), /gossip\.lr/);
  assert.throws(() => validateLargeBatchOptions({ ...large, warmupSteps: -1 }), /largeBatch\.warmupSteps must be an integer >= 0, got -1/);
  assert.throws(() => validateLargeBatchOptions({ ...large, optimizer: "adam" as never }), /largeBatch\.optimizer must be one of sgd\|lamb/);
  assert.throws(() => validateLambOptions({ beta1: 1 }), /lamb\.beta1/);
  assert.equal(validateLargeBatchOptions(large).warmupSteps, 0);
});

test("stragglers: b >= n, a slow factor below 1 and a slow rank 0 with backups fail naming the option", () => {
  assert.throws(() => validateStragglerOptions({ ...straggle, backups: 4 }, 4), /stragglers\.backups must be an integer in \[0, 3\], got 4/);
  assert.throws(() => validateStragglerOptions({ ...straggle, slowRank: 3, slowFactor: 0.5 }, 4), /stragglers\.slowFactor must be in \[1, Infinity\), got 0\.5/);
  assert.throws(() => validateStragglerOptions({ ...straggle, slowRank: 0 }, 4), /stragglers\.slowRank/);
  assert.throws(() => validateStragglerOptions({ ...straggle, policy: "equal", backups: 1 }, 4), /stragglers\.backups is only for policy "backup"/);
  assert.throws(() => validateStragglerOptions({ ...straggle, globalBatch: 3 }, 4), /stragglers\.globalBatch/);
  assert.equal(validateStragglerOptions({ ...straggle, backups: 1, slowRank: 3, slowFactor: 3 }, 4).backups, 1);
});
