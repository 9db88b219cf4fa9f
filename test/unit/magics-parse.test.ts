import { test } from "node:test";
import assert from "node:assert/strict";
import { UsageError } from "../../kernel/src/errors";
import { DISTRIBUTED_FLAGS, distributedHelp, parseDistributedFlags } from "../../kernel/src/magics/distributed-spec";
import { distHelp, parseDistCommand, DIST_SUBCOMMANDS } from "../../kernel/src/magics/dist-spec";
import { splitArgs, splitMagic } from "../../kernel/src/magics/split-magic";
import { completeFlag } from "../../kernel/src/magics/flags";

const parse = (line: string) => parseDistributedFlags(splitArgs(line));

/** Asserts that parsing fails with a UsageError whose message names `culprit`. */
function assertUsage(line: string, culprit: string, alsoMentions?: string): void {
  assert.throws(
    () => parse(line),
    (error: unknown) => {
      assert.ok(error instanceof UsageError, `expected UsageError for '${line}', got ${String(error)}`);
      assert.ok(error.message.includes(culprit), `message '${error.message}' should name ${culprit}`);
      if (alsoMentions) assert.ok(error.message.includes(alsoMentions), `message '${error.message}' should mention ${alsoMentions}`);
      return true;
    },
  );
}

test("defaults: 2 threads, 60 s timeout, live output, timeline auto", () => {
  const options = parse("");
  assert.deepEqual(
    { ...options },
    { workers: 2, backend: "threads", timeoutSeconds: 60, groupOutputs: "order", timeline: "auto", help: false },
  );
});

test("-n, --workers and --workers=N are the same flag", () => {
  assert.equal(parse("-n 4").workers, 4);
  assert.equal(parse("--workers 8").workers, 8);
  assert.equal(parse("--workers=3").workers, 3);
});

test("every flag parses to its typed option", () => {
  const options = parse("-n 4 --timeout 2.5 --group-outputs rank --link bandwidth=1Gbit,latency=2ms --tf-backend cpu --no-timeline");
  assert.equal(options.workers, 4);
  assert.equal(options.timeoutSeconds, 2.5);
  assert.equal(options.groupOutputs, "rank");
  assert.deepEqual(options.link, { bandwidth: 1e9 / 8, latency: 0.002 });
  assert.equal(options.tfBackend, "cpu");
  assert.equal(options.timeline, "off");
  assert.equal(parse("--help").help, true);
});

test("--timeline takes auto, always or off; --no-timeline is off and cannot contradict --timeline", () => {
  assert.equal(parse("--timeline always").timeline, "always");
  assert.equal(parse("--timeline off").timeline, "off");
  assert.equal(parse("--timeline=auto").timeline, "auto");
  assert.equal(parse("--no-timeline --timeline off").timeline, "off");
  assertUsage("--timeline sometimes", "--timeline", "sometimes");
  assertUsage("--timeline always --no-timeline", "--no-timeline", "contradicts --timeline always");
});

test("-n out of range or not an integer names -n and the value", () => {
  assertUsage("-n 0", "-n", "0");
  assertUsage("-n 100000", "-n", "100000");
  assertUsage("-n abc", "-n", "abc");
  assertUsage("-n 2.5", "-n", "2.5");
  assertUsage("--workers 0", "--workers");
});

test("unknown flags, missing values and bad choices name the flag", () => {
  assertUsage("--frobnicate", "--frobnicate");
  assertUsage("-n", "-n", "needs a value");
  assertUsage("-n 2 --timeout", "--timeout", "needs a value");
  assertUsage("--timeout -1", "--timeout");
  assertUsage("--group-outputs sideways", "--group-outputs", "sideways");
  assertUsage("--tf-backend cuda", "--tf-backend", "cuda");
  assertUsage("--backend mpi", "--backend", "mpi");
  assertUsage("-n 2 -n 3", "-n", "twice");
  assertUsage("--no-timeline=yes", "--no-timeline");
  assertUsage("extra", "extra");
});

test("--link checks keys and units and names --link", () => {
  assertUsage("--link bandwidth=fast", "--link");
  assertUsage("--link latency=3parsecs", "--link");
  assertUsage("--link speed=1Gbit", "--link");
});

test("--hosts implies --backend hosts and goes with no other backend; the launcher flags need --hosts", () => {
  assertUsage("--backend threads --hosts a:1,b:2", "--hosts");
  assert.equal(parse("--backend hosts --hosts a:1,b:2").hosts, "a:1,b:2");
  const implied = parse("--hosts a,b --launcher ssh --ssh-config cfg --agent-command /opt/distlab");
  assert.deepEqual([implied.backend, implied.launcher, implied.sshConfig, implied.agentCommand], ["hosts", "ssh", "cfg", "/opt/distlab"]);
  assert.equal(parse("--hosts a,b").launcher, undefined);
  assertUsage("--launcher ssh", "--launcher");
  assertUsage("--backend processes --ssh-config cfg", "--ssh-config");
  assert.equal(parse("--hosts a,b --ssh-tunnel").sshTunnel, true);
  assertUsage("--backend processes --ssh-tunnel", "--ssh-tunnel");
  assertUsage("--hosts a --launcher rsh", "--launcher");
});

test("help lists every flag of the spec with its alias", () => {
  const help = distributedHelp();
  for (const flag of DISTRIBUTED_FLAGS) {
    assert.ok(help.includes(`--${flag.name}`), `help should list --${flag.name}`);
    if (flag.alias) assert.ok(help.includes(`-${flag.alias},`), `help should list -${flag.alias}`);
  }
  const dist = distHelp();
  for (const sub of DIST_SUBCOMMANDS) assert.ok(dist.includes(`%dist ${sub.name}`), `help should list %dist ${sub.name}`);
  assert.ok(dist.includes("--export FILE"));
});

test("%dist subcommands parse, and bad ones name the word at fault", () => {
  assert.deepEqual(parseDistCommand(["status"]), { command: "status" });
  assert.deepEqual(parseDistCommand(["push", "weights"]), { command: "push", name: "weights" });
  assert.deepEqual(parseDistCommand(["timeline", "--export", "trace.json"]), { command: "timeline", exportFile: "trace.json" });
  assert.deepEqual(parseDistCommand(["timeline", "--into", "trace"]), { command: "timeline", into: "trace" });
  const cases: Array<[string[], string]> = [
    [["frobnicate"], "frobnicate"],
    [[], "missing subcommand"],
    [["push"], "NAME"],
    [["pull", "a", "b"], "'b'"],
    [["push", "1abc"], "1abc"],
    [["status", "--verbose"], "--verbose"],
    [["timeline", "--export"], "--export"],
    [["timeline", "--into", "1st"], "--into"],
  ];
  for (const [words, culprit] of cases) {
    assert.throws(
      () => parseDistCommand(words),
      (error: unknown) => error instanceof UsageError && error.message.includes(culprit),
      `%dist ${words.join(" ")} should fail naming ${culprit}`,
    );
  }
});

test("splitMagic finds cell and line magics and leaves plain code alone", () => {
  assert.equal(splitMagic("const x = 1"), undefined);
  const cell = splitMagic("\n%%distributed -n 4\nconsole.log(dist.rank)\n");
  assert.deepEqual(cell, { kind: "cell", name: "distributed", args: "-n 4", body: "console.log(dist.rank)\n", bodyLineOffset: 2 });
  assert.deepEqual(splitMagic("%dist status"), { kind: "line", name: "dist", args: "status", trailingCode: "" });
  assert.equal(splitMagic("%dist pull x\nx")?.kind, "line");
});

test("splitArgs honours quotes and rejects an unterminated one", () => {
  assert.deepEqual(splitArgs(`timeline --export "my trace.json"`), ["timeline", "--export", "my trace.json"]);
  assert.throws(() => splitArgs(`--export "open`), UsageError);
});

test("flag completion comes from the spec", () => {
  assert.deepEqual(completeFlag(DISTRIBUTED_FLAGS, "--t"), ["--tls-cert", "--tls-key", "--tls-ca", "--tls-fingerprint", "--token-file", "--timeout", "--tf-backend", "--timeline"]);
  assert.ok(completeFlag(DISTRIBUTED_FLAGS, "-").includes("-n"));
});
