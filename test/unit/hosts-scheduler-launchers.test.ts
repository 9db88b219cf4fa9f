// `%%distributed --launcher slurm|mpi`: the flags each takes, the refusals that
// come before the kernel listens (each naming its flag), and the commands the
// launchers run. The launchers against a real Slurm and Open MPI are in
// test/kernel/test_launcher_slurm.py and test_launcher_mpi.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { UsageError } from "../../kernel/src/errors";
import { checkSlurmLaunch, shellWord } from "../../kernel/src/hosts/slurm-launcher";
import { checkMpiLaunch, mpirunWords } from "../../kernel/src/hosts/mpi-launcher";
import { dialableAddress } from "../../kernel/src/hosts/scheduler-starter";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";
import { splitArgs } from "../../kernel/src/magics/split-magic";
import { hostname, tmpdir } from "node:os";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const parse = (line: string) => parseDistributedFlags(splitArgs(line));

function flagOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    return error.culprit;
  }
  assert.fail("accepted");
}

test("--launcher slurm and mpi mean the hosts backend; --slurm, --slurm-per and --mpi apply only with theirs", () => {
  const slurm = parse('-n 4 --launcher slurm --slurm "-p gpu -N 2 --time 1:00:00" --slurm-per node');
  assert.equal(slurm.backend, "hosts");
  assert.equal(slurm.slurm, "-p gpu -N 2 --time 1:00:00");
  assert.equal(slurm.slurmPer, "node");
  assert.equal(parse("--launcher slurm").slurmPer, "task");
  const mpi = parse('--launcher mpi --hosts a,b --mpi "--mca btl tcp,self"');
  assert.equal(mpi.backend, "hosts");
  assert.equal(mpi.hosts, "a,b");
  assert.throws(() => parse('--launcher env --slurm "-N 1"'), /--slurm only applies with --launcher slurm/);
  assert.throws(() => parse("--launcher mpi --slurm-per node"), /--slurm-per only applies with --launcher slurm/);
  assert.throws(() => parse('--launcher slurm --mpi "-np 2"'), /--mpi only applies with --launcher mpi/);
  assert.throws(() => parse("--launcher slurm --hosts a,b"), /--launcher slurm takes no --hosts/);
  assert.throws(() => parse("--launcher slurm --slurm-per rack"), /--slurm-per must be one of node\|task, got 'rack'/);
});

test("Slurm missing, or neither an allocation nor --slurm, is refused naming the flag", () => {
  assert.equal(flagOf(() => checkSlurmLaunch({ PATH: "/nonexistent" }, "-N 1")), "--launcher");
  assert.throws(() => checkSlurmLaunch({ PATH: "/nonexistent" }, "-N 1"), /Slurm is not installed here: no `sbatch`, `squeue`, `scancel` on PATH \(\/nonexistent\)/);
  assert.throws(() => checkSlurmLaunch({ PATH: "/nonexistent", SLURM_JOB_ID: "7" }, undefined), /no `srun` on PATH/);
  // Slurm and mpirun present (this directory holds stand-ins; nothing runs them) but no allocation and no --slurm.
  const bin = mkdtempSync(join(tmpdir(), "distlab-slurm-bin-"));
  for (const name of ["sbatch", "squeue", "scancel", "srun", "mpirun"]) writeFileSync(join(bin, name), "#!/bin/sh\n", { mode: 0o755 });
  assert.equal(flagOf(() => checkSlurmLaunch({ PATH: bin }, undefined)), "--slurm");
  assert.throws(() => checkSlurmLaunch({ PATH: bin }, undefined), /not inside a Slurm allocation \(SLURM_JOB_ID is not set/);
  assert.doesNotThrow(() => checkSlurmLaunch({ PATH: bin, SLURM_JOB_ID: "7" }, undefined));
  assert.equal(flagOf(() => checkMpiLaunch({ PATH: bin }, undefined, undefined)), "--hosts");
  assert.equal(flagOf(() => checkMpiLaunch({ PATH: "/nonexistent" }, ["a"], undefined)), "--launcher");
  assert.throws(() => checkMpiLaunch({ PATH: "/nonexistent" }, ["a"], undefined), /Open MPI is not installed here: no `mpirun` on PATH/);
});

test("mpirun's words: one agent per --hosts entry, counted per host, root allowed only as root, --mpi after", () => {
  const words = mpirunWords({ agentCommand: "distlab agent --connect h:1 --token-file /t", ranks: 5, hosts: ["a", "a", "b"], mpiArgs: ["--mca", "btl", "tcp,self"], env: {}, log: () => {} }, true);
  assert.deepEqual(words.slice(0, 8), ["--allow-run-as-root", "-np", "3", "--host", "a:2,b:1", "--mca", "btl", "tcp,self"]);
  assert.deepEqual(words.slice(8, 10), ["/bin/sh", "-c"]);
  assert.equal(words[10], 'exec distlab agent --connect h:1 --token-file /t --slots "$(( (5 + OMPI_COMM_WORLD_SIZE - 1) / OMPI_COMM_WORLD_SIZE ))"');
  assert.equal(mpirunWords({ agentCommand: "x", ranks: 1, hosts: ["a"], env: {}, log: () => {} }, false)[0], "-np");
});

test("a wildcard rendezvous is dialled at this machine's hostname; shell words are quoted only when needed", () => {
  assert.equal(dialableAddress("0.0.0.0:4000"), `${hostname()}:4000`);
  assert.equal(dialableAddress("[::]:4000"), `${hostname()}:4000`);
  assert.equal(dialableAddress("10.0.0.5:4000"), "10.0.0.5:4000");
  assert.equal(shellWord("/home/a/token"), "/home/a/token");
  assert.equal(shellWord("it's here"), `'it'\\''s here'`);
});

test("slurm and mpi listen on a free port: --rendezvous HOST alone is HOST at port 0, and the shape names the launch", () => {
  const dir = mkdtempSync(join(tmpdir(), "distlab-sched-"));
  const token = join(dir, "token");
  writeFileSync(token, "a".repeat(64) + "\n", { mode: 0o600 });
  const bin = mkdtempSync(join(tmpdir(), "distlab-slurm-bin-"));
  for (const name of ["sbatch", "squeue", "scancel", "mpirun"]) writeFileSync(join(bin, name), "#!/bin/sh\n", { mode: 0o755 });
  const path = process.env.PATH;
  process.env.PATH = bin;
  try {
    const plan = planGroup(parse(`-n 2 --launcher slurm --slurm "-N 1" --rendezvous 10.0.0.5 --insecure --token-file ${token}`));
    assert.match(plan.shape.hosts!, /^--launcher slurm --slurm-per task --slurm "-N 1" --rendezvous 10\.0\.0\.5:0 --insecure$/);
    const mpi = planGroup(parse(`-n 2 --launcher mpi --hosts a,b --token-file ${token}`));
    assert.match(mpi.shape.hosts!, /^--launcher mpi --hosts a,b --rendezvous 127\.0\.0\.1:0$/);
    assert.throws(() => planGroup(parse(`-n 2 --launcher slurm --slurm "-N 1" --rendezvous 10.0.0.5 --token-file ${token}`)), /refusing to listen on --rendezvous 10\.0\.0\.5:0, which is not a loopback address, without TLS/);
  } finally {
    process.env.PATH = path;
  }
});
