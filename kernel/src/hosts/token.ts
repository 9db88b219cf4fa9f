/**
 * The shared secret of a kernel and its agents: a file only its owner can
 * read (as ssh refuses a private key others can read), holding at least
 * MIN_TOKEN_CHARS characters. The token is used as an HMAC key only; it is
 * never sent, logged or printed.
 */
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../errors";

/** The token file used when `--token-file` is not given, as the docs name it. */
export const DEFAULT_TOKEN_FILE_HELP = "$DISTLAB_TOKEN_FILE, else $XDG_CONFIG_HOME/distlab/token, else ~/.config/distlab/token";

/** The default token file: $DISTLAB_TOKEN_FILE, else $XDG_CONFIG_HOME/distlab/token, else ~/.config/distlab/token. */
export function defaultTokenFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DISTLAB_TOKEN_FILE) return env.DISTLAB_TOKEN_FILE;
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "distlab", "token");
}

/** Fewest characters a token may have (e.g. `openssl rand -hex 32` gives 64). */
export const MIN_TOKEN_CHARS = 16;

/** Reads the token at `path`; every refusal names `flag` and the file. */
export function readTokenFile(path: string, flag = "--token-file"): Buffer {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`${flag} ${path}: ${code === "ENOENT" ? "no such file" : (error as Error).message}`, flag);
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, "0");
    throw new UsageError(`${flag} ${path}: the token file has mode ${octal}, readable by group or others; run chmod 600 ${path}`, flag);
  }
  const token = readFileSync(path, "utf8").trim();
  if (token.length < MIN_TOKEN_CHARS) throw new UsageError(`${flag} ${path}: the token is ${token.length} characters, fewer than ${MIN_TOKEN_CHARS}`, flag);
  return Buffer.from(token, "utf8");
}
