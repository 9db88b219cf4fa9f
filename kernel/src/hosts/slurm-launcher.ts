/**
 * `%%distributed --launcher slurm`: Slurm starts the agents, which dial this
 * kernel's rendezvous (rendezvous.ts) with `distlab agent --connect HOST:PORT`
 * and take their index from SLURM_PROCID/SLURM_NTASKS (rendezvous-env.ts).
 *
 * Inside an allocation (SLURM_JOB_ID in the kernel's environment) it runs a
 * job step: `srun [--ntasks-per-node 1 -N NODES] /bin/sh -c AGENT`, one agent
 * per task (default) or per node. Outside one, `--slurm "ARGS"` submits
 * `sbatch --parsable ARGS --wrap "srun ... AGENT"` and polls `squeue` while a
 * cell waits, so the cell shows `job 12 queued (Priority)`, then `running on
 * node3`. Closing the group ends the step (SIGTERM to srun) or cancels the
 * job (`scancel JOBID`, run to completion before the kernel goes on, so a
 * kernel that shuts down leaves no job behind).
 *
 * Each agent runs ceil(ranks / SLURM_NTASKS) slots, computed by the task's
 * shell, so the kernel need not know how many tasks ARGS asks for. Ranks
 * inherit the agent's environment: SLURM_PROCID and SLURM_LOCALID (and the
 * CUDA_VISIBLE_DEVICES Slurm sets for --gpus-per-task) pick their GPU.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { UsageError } from "../errors";
import type { AgentStarter } from "./rendezvous";

/** How often a waiting cell asks squeue for the job's state (milliseconds). */
const SQUEUE_POLL_MS = 500;
/** How long srun has to end its step after SIGTERM before it is killed (milliseconds). */
const SRUN_STOP_GRACE_MS = 3000;
/** The last lines of a failed command's stderr shown under the cell. */
const STDERR_LINES = 6;

/** `name` on PATH (as execvp would find it), else undefined. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const directory of (env.PATH ?? "").split(delimiter)) {
    if (directory !== "" && existsSync(join(directory, name))) return join(directory, name);
  }
  return undefined;
}

/** A word for /bin/sh: single-quoted unless it is plainly safe. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface SlurmLaunch {
  /** The shell command that runs one agent (`distlab agent --connect H:P --token-file F`), without --slots. */
  agentCommand: string;
  /** The number of ranks: each agent takes ceil(ranks / SLURM_NTASKS) slots. */
  ranks: number;
  per: "node" | "task";
  /** sbatch arguments (`--slurm`), split into words; undefined inside an allocation. */
  sbatchArgs?: string[];
  /** The allocation the kernel runs in (SLURM_JOB_ID), when it does. */
  allocation?: string;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

/** Refuses what can be refused before the kernel listens: Slurm not installed, neither an allocation nor --slurm. */
export function checkSlurmLaunch(env: NodeJS.ProcessEnv, sbatchArgs: string | undefined): void {
  const inAllocation = env.SLURM_JOB_ID !== undefined && env.SLURM_JOB_ID !== "";
  const needed = inAllocation && sbatchArgs === undefined ? ["srun"] : ["sbatch", "squeue", "scancel"];
  const missing = needed.filter((name) => onPath(name, env) === undefined);
  if (missing.length > 0) {
    throw new UsageError(`%%distributed --launcher slurm: Slurm is not installed here: no ${missing.map((name) => `\`${name}\``).join(", ")} on PATH (${env.PATH ?? "PATH is unset"}); run the kernel on a Slurm login or compute node, or use --launcher env and start the agents yourself`, "--launcher");
  }
  if (!inAllocation && sbatchArgs === undefined) {
    throw new UsageError(
      '%%distributed --launcher slurm: not inside a Slurm allocation (SLURM_JOB_ID is not set in the kernel\'s environment) and no --slurm "ARGS" to submit a job with; give the sbatch arguments, e.g. --slurm "-N 2 --ntasks-per-node 1 --time 1:00:00", or start the kernel inside salloc',
      "--slurm",
    );
  }
}

/** The srun command that starts the agents, as words; the task's shell computes each agent's slots. */
function srunWords(launch: SlurmLaunch): string[] {
  const perNode = launch.per === "node" ? ["--ntasks-per-node=1", `--nodes=${launch.env.SLURM_JOB_NUM_NODES ?? "1"}`, `--ntasks=${launch.env.SLURM_JOB_NUM_NODES ?? "1"}`] : [];
  const slots = `$(( (${launch.ranks} + SLURM_NTASKS - 1) / SLURM_NTASKS ))`;
  return ["srun", "--kill-on-bad-exit=0", ...perNode, "/bin/sh", "-c", `exec ${launch.agentCommand} --slots "${slots}"`];
}

/** The batch script's srun line: per node, the job's node count is read where the script runs. */
function wrappedSrun(launch: SlurmLaunch): string {
  const slots = `$(( (${launch.ranks} + SLURM_NTASKS - 1) / SLURM_NTASKS ))`;
  const perNode = launch.per === "node" ? ' --ntasks-per-node=1 --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES"' : "";
  return `srun --kill-on-bad-exit=0${perNode} /bin/sh -c ${shellWord(`exec ${launch.agentCommand} --slots "${slots}"`)}`;
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-STDERR_LINES).join("\n");
}

export class SlurmStarter implements AgentStarter {
  private step?: ChildProcess;
  /** true while sbatch runs (submitting the job) */
  private submitting = false;
  private stepStderr = "";
  private jobId?: string;
  private jobState?: string;
  private problem?: Error;
  private poller?: NodeJS.Timeout;
  private changed: () => void = () => {};
  private stopped = false;
  /** A gather is waiting: poll squeue while there is a job. */
  private watching = false;

  constructor(private readonly launch: SlurmLaunch) {}

  async ensureStarted(changed: () => void): Promise<void> {
    this.changed = changed;
    if (this.stopped) return;
    if (this.launch.sbatchArgs === undefined) {
      if (this.step && this.step.exitCode === null && this.step.signalCode === null) return;
      this.problem = undefined;
      this.startStep();
      return;
    }
    if ((this.jobId !== undefined || this.submitting) && this.problem === undefined) return;
    this.problem = undefined;
    this.jobId = undefined;
    this.jobState = undefined;
    // Not awaited: sbatch can hang on a slow or unreachable slurmctld, and the gather it wakes stays
    // interruptible meanwhile ("submitting the job" under the cell); its refusal arrives as failure().
    this.submit(this.launch.sbatchArgs).catch((error: Error) => {
      this.problem = error;
      this.changed();
    });
  }

  state(): string | undefined {
    if (this.launch.sbatchArgs === undefined) return this.step ? `srun step in allocation ${this.launch.allocation} (pid ${this.step.pid})` : undefined;
    if (this.jobId === undefined) return "submitting the job";
    return `Slurm job ${this.jobId} ${this.jobState ?? "submitted"}`;
  }

  failure(): Error | undefined {
    return this.problem;
  }

  watch(on: boolean): void {
    this.watching = on;
    clearInterval(this.poller);
    this.poller = undefined;
    if (on && this.jobId !== undefined && !this.stopped) {
      this.poll();
      this.poller = setInterval(() => this.poll(), SQUEUE_POLL_MS);
    }
  }

  stop(): void {
    this.stopped = true;
    this.watch(false);
    // A submission under way is left to finish (killing sbatch could leave a job with no id to
    // cancel); submit cancels the job it reports, as it sees `stopped`.
    const step = this.step;
    if (step && step.exitCode === null && step.signalCode === null) {
      this.launch.log(`ending the srun step (pid ${step.pid})`);
      step.kill("SIGTERM");
      setTimeout(() => step.exitCode === null && step.signalCode === null && step.kill("SIGKILL"), SRUN_STOP_GRACE_MS).unref();
    }
    if (this.jobId !== undefined) {
      // Synchronous: the kernel may exit right after closing the group, and the job must not outlive it.
      const cancelled = spawnSync("scancel", [this.jobId], { env: this.launch.env, encoding: "utf8", timeout: 10_000 });
      this.launch.log(`scancel ${this.jobId}: ${cancelled.status === 0 ? "done" : `status ${cancelled.status}: ${(cancelled.stderr ?? cancelled.error?.message ?? "").trim()}`}`);
    }
  }

  private startStep(): void {
    const words = srunWords(this.launch);
    this.launch.log(`starting agents: ${words.map(shellWord).join(" ")}`);
    const step = spawn(words[0]!, words.slice(1), { env: this.launch.env, stdio: ["ignore", "pipe", "pipe"] });
    this.step = step;
    this.stepStderr = "";
    step.stdout!.on("data", (chunk: Buffer) => this.launch.log(`srun: ${chunk.toString().trimEnd()}`));
    step.stderr!.on("data", (chunk: Buffer) => {
      this.stepStderr = (this.stepStderr + chunk.toString()).slice(-8192);
      this.launch.log(`srun: ${chunk.toString().trimEnd()}`);
    });
    step.on("error", (error) => {
      this.problem = new UsageError(`%%distributed --launcher slurm: srun could not start: ${error.message}`, "--launcher");
      this.changed();
    });
    step.on("exit", (code, signal) => {
      if (this.stopped || this.step !== step) return;
      this.problem = new UsageError(
        `%%distributed --launcher slurm: the srun step in allocation ${this.launch.allocation} ended (${signal ?? `status ${code}`}) before every agent connected${this.stepStderr.trim() ? `; srun said:\n${lastLines(this.stepStderr)}` : ""}`,
        "--launcher",
      );
      this.changed();
    });
  }

  private async submit(args: string[]): Promise<void> {
    const words = ["--parsable", ...args, "--wrap", wrappedSrun(this.launch)];
    this.launch.log(`sbatch ${words.map(shellWord).join(" ")}`);
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string; error?: Error }>((resolve) => {
      const child = spawn("sbatch", words, { env: this.launch.env, stdio: ["ignore", "pipe", "pipe"] });
      this.submitting = true;
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("error", (error) => resolve({ code: null, stdout, stderr, error }));
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
    this.submitting = false;
    const id = /^(\d+)/.exec(result.stdout.trim())?.[1];
    if (result.code !== 0 || id === undefined) {
      const said = result.error?.message ?? (lastLines(result.stderr) || `no job id in its output ${JSON.stringify(result.stdout.trim())}`);
      throw new UsageError(`%%distributed --slurm ${JSON.stringify(args.join(" "))}: sbatch refused the job (status ${result.code}): ${said}`, "--slurm");
    }
    this.jobId = id;
    this.jobState = "submitted";
    this.launch.log(`submitted Slurm job ${id}`);
    if (this.stopped) this.stop();
    else if (this.watching) this.watch(true);
    this.changed();
  }

  /** One squeue call: the job's state and reason or nodes; a job squeue no longer lists has ended. */
  private poll(): void {
    const id = this.jobId;
    if (id === undefined) return;
    const child = spawn("squeue", ["--noheader", "--jobs", id, "--format", "%T|%r|%N"], { env: this.launch.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.on("error", () => {});
    child.on("close", (code) => {
      if (this.jobId !== id || this.stopped) return;
      const [state, reason, nodes] = stdout.trim().split("|");
      let shown: string;
      if (code === 0 && state) shown = state === "PENDING" ? `queued (${reason || "pending"})` : state === "RUNNING" ? `running on ${nodes}` : state.toLowerCase();
      else shown = "ended";
      if (shown === "ended" || /^(completed|failed|cancelled|timeout|node_fail|out_of_memory|preempted)/.test(shown)) {
        this.problem = new UsageError(`%%distributed --slurm: Slurm job ${id} ${shown} before every agent connected${this.jobOutput(id)}`, "--slurm");
      }
      if (shown !== this.jobState) {
        this.jobState = shown;
        this.changed();
      }
    });
  }

  /** The tail of the job's output file when it is sbatch's default and readable here. */
  private jobOutput(id: string): string {
    const file = `slurm-${id}.out`;
    try {
      return `; its output (${file}):\n${lastLines(readFileSync(file, "utf8"))}`;
    } catch {
      return `; see its output file (${file} in the kernel's directory unless the arguments name another)`;
    }
  }
}
