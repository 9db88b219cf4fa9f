// The environment the PyTorch baselines run under, so that their BLAS runs at its best.
//
// Debian's PyTorch does its CPU matrix products in OpenBLAS, which picks its
// kernels by CPU model when it loads. An OpenBLAS older than the CPU (Debian 12's
// 0.3.21 on Emerald Rapids) does not know the model and falls back to pre-AVX2
// kernels: 4-5x slower products, which would flatter every ratio. Where that
// happens, the baseline runs with OPENBLAS_CORETYPE naming the kernels that fit
// the core (kernel/src/compute/cpu-blas.ts's openblasMisfit); a value the caller
// set is kept. The distlab side gets the same environment.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
require("tsx/cjs");
const { openblasMisfit } = require("../kernel/src/compute/cpu-blas.ts");
const { openCpuVector } = require("../kernel/src/compute/cpu-vector.ts");

/** The BLAS the PyTorch at `python` uses, as it describes itself ("OpenBLAS 0.3.21 ... SkylakeX ...", "MKL ..."). */
function torchBlasConfig(python, env) {
  const script = [
    "import ctypes, re, torch",
    "built = torch.__config__.show()",
    "if re.search(r'BLAS_INFO=mkl', built):",
    "    version = re.search(r'MKL-DNN v([0-9.]+)', built)",
    "    print('MKL (in PyTorch\\'s build)' + (', oneDNN ' + version.group(1) if version else ''))",
    "else:",
    "    try:",
    "        f = ctypes.CDLL('libblas.so.3').openblas_get_config; f.restype = ctypes.c_char_p; print(f().decode())",
    "    except (OSError, AttributeError):",
    "        print('not OpenBLAS (no openblas_get_config in libblas.so.3)')",
  ].join("\n");
  return execFileSync(python, ["-c", script], { env, encoding: "utf8" }).trim();
}

/**
 * `env` plus OPENBLAS_CORETYPE where the baseline's OpenBLAS took pre-AVX2 kernels on a core with
 * wider ones; `note` says what PyTorch's BLAS runs, for the benchmark's header.
 */
export function baselineBlasEnv(python, env) {
  const asLoaded = torchBlasConfig(python, env);
  if (env.OPENBLAS_CORETYPE) return { env, note: `${asLoaded} (OPENBLAS_CORETYPE=${env.OPENBLAS_CORETYPE} as set)` };
  const misfit = openblasMisfit(asLoaded, openCpuVector({})?.isa()); // the core's widest vectors, whatever DISTLAB_CPU_VECTOR says
  if (!misfit) return { env, note: asLoaded };
  const forced = { ...env, OPENBLAS_CORETYPE: misfit.coreType };
  return { env: forced, note: `${torchBlasConfig(python, forced)} (OPENBLAS_CORETYPE=${misfit.coreType} for both sides: as loaded, this OpenBLAS took the CPU for ${misfit.took})` };
}
