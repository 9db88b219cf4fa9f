// Running the external tools of the set-up (npm, tsc, pip, apt-get) and
// turning their failures into errors that name the step and the fix.
import { spawn } from "node:child_process";

/** A failure the user can act on: `hint` says what to do next. */
export class SetupError extends Error {
  constructor(message, hint) {
    super(message);
    this.name = "SetupError";
    this.hint = hint;
  }
}

const OUTPUT_TAIL_CHARS = 4000;

/**
 * Runs `command args`, capturing its output so a step prints one line when it
 * works; on failure the last part of the output goes into the error.
 * Resolves to the captured output.
 */
export function runCommand(command, args, { cwd, env, hint } = {}) {
  return new Promise((resolve, reject) => {
    let output = "";
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const collect = (chunk) => {
      output += chunk.toString();
      // Keep memory bounded for chatty installers.
      if (output.length > 4 * OUTPUT_TAIL_CHARS) output = output.slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", (error) => {
      reject(new SetupError(`could not start ${command}: ${error.message}`, hint ?? `install ${command} and put it on PATH`));
    });
    child.on("close", (code, signal) => {
      if (code === 0) return resolve(output);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const tail = output.trim().slice(-OUTPUT_TAIL_CHARS);
      reject(new SetupError(`\`${[command, ...args].join(" ")}\` ${how}${tail ? `:\n${indent(tail)}` : ""}`, hint));
    });
  });
}

function indent(text) {
  return text.split("\n").map((line) => `    ${line}`).join("\n");
}
