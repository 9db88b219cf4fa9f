/** distlab's version, as package.json says. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

export function packageVersion(): string {
  // Read at run time: package.json sits outside the compiled rootDir. Same path from src/ and dist/.
  const manifest = JSON.parse(readFileSync(resolve(__dirname, "..", "package.json"), "utf8")) as { version: string };
  return manifest.version;
}
