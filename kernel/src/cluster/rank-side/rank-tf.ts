/**
 * TensorFlow.js in a rank, loaded when the rank first needs it rather than
 * when the rank starts. Loading it (the package, a backend, its wasm) is
 * most of a rank's start, and a cell of collectives on typed arrays never
 * uses it; with it deferred, a group's first cell answers without waiting
 * for N copies of TensorFlow.js to load on the kernel's cores.
 *
 * A cell needs it when its source names `tf` or `restore` (`dist.restore`
 * rebuilds tensors), or loads a module other than Node's own (`distlab/models`,
 * `distlab/techniques`, a file of the user's: any may import TensorFlow.js,
 * which must not run before the rank has chosen its backend): the rank loads
 * it before running that cell. `tf` is a parameter of every cell (the ranks
 * chain's prelude), so a cell can reach it only by naming it, and functions
 * of earlier cells that use it were declared in a cell that named it or
 * loaded it. What is left (a helper of `dist` handed a tensor, which only
 * exists once TensorFlow.js is loaded) goes through `lazyTf`, which says
 * plainly when it is reached too early.
 *
 * A named `--tf-backend` or a GPU rank loads it at init, as before: a backend
 * that cannot load is then an error of the group's start, not of a later cell.
 */
import { isBuiltin } from "node:module";
import type { TfBackendName } from "../../compute/backend-names";
import { loadTf, type LoadedTf } from "./tf-setup";

type Tf = typeof import("@tensorflow/tfjs");

/** What init and the status answer say before TensorFlow.js is loaded. */
export const TF_NOT_LOADED = "not loaded yet";

/** Words in a cell's source that mean it may use TensorFlow.js. */
const NAMES_TF = /\btf\b|\brestore\b/;
/** The module of each `import ... from "m"`, `import "m"`, `import("m")`, `require("m")`; group 1. */
const MODULE_LOADS = /(?:\bfrom|\bimport|\brequire)\s*\(?\s*["'`]([^"'`]+)["'`]/g;

export function cellNeedsTf(source: string): boolean {
  if (NAMES_TF.test(source)) return true;
  for (const [, module] of source.matchAll(MODULE_LOADS)) if (!isBuiltin(module!)) return true;
  return false;
}

export class RankTf {
  private loading?: Promise<LoadedTf>;
  /** Set once TensorFlow.js is loaded and its backend chosen. */
  loaded?: LoadedTf;

  constructor(
    private readonly requested: TfBackendName | undefined,
    private readonly rank: number,
  ) {}

  /** Loads TensorFlow.js once; later calls get the same promise. A failed load is tried again next time. */
  load(): Promise<LoadedTf> {
    this.loading ??= loadTf(this.requested).then(
      (loaded) => (this.loaded = loaded),
      (error: unknown) => {
        this.loading = undefined;
        throw error;
      },
    );
    return this.loading;
  }

  /** TensorFlow.js for code that runs after it was loaded; reached before, it throws saying why. */
  readonly lazyTf: Tf = new Proxy({} as Tf, {
    get: (_, key) => {
      if (!this.loaded) {
        throw new Error(
          `TensorFlow.js is not loaded on rank ${this.rank} yet (tf.${String(key)} was asked for): a rank loads it before the first cell that names \`tf\`; name it in this cell`,
        );
      }
      return (this.loaded.tf as unknown as Record<PropertyKey, unknown>)[key];
    },
  });
}
