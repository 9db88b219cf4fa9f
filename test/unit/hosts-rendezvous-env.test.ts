// `distlab agent --connect env`: the rendezvous address and the agent's
// index/world read from torchrun's, Slurm's and a Kubernetes Indexed Job's
// variables, and every missing or inconsistent variable refused with its name
// and the form it expects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readRendezvousEnv, parseHostPort, RendezvousEnvError } from "../../kernel/src/hosts/rendezvous-env";

const refused = (env: NodeJS.ProcessEnv, connect: string | undefined, variable: string, message: RegExp) =>
  assert.throws(() => readRendezvousEnv(env, connect), (error: unknown) => {
    assert.ok(error instanceof RendezvousEnvError, String(error));
    assert.equal(error.culprit, variable);
    assert.match(error.message, message);
    return true;
  });

test("torchrun's variables give the address, the index, the world and the local index", () => {
  const env = { MASTER_ADDR: "10.0.0.5", MASTER_PORT: "29400", RANK: "1", WORLD_SIZE: "2", LOCAL_RANK: "1" };
  assert.deepEqual(readRendezvousEnv(env), { host: "10.0.0.5", port: 29400, index: 1, world: 2, localIndex: 1, source: "MASTER_ADDR:MASTER_PORT, RANK/WORLD_SIZE" });
});

test("Slurm's variables with the address from DISTLAB_RENDEZVOUS, or from --connect, which comes first", () => {
  const env = { SLURM_PROCID: "3", SLURM_NTASKS: "4", SLURM_LOCALID: "0", DISTLAB_RENDEZVOUS: "login1:29471", MASTER_ADDR: "elsewhere", MASTER_PORT: "1" };
  assert.deepEqual(readRendezvousEnv(env), { host: "login1", port: 29471, index: 3, world: 4, localIndex: 0, source: "DISTLAB_RENDEZVOUS, SLURM_PROCID/SLURM_NTASKS" });
  const dialled = readRendezvousEnv(env, "[fd00::1]:5000");
  assert.equal(dialled.host, "fd00::1");
  assert.equal(dialled.port, 5000);
  assert.match(dialled.source, /^--connect, /);
});

test("Open MPI's OMPI_COMM_WORLD_* variables, which win over the Slurm job's that mpirun inside a job inherits", () => {
  const env = { OMPI_COMM_WORLD_RANK: "1", OMPI_COMM_WORLD_SIZE: "2", OMPI_COMM_WORLD_LOCAL_RANK: "1", SLURM_PROCID: "0", SLURM_NTASKS: "1" };
  assert.deepEqual(readRendezvousEnv(env, "127.0.0.1:5000"), { host: "127.0.0.1", port: 5000, index: 1, world: 2, localIndex: 1, source: "--connect, OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE" });
  assert.throws(() => readRendezvousEnv({ OMPI_COMM_WORLD_RANK: "0" }, "h:1"), /OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not/);
});

test("a Kubernetes Indexed Job's JOB_COMPLETION_INDEX with DISTLAB_WORLD_SIZE", () => {
  const env = { JOB_COMPLETION_INDEX: "0", DISTLAB_WORLD_SIZE: "3", DISTLAB_RENDEZVOUS: "distlab-kernel.default.svc:29471" };
  assert.deepEqual(readRendezvousEnv(env), { host: "distlab-kernel.default.svc", port: 29471, index: 0, world: 3, source: "DISTLAB_RENDEZVOUS, JOB_COMPLETION_INDEX/DISTLAB_WORLD_SIZE" });
});

test("torchrun's RANK wins over Slurm's SLURM_PROCID when both are set (torchrun under srun)", () => {
  const env = { RANK: "0", WORLD_SIZE: "1", SLURM_PROCID: "5", SLURM_NTASKS: "8", MASTER_ADDR: "127.0.0.1", MASTER_PORT: "29471" };
  assert.equal(readRendezvousEnv(env).index, 0);
});

test("an index at or over the world size names both variables and the range", () => {
  refused({ RANK: "3", WORLD_SIZE: "2", MASTER_ADDR: "h", MASTER_PORT: "1" }, undefined, "RANK", /RANK=3 with WORLD_SIZE=2: the index must be below the world size \(0 to 1\)/);
  refused({ SLURM_PROCID: "4", SLURM_NTASKS: "4", DISTLAB_RENDEZVOUS: "h:1" }, undefined, "SLURM_PROCID", /SLURM_PROCID=4 with SLURM_NTASKS=4/);
});

test("one variable of a pair without the other names the missing one and its form", () => {
  refused({ RANK: "0", MASTER_ADDR: "h", MASTER_PORT: "1" }, undefined, "WORLD_SIZE", /RANK is set but WORLD_SIZE is not \(expected the number of agents, e\.g\. WORLD_SIZE=2\)/);
  refused({ WORLD_SIZE: "2", MASTER_ADDR: "h", MASTER_PORT: "1" }, undefined, "RANK", /WORLD_SIZE is set but RANK is not .*RANK=0/);
  refused({ JOB_COMPLETION_INDEX: "1", DISTLAB_RENDEZVOUS: "h:1" }, undefined, "DISTLAB_WORLD_SIZE", /JOB_COMPLETION_INDEX is set but DISTLAB_WORLD_SIZE is not \(expected .*spec\.completions/);
  refused({ RANK: "0", WORLD_SIZE: "1", MASTER_ADDR: "h" }, undefined, "MASTER_PORT", /MASTER_ADDR is set but MASTER_PORT is not/);
  refused({ RANK: "0", WORLD_SIZE: "1", MASTER_PORT: "29400" }, undefined, "MASTER_ADDR", /MASTER_PORT is set but MASTER_ADDR is not/);
});

test("values that are not numbers or addresses name the variable and an example", () => {
  refused({ RANK: "one", WORLD_SIZE: "2", MASTER_ADDR: "h", MASTER_PORT: "1" }, undefined, "RANK", /RANK="one" is not a whole number \(expected e\.g\. RANK=0\)/);
  refused({ RANK: "0", WORLD_SIZE: "0", MASTER_ADDR: "h", MASTER_PORT: "1" }, undefined, "WORLD_SIZE", /WORLD_SIZE="0" is not a positive whole number/);
  refused({ RANK: "-1", WORLD_SIZE: "2", MASTER_ADDR: "h", MASTER_PORT: "1" }, undefined, "RANK", /RANK="-1"/);
  refused({ RANK: "0", WORLD_SIZE: "1", MASTER_ADDR: "h", MASTER_PORT: "70000" }, undefined, "MASTER_PORT", /MASTER_PORT=70000 is over 65535/);
  refused({ RANK: "0", WORLD_SIZE: "1", MASTER_ADDR: "h", MASTER_PORT: "http" }, undefined, "MASTER_PORT", /MASTER_PORT="http" is not a port number/);
  refused({ RANK: "0", WORLD_SIZE: "1", DISTLAB_RENDEZVOUS: "nohostport" }, undefined, "DISTLAB_RENDEZVOUS", /DISTLAB_RENDEZVOUS="nohostport" is not HOST:PORT/);
  refused({ RANK: "0", WORLD_SIZE: "1" }, "h:0", "--connect", /--connect "h:0" is not HOST:PORT/);
});

test("no address and no index at all say every way to give them", () => {
  refused({ RANK: "0", WORLD_SIZE: "1" }, undefined, "DISTLAB_RENDEZVOUS", /--connect HOST:PORT.*DISTLAB_RENDEZVOUS.*MASTER_ADDR and MASTER_PORT/);
  refused({ DISTLAB_RENDEZVOUS: "h:1" }, undefined, "RANK", /RANK and WORLD_SIZE.*SLURM_PROCID, SLURM_NTASKS.*JOB_COMPLETION_INDEX, with DISTLAB_WORLD_SIZE/);
});

test("HOST:PORT parsing: names, IPv4, bracketed IPv6; nothing else", () => {
  assert.deepEqual(parseHostPort("kernel.example:29471"), { host: "kernel.example", port: 29471 });
  assert.deepEqual(parseHostPort("[::1]:80"), { host: "::1", port: 80 });
  for (const bad of ["", "host", ":80", "host:", "host:99999", "a b:1", "::1:80"]) assert.equal(parseHostPort(bad), undefined, bad);
});
