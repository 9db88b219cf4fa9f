// Real `distlab agent` processes for the hosts tests: started from source on
// 127.0.0.1 port 0 (the port is read from the agent's log), with a token file
// of the mode a test asks for. Each agent's log lines are kept for the checks.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";

const CLI = resolve(__dirname, "../../kernel/src/cli.ts");

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "distlab-hosts-"));
}

/** A token file of `mode` in `dir`; returns its path and the token. */
export function writeToken(dir: string, mode = 0o600, name = "token"): { path: string; token: string } {
  const token = randomBytes(32).toString("hex");
  const path = join(dir, name);
  writeFileSync(path, `${token}\n`, { mode });
  chmodSync(path, mode);
  return { path, token };
}

export interface AgentProcess {
  child: ChildProcess;
  port: number;
  /** Every line the agent logged so far. */
  log: string[];
  /** Resolves with the first log line matching `pattern` (after `from` lines), or rejects after `ms`. */
  waitForLog(pattern: RegExp, from?: number, ms?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Runs `distlab agent` with `args` (and `env` added to its environment); resolves once it listens (or rejects with its stderr if it exits). */
export function startAgentProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<AgentProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "agent", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  const log: string[] = [];
  const waiters: Array<() => void> = [];
  let partial = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (text: string) => {
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop()!;
    log.push(...lines);
    for (const wake of waiters.splice(0)) wake();
  });
  const waitForLog = (pattern: RegExp, from = 0, ms = 20_000): Promise<string> =>
    new Promise((resolveLine, reject) => {
      const deadline = setTimeout(() => reject(new Error(`the agent never logged ${pattern}; its log:\n${log.join("\n")}`)), ms);
      const check = () => {
        const line = log.slice(from).find((entry) => pattern.test(entry));
        if (line !== undefined) {
          clearTimeout(deadline);
          resolveLine(line);
        } else waiters.push(check);
      };
      check();
    });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once("exit", () => done()));
    child.kill("SIGTERM");
    await exited;
  };
  return new Promise((resolveAgent, reject) => {
    child.once("exit", (code) => reject(new Error(`distlab agent exited (code ${code}): ${log.join("\n")}${partial}`)));
    waitForLog(/listening on /).then((line) => {
      const port = Number(/:(\d+) \(protocol/.exec(line)![1]);
      resolveAgent({ child, port, log, waitForLog, stop });
    }, reject);
  });
}
