/**
 * Reads and checks a Jupyter connection file (the JSON that a frontend writes
 * before it starts the kernel): transport, ip, the five ports, the key.
 */
import { readFileSync } from "node:fs";

export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme: string;
}

export const CHANNELS = ["shell", "iopub", "stdin", "control", "hb"] as const;
export type Channel = (typeof CHANNELS)[number];

export class ConnectionFileError extends Error {
  override name = "ConnectionFileError";
}

export function parseConnectionInfo(raw: unknown, source: string): ConnectionInfo {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConnectionFileError(`${source}: a connection file must hold a JSON object`);
  }
  const fields = raw as Record<string, unknown>;
  const transport = fields.transport ?? "tcp";
  if (transport !== "tcp" && transport !== "ipc") {
    throw new ConnectionFileError(`${source}: transport must be "tcp" or "ipc", got ${JSON.stringify(transport)}`);
  }
  const ip = fields.ip ?? "127.0.0.1";
  if (typeof ip !== "string" || ip === "") {
    throw new ConnectionFileError(`${source}: ip must be a non-empty string`);
  }
  const ports: Partial<Record<`${Channel}_port`, number>> = {};
  for (const channel of CHANNELS) {
    const name = `${channel}_port` as const;
    const port = fields[name];
    // Port 0 is not accepted: the frontend must know the port it will connect to.
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConnectionFileError(`${source}: ${name} must be an integer from 1 to 65535, got ${JSON.stringify(port)}`);
    }
    ports[name] = port;
  }
  const key = fields.key ?? "";
  if (typeof key !== "string") throw new ConnectionFileError(`${source}: key must be a string`);
  const scheme = fields.signature_scheme ?? "hmac-sha256";
  if (typeof scheme !== "string") throw new ConnectionFileError(`${source}: signature_scheme must be a string`);
  return { transport, ip, ...(ports as Required<typeof ports>), key, signature_scheme: scheme };
}

export function readConnectionFile(path: string): ConnectionInfo {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConnectionFileError(`cannot read connection file ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConnectionFileError(`connection file ${path} is not JSON: ${(error as Error).message}`);
  }
  return parseConnectionInfo(raw, `connection file ${path}`);
}

/** The zeromq endpoint for one channel: tcp://ip:port, or ipc://ip-port as jupyter_client names them. */
export function endpoint(info: ConnectionInfo, channel: Channel): string {
  const port = info[`${channel}_port`];
  return info.transport === "tcp" ? `tcp://${info.ip}:${port}` : `ipc://${info.ip}-${port}`;
}
