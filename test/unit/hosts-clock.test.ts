// The clock offset of a real `distlab agent` process whose clock the test hook
// (DISTLAB_TEST_CLOCK_SKEW_MS) puts 80 ms ahead: measured over its control
// connection, re-measured on a timer, and a malformed hook value refused by name.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AgentLink } from "../../kernel/src/hosts/agent-link";
import { HostClock, measureClockOffset } from "../../kernel/src/hosts/clock-sync";
import { packageVersion } from "../../kernel/src/version";
import { startAgentProcess, tempDir, writeToken, type AgentProcess } from "./hosts-agents";

const SKEW_MS = 80;
let agent: AgentProcess;
let link: AgentLink;
let tokenPath: string;

before(async () => {
  tokenPath = writeToken(tempDir()).path;
  agent = await startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", tokenPath, "--slots", "1"], { DISTLAB_TEST_CLOCK_SKEW_MS: String(SKEW_MS) });
  link = await AgentLink.connect({ host: "127.0.0.1", port: agent.port, token: Buffer.from(readFileSync(tokenPath, "utf8").trim()), version: packageVersion() });
});

after(async () => {
  link?.close();
  await agent?.stop();
});

test("the offset of an agent 80 ms ahead is measured within its uncertainty plus a millisecond", async () => {
  const estimate = await measureClockOffset(link);
  assert.equal(estimate.samples, 16);
  assert.ok(estimate.uncertaintyUs >= 0 && estimate.uncertaintyUs < 5000, `uncertainty ${estimate.uncertaintyUs} us`);
  assert.ok(Math.abs(estimate.offsetUs - SKEW_MS * 1000) < estimate.uncertaintyUs + 1000, `offset ${estimate.offsetUs} us, uncertainty ${estimate.uncertaintyUs} us`);
});

test("a host clock re-measures on its timer, keeps the latest estimate and reports the drift", async () => {
  const clock = new HostClock(link, 200);
  await clock.start();
  try {
    assert.equal(clock.report()?.measurements, 1);
    const deadline = Date.now() + 10_000;
    while ((clock.report()?.measurements ?? 0) < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const report = clock.report()!;
    assert.ok(report.measurements >= 3, `measurements ${report.measurements}`);
    assert.ok(Math.abs(report.estimate.offsetUs - SKEW_MS * 1000) < report.estimate.uncertaintyUs + 1000, JSON.stringify(report));
    // The same machine's clock: any drift seen is measurement noise (a few ms over a fraction of a second at most).
    assert.ok(Number.isFinite(report.driftPpm), JSON.stringify(report));
  } finally {
    clock.stop();
  }
});

test("a malformed clock-skew hook value is refused, naming the variable", async () => {
  await assert.rejects(
    startAgentProcess(["--listen", "127.0.0.1:0", "--token-file", tokenPath, "--slots", "1"], { DISTLAB_TEST_CLOCK_SKEW_MS: "soon" }),
    /DISTLAB_TEST_CLOCK_SKEW_MS="soon" is not a number of milliseconds/,
  );
});
