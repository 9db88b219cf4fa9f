// `%%distributed --launcher env`: the flags it takes and the refusals that
// come before the kernel listens (flags of other launchers, a non-loopback
// rendezvous without TLS, token files), each naming the flag at fault; and
// -n more than the slots of the agents that dialled in, refused at the wait.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import * as net from "node:net";
import { parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { planGroup } from "../../kernel/src/cluster/backends/plan-group";
import { UsageError } from "../../kernel/src/errors";
import { dialKernel } from "../../kernel/src/hosts/agent-dial";
import { readFileSync } from "node:fs";
import { packageVersion } from "../../kernel/src/version";
import { tempDir, writeToken } from "./hosts-agents";

const words = (line: string) => line.split(" ").filter(Boolean);

function refusal(line: string): UsageError {
  try {
    planGroup(parseDistributedFlags(words(line)));
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    return error;
  }
  assert.fail(`${line} was accepted`);
}

test("--launcher env means the hosts backend, and its flags apply only with it", () => {
  const options = parseDistributedFlags(words("-n 4 --launcher env --rendezvous 10.0.0.5:29471 --rendezvous-timeout 5 --insecure"));
  assert.equal(options.backend, "hosts");
  assert.equal(options.rendezvous, "10.0.0.5:29471");
  assert.equal(options.rendezvousTimeoutSeconds, 5);
  assert.equal(options.insecure, true);
  assert.equal(parseDistributedFlags(words("--launcher env")).rendezvousTimeoutSeconds, 60);
  for (const flag of ["--rendezvous 1", "--rendezvous-timeout 5", "--tls-cert c", "--tls-key k", "--insecure"]) {
    assert.throws(() => parseDistributedFlags(words(`--backend processes ${flag}`)), new RegExp(`${flag.split(" ")[0]} only applies with --launcher env`));
  }
  assert.throws(() => parseDistributedFlags(words("--launcher env --hosts a:1")), /--launcher env takes no --hosts/);
});

test("refusals before the kernel listens name their flag", () => {
  const dir = tempDir();
  const token = writeToken(dir).path;
  const loose = writeToken(dir, 0o644, "loose").path;
  const cases: Array<[string, string, RegExp]> = [
    [`--launcher env --rendezvous 0.0.0.0:29471 --token-file ${token}`, "--rendezvous", /refusing to listen on --rendezvous 0\.0\.0\.0:29471, which is not a loopback address, without TLS/],
    [`--launcher env --rendezvous nowhere --token-file ${token}`, "--rendezvous", /--rendezvous "nowhere" is not HOST:PORT/],
    [`--launcher env --token-file ${join(dir, "none")}`, "--token-file", /--token-file .*none: no such file/],
    [`--launcher env --token-file ${loose}`, "--token-file", /the token file has mode 0644/],
    [`--launcher env --tls-ca ca.pem --token-file ${token}`, "--tls-ca", /--tls-ca does not apply with --launcher env/],
    [`--launcher env --tls-cert only.pem --token-file ${token}`, "--tls-key", /--tls-cert FILE and --tls-key FILE go together \(--tls-key is missing\)/],
    [`--launcher env --rendezvous 0.0.0.0:1 --tls-cert ${join(dir, "no.pem")} --tls-key ${join(dir, "no.key")} --token-file ${token}`, "--tls-cert", /--tls-cert .*no\.pem: no such file/],
  ];
  for (const [line, flag, message] of cases) {
    const error = refusal(line);
    assert.equal(error.culprit, flag, line);
    assert.match(error.message, message);
  }
  // --insecure allows a non-loopback rendezvous without TLS.
  assert.equal(planGroup(parseDistributedFlags(words(`--launcher env --rendezvous 0.0.0.0:29471 --insecure --token-file ${token}`))).shape.backend, "hosts");
});

test("-n more than the slots of the agents that dialled in fails at the wait, naming the slots", async () => {
  const dir = tempDir();
  const tokenPath = writeToken(dir).path;
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const group = planGroup(parseDistributedFlags(words(`-n 3 --launcher env --rendezvous ${port} --token-file ${tokenPath} --rendezvous-timeout 10`))).start(() => undefined);
  const token = Buffer.from(readFileSync(tokenPath, "utf8").trim());
  const agent = dialKernel({ host: "127.0.0.1", port, token, slots: 2, version: packageVersion(), log: () => undefined, connectTimeoutMs: 10_000, rendezvous: { index: 0, world: 1 } });
  try {
    await assert.rejects(group.prepare(10_000), /-n 3 is more ranks than the 2 slots/);
  } finally {
    await group.close();
  }
  await agent;
});
