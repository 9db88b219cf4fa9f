// Finding and ending processes that a test run left behind. Jupyter starts each
// kernel in a session of its own, so ending the test runner's process group
// would miss them; instead every process of a run carries an environment marker
// and is found through /proc (Linux; elsewhere this finds nothing).
import { existsSync, readdirSync, readFileSync } from "node:fs";

function environmentOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  } catch {
    return []; // The process ended meanwhile, or is not ours to read.
  }
}

function commandOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim().slice(0, 120);
  } catch {
    return "?";
  }
}

/** Sends SIGKILL to every process whose environment holds `marker` (NAME=VALUE); returns "pid command" of each. */
export function killProcessesMarkedWith(marker) {
  if (!existsSync("/proc")) return [];
  const ended = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    if (!environmentOf(pid).includes(marker)) continue;
    const description = `${pid} ${commandOf(pid)}`;
    try {
      process.kill(pid, "SIGKILL");
      ended.push(description);
    } catch {
      // Already gone.
    }
  }
  return ended;
}
