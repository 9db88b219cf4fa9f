/**
 * Starts the JupyterLab of .venv on a free port in a scratch folder, without
 * a token, and with the app exposed as `window.jupyterapp` (to switch themes).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

const ROOT = resolve(__dirname, "..", "..");

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port"))));
    });
  });
}

export interface RunningLab {
  url: string;
  stop(): Promise<void>;
}

/** Settings and workspaces live under `rootDir`, so a run starts in the light theme and leaves the user's alone. */
export async function startJupyterLab(rootDir: string): Promise<RunningLab> {
  const port = await freePort();
  // No "fetch Jupyter news?" toast over the screenshots.
  const notificationSettings = join(rootDir, ".lab-settings", "@jupyterlab", "apputils-extension");
  mkdirSync(notificationSettings, { recursive: true });
  writeFileSync(join(notificationSettings, "notification.jupyterlab-settings"), JSON.stringify({ fetchNews: "false" }));
  const env = {
    ...process.env,
    JUPYTER_PLATFORM_DIRS: "1",
    JUPYTERLAB_SETTINGS_DIR: join(rootDir, ".lab-settings"),
    JUPYTERLAB_WORKSPACES_DIR: join(rootDir, ".lab-workspaces"),
  };
  const child: ChildProcess = spawn(join(ROOT, ".venv", "bin", "jupyter"), [
    "lab", "--no-browser", `--port=${port}`, "--ip=127.0.0.1", `--ServerApp.root_dir=${rootDir}`,
    "--IdentityProvider.token=", "--ServerApp.password=", "--LabApp.expose_app_in_browser=True",
    "--ServerApp.disable_check_xsrf=True", "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
  ], { cwd: rootDir, stdio: ["ignore", "pipe", "pipe"], env });
  let log = "";
  child.stdout?.on("data", (d) => (log += d));
  child.stderr?.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`JupyterLab exited with ${child.exitCode}:\n${log.slice(-3000)}`);
    try {
      const response = await fetch(`${url}/api/status`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`JupyterLab did not start within 90 s:\n${log.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    url,
    stop: () => new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      // Kernels the notebooks started are shut down on SIGTERM; a server still up after 10 s is killed.
      const killTimer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", () => {
        clearTimeout(killTimer);
        done();
      });
      child.kill("SIGTERM");
    }),
  };
}
