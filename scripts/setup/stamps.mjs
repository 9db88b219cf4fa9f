// Content stamps: a step records the hash of its inputs after it succeeds and
// skips its work while the inputs hash the same. Hashes, not timestamps, so a
// fresh clone or a `git checkout` that restores old files is handled right.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** sha256 over the named files' paths and contents; a missing file hashes as absent. */
export function hashFiles(paths) {
  const hash = createHash("sha256");
  for (const path of paths) {
    hash.update(`${path}\0`);
    hash.update(existsSync(path) ? readFileSync(path) : "<absent>");
    hash.update("\0");
  }
  return hash.digest("hex");
}

export function stampMatches(stampPath, digest) {
  return existsSync(stampPath) && readFileSync(stampPath, "utf8").trim() === digest;
}

export function writeStamp(stampPath, digest) {
  mkdirSync(dirname(stampPath), { recursive: true });
  writeFileSync(stampPath, `${digest}\n`);
}
