/**
 * The rank entry of the bundled GPU check (build-backend-check.ts): the
 * kernel's cluster/rank-side/process-entry.ts, with the TF.js webgpu backend bundled in. The
 * rank loads that backend with a require by computed name, which a bundle
 * cannot see, so such requires are answered with the bundled copy.
 */
import Module from "node:module";

const loadModule = (Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown })._load;
(Module as unknown as { _load: typeof loadModule })._load = function load(this: unknown, request, parent, isMain) {
  if (request === "@tensorflow/tfjs-backend-webgpu") return require("@tensorflow/tfjs-backend-webgpu");
  return loadModule.call(this, request, parent, isMain);
};
require("../../kernel/src/cluster/rank-side/process-entry");
