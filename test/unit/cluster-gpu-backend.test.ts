// `--backend gpus` without GPUs: the exact command that hides the other GPUs
// from rank i, the limits on -n, the refusals, and (where this machine lets
// us mount) the hiding itself on stand-in device nodes.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotAvailableError, UsageError } from "../../kernel/src/errors";
import { checkGpuIsolation, gpuRankLaunch, listGpuDeviceNodes, unshareFlags } from "../../kernel/src/cluster/backends/gpus/gpu-isolation";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";
import { defaultRankMemoryBytes } from "../../kernel/src/magics/memory-size";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { RecordingIO } from "./cluster-io";

/** A stand-in /dev: GPU nodes as plain files holding their own name, plus the nodes every GPU shares. */
function standInDev(gpus: number, extra: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "distlab-dev-"));
  for (let i = 0; i < gpus; i++) writeFileSync(join(dir, `nvidia${i}`), `gpu ${i}`);
  for (const name of ["nvidiactl", "nvidia-uvm", "nvidia-modeset", ...extra]) writeFileSync(join(dir, name), name);
  return dir;
}
const made: string[] = [];
after(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const flags = (words: string) => parseDistributedFlags(words.split(" ").filter(Boolean));

test("GPU device nodes are nvidia<N> only, sorted by number", () => {
  const dev = standInDev(2, ["nvidia10", "nvidia-caps"]);
  made.push(dev);
  assert.deepEqual(listGpuDeviceNodes(dev), [join(dev, "nvidia0"), join(dev, "nvidia1"), join(dev, "nvidia10")]);
  assert.deepEqual(listGpuDeviceNodes(join(dev, "missing")), []);
});

test("rank i of K GPUs starts under unshare with every other GPU covered by /dev/null", () => {
  const nodes = ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2"];
  const node = ["/usr/bin/node", "--max-old-space-size=2048", "/opt/distlab/dist/cluster/rank-side/process-entry.js"];
  assert.deepEqual(gpuRankLaunch(node, nodes.slice(0, 2), 1, ["-m"]), {
    command: "unshare",
    args: ["-m", "sh", "-c", 'mount --bind /dev/null /dev/nvidia0 && exec "$0" "$@"', ...node],
  });
  assert.deepEqual(gpuRankLaunch(node, nodes, 0, ["-m"]), {
    command: "unshare",
    args: ["-m", "sh", "-c", 'mount --bind /dev/null /dev/nvidia1 && mount --bind /dev/null /dev/nvidia2 && exec "$0" "$@"', ...node],
  });
  // Not root: a user namespace of its own makes the mount allowed.
  assert.deepEqual(gpuRankLaunch(node, nodes, 2, ["-r", "-m"]).args.slice(0, 4), ["-r", "-m", "sh", "-c"]);
  assert.deepEqual(unshareFlags(true), ["-m"]);
  assert.deepEqual(unshareFlags(false), ["-r", "-m"]);
  // One GPU: nothing to hide, node starts directly.
  assert.deepEqual(gpuRankLaunch(node, nodes.slice(0, 1), 0), { command: node[0], args: node.slice(1) });
  // A path with a space is quoted for the shell.
  assert.match(gpuRankLaunch(node, ["/tmp/my dev/nvidia0", "/dev/nvidia1"], 1, ["-m"]).args[3]!, /^mount --bind \/dev\/null '\/tmp\/my dev\/nvidia0' && /);
  assert.throws(() => gpuRankLaunch(node, nodes, 3), /keep must be a GPU index in 0\.\.2, got 3/);
});

test("-n defaults to the number of GPUs; more ranks share the GPUs round-robin, and say so; tf defaults to webgpu", () => {
  const dev = standInDev(2);
  made.push(dev);
  const plan = planGroup(flags("--backend gpus"), { gpuDeviceDir: dev });
  assert.deepEqual(plan.shape, { size: 2, backend: "gpus", tfBackend: "webgpu", memoryCapBytes: defaultRankMemoryBytes(2) });
  assert.equal(planGroup(flags("--backend gpus -n 1 --tf-backend wasm"), { gpuDeviceDir: dev }).shape.size, 1);
  assert.equal(planGroup(flags("--backend gpus -n 1 --tf-backend wasm"), { gpuDeviceDir: dev }).shape.tfBackend, "wasm");
  assert.equal(plan.startNote, undefined, "one rank a GPU needs no note");
  const shared = planGroup(flags("--backend gpus -n 5"), { gpuDeviceDir: dev });
  assert.equal(shared.shape.size, 5);
  assert.equal(shared.startNote, "distlab: 5 ranks share its 2 GPUs (rank r on GPU r mod 2, up to 3 a GPU); ranks on one GPU take turns on it, so their compute times are not one GPU's each\n");
});

test("no GPU device nodes: a clear refusal naming --backend gpus", () => {
  const dev = standInDev(0);
  made.push(dev);
  assert.throws(
    () => planGroup(flags("--backend gpus"), { gpuDeviceDir: dev }),
    (error: unknown) => error instanceof NotAvailableError && /^--backend gpus: no GPU device nodes were found/.test(error.message),
  );
});

test("when the mount namespace cannot be made, the refusal names --backend gpus and the reason", () => {
  const dev = standInDev(2);
  made.push(dev);
  // An unshare flag that does not exist stands in for a refused unshare.
  assert.throws(
    () => checkGpuIsolation(listGpuDeviceNodes(dev), ["--no-such-flag"]),
    (error: unknown) => error instanceof NotAvailableError && /^--backend gpus: cannot give each rank its own GPU: .*unrecognized option/s.test(error.message),
  );
});

test("each gpus rank process sees only its own device node (stand-in nodes, real mount namespaces)", async (t) => {
  const dev = standInDev(2);
  made.push(dev);
  try {
    checkGpuIsolation(listGpuDeviceNodes(dev));
  } catch (error) {
    t.skip(`this machine does not allow mount namespaces: ${(error as Error).message}`);
    return;
  }
  const compiler = new CellCompiler();
  const session = new DistributedSession(compiler, undefined, { gpuDeviceDir: dev });
  try {
    const body =
      "import * as fs from 'node:fs';\n" +
      `const seen = ['nvidia0', 'nvidia1'].map((name) => fs.readFileSync(${JSON.stringify(dev)} + '/' + name, 'utf8'));\n` +
      "const total = await dist.allReduce([dist.rank + 1]);\n" +
      "({ seen, device: dist.device, total })";
    const outcome = await session.runCell(body, 1, flags("--backend gpus --tf-backend wasm"), new RecordingIO());
    assert.equal(outcome.status, "ok", JSON.stringify(outcome));
    const values = outcome.status === "ok" ? (outcome.result?.data["application/json"] as Array<{ seen: string[]; device: string; total: number[] }>) : [];
    assert.deepEqual(values.map((v) => v.seen), [["gpu 0", ""], ["", "gpu 1"]]);
    assert.deepEqual(values.map((v) => v.total), [[3], [3]]);
    values.forEach((v, rank) => assert.ok(v.device.startsWith(`${join(dev, `nvidia${rank}`)} `), v.device));
    assert.deepEqual(session.group?.ranks.map((rank) => rank.device.split(" ")[0]), [join(dev, "nvidia0"), join(dev, "nvidia1")]);
    // Three ranks on two GPUs: rank 2 shares GPU 0, and the cell says that ranks share.
    const io = new RecordingIO();
    const shared = await session.runCell(body, 2, flags("-n 3 --backend gpus --tf-backend wasm"), io);
    assert.equal(shared.status, "ok", JSON.stringify(shared));
    const sharedValues = shared.status === "ok" ? (shared.result?.data["application/json"] as Array<{ seen: string[] }>) : [];
    assert.deepEqual(sharedValues.map((v) => v.seen), [["gpu 0", ""], ["", "gpu 1"], ["gpu 0", ""]]);
    assert.match(io.text("stderr"), /3 ranks share its 2 GPUs \(rank r on GPU r mod 2, up to 2 a GPU\)/);
  } finally {
    await session.stop();
    compiler.close();
  }
});
