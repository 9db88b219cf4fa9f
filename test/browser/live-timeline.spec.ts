/**
 * The live timeline end to end: a real JupyterLab with the distlab kernel
 * runs a `%%distributed -n 4` cell that trains a linear model data-parallel
 * for a few seconds. While the cell still runs, its timeline shows 4 rank rows
 * with compute and comm spans; afterwards hover names the op, the saved
 * notebook keeps the final bundle, and light and dark screenshots are kept.
 */
import { test, expect, type Page } from "@playwright/test";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startJupyterLab, type RunningLab } from "./jupyterlab-server";
import { changeTheme, hoverPointsOf, luminance } from "./plot-helpers";

const ARTIFACTS = resolve(__dirname, "..", "..", "test-artifacts", "browser");
const MIME = "application/vnd.distlab.timeline+json";

// Steps of ~60 ms: a data span (rank 3 loads slower, so the others wait in
// allReduce), the gradient of a [256 x 512] least-squares shard, an allReduce
// of the [512] gradient, and the update. The cell trains until the test has seen
// it live and writes the stop file (at most 1,000 steps): rank 0 puts "stop seen"
// in one extra element of the allReduce, so every rank leaves at the same step.
const trainingCell = (stopFile: string) => `%%distributed -n 4
const features = 512, rows = 256;
const w = new Float32Array(features);
const x = Float32Array.from({ length: rows * features }, (_, i) => Math.sin(i * (dist.rank + 1)));
const y = Float32Array.from({ length: rows }, (_, r) => r % 7);
let loss = 0;
const stopFile = ${JSON.stringify(stopFile)};
for (let step = 0; step < 1000; step++) {
  await dist.span("load batch", () => new Promise((r) => setTimeout(r, dist.rank === 3 ? 60 : 40)), { cat: "data", args: { step } });
  const grad = dist.span("forward+backward", () => {
    const g = new Float32Array(features + 1);
    loss = 0;
    for (let r = 0; r < rows; r++) {
      let pred = 0;
      for (let f = 0; f < features; f++) pred += x[r * features + f] * w[f];
      const err = pred - y[r];
      loss += (err * err) / rows;
      for (let f = 0; f < features; f++) g[f] += (2 * err * x[r * features + f]) / rows;
    }
    return g;
  }, { args: { step } });
  if (dist.rank === 0 && require("node:fs").existsSync(stopFile)) grad[features] = 1;
  const mean = await dist.allReduce(grad, { op: "mean" });
  dist.span("optimizer", () => { for (let f = 0; f < features; f++) w[f] -= 0.01 * mean[f]; }, { args: { step } });
  if (mean[features] > 0) break;
}
loss`;

let lab: RunningLab;
let notebookPath: string;
let stopFile: string;

// Tall enough that the cell (code and timeline) is on screen whole.
test.use({ viewport: { width: 1400, height: 1300 } });

test.beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "distlab-live-"));
  notebookPath = join(dir, "train.ipynb");
  stopFile = join(dir, "stop");
  const notebook = {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: "distlab", display_name: "TypeScript (distlab)", language: "typescript" } },
    cells: [{ cell_type: "code", id: "train", execution_count: null, metadata: {}, source: trainingCell(stopFile), outputs: [] }],
  };
  writeFileSync(notebookPath, JSON.stringify(notebook, null, 1));
  lab = await startJupyterLab(dir);
  mkdirSync(ARTIFACTS, { recursive: true });
});

test.afterAll(async () => {
  await lab?.stop();
});

/**
 * The open notebook's kernel as "name: status" ("distlab: idle"), read from the app rather than
 * the status bar's text, which a slow first render or a changed label could hide.
 */
function kernelStatus(page: Page): Promise<string> {
  return page.evaluate(() => {
    type Kernel = { name: string; status: string };
    type Shell = { currentWidget: { sessionContext?: { session?: { kernel?: Kernel | null } | null } } | null };
    const shell = (window as unknown as { jupyterapp: { shell: Shell } }).jupyterapp.shell;
    const kernel = shell.currentWidget?.sessionContext?.session?.kernel;
    return kernel ? `${kernel.name}: ${kernel.status}` : "no kernel yet";
  });
}

/** Categories that have at least one hoverable span (or bin) in the plot now. */
function drawnCategories(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const gd = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-DistlabTimeline-plot") as (HTMLElement & { data?: Array<{ name: string; mode: string; x: number[] }> }) | null;
    return (gd?.data ?? []).filter((t) => t.mode === "markers" && t.x.length > 0).map((t) => t.name);
  });
}

test("a running %%distributed cell shows its live timeline; the saved notebook keeps the final one", async ({ page }) => {
  // Each wait below has its own bound; together they can pass the config's 180 s on a loaded machine.
  test.setTimeout(480_000);
  await page.goto(`${lab.url}/lab/tree/train.ipynb?reset`);
  const cell = page.locator(".jp-NotebookPanel:visible .jp-Cell").first();
  await expect(cell).toBeVisible({ timeout: 90_000 });
  // A keypress sent before the kernel is connected and idle can be lost on a busy machine.
  await expect.poll(() => kernelStatus(page), { timeout: 120_000, intervals: [500] }).toBe("distlab: idle");
  await cell.locator(".jp-InputArea-editor").click();
  // Run in place (Shift+Enter would add a cell below).
  await page.keyboard.press("Control+Enter");

  const prompt = cell.locator(".jp-InputArea-prompt");
  await expect(prompt).toHaveText("[*]:", { timeout: 30_000 });
  const output = cell.locator(".jp-DistlabTimeline").first();
  const plot = output.locator(".jp-DistlabTimeline-plot");
  // The first cell starts the group (TensorFlow.js loads on 4 threads) before the timeline appears.
  await expect.poll(() => plot.locator(".ytick text").allTextContents(), { timeout: 120_000 }).toEqual(["rank 0", "rank 1", "rank 2", "rank 3"]);
  await expect.poll(() => drawnCategories(page), { timeout: 10_000 }).toEqual(expect.arrayContaining(["compute", "comm"]));
  // Still running: what we saw were live updates, not the final bundle.
  expect(await prompt.textContent()).toBe("[*]:");
  await cell.screenshot({ path: join(ARTIFACTS, "timeline-live-running.png") });
  writeFileSync(stopFile, "seen live");

  await expect(prompt).toHaveText("[1]:", { timeout: 120_000 });
  await expect(output.locator(".jp-DistlabTimeline-summary tbody tr")).toHaveCount(4);
  expect(await drawnCategories(page)).toEqual(expect.arrayContaining(["compute", "comm", "data"]));
  // Hovering a collective shows its op; try the best-separated comm spans in turn, since a
  // neighbouring marker a pixel away can win plotly's closest-point hover.
  let hovered = "";
  for (const commPoint of (await hoverPointsOf(page, "comm")).slice(0, 10)) {
    await page.mouse.move(commPoint.x, commPoint.y);
    hovered = (await plot.locator(".hoverlayer .hovertext").first().textContent({ timeout: 2_000 }).catch(() => "")) ?? "";
    if (hovered.includes("op allReduce")) break;
  }
  expect(hovered).toContain("op allReduce");

  await page.mouse.move(0, 0);
  await cell.screenshot({ path: join(ARTIFACTS, "timeline-live-light.png") });
  await changeTheme(page, "JupyterLab Dark");
  await expect(page.locator("body")).toHaveAttribute("data-jp-theme-light", "false", { timeout: 30_000 });
  await expect.poll(async () => luminance(await plot.locator(".ytick text").first().evaluate((el) => getComputedStyle(el).fill)), { timeout: 10_000 })
    .toBeGreaterThan(0.5);
  await cell.screenshot({ path: join(ARTIFACTS, "timeline-live-dark.png") });

  await page.evaluate(() => (window as unknown as { jupyterapp: { commands: { execute(id: string): Promise<unknown> } } }).jupyterapp.commands.execute("docmanager:save"));
  await expect.poll(() => savedTimeline(notebookPath)?.live, { timeout: 30_000 }).toBe(false);
  const saved = savedTimeline(notebookPath)!;
  expect(saved.ranks.map((r) => r.rank)).toEqual([0, 1, 2, 3]);
  expect(saved.hasHtml).toBe(true);
});

/** The timeline output of the saved notebook's first cell, if there is one. */
function savedTimeline(path: string): { live: boolean; ranks: Array<{ rank: number }>; hasHtml: boolean } | undefined {
  const notebook = JSON.parse(readFileSync(path, "utf8")) as { cells: Array<{ outputs?: Array<{ data?: Record<string, unknown> }> }> };
  const data = notebook.cells[0]?.outputs?.find((o) => o.data?.[MIME] !== undefined)?.data;
  if (data === undefined) return undefined;
  const payload = data[MIME] as { live: boolean; ranks: Array<{ rank: number }> };
  // nbformat may store a text output as a list of lines.
  const html = data["text/html"];
  const htmlText = Array.isArray(html) ? html.join("") : html;
  return { live: payload.live, ranks: payload.ranks, hasHtml: typeof htmlText === "string" && htmlText.includes("<svg") };
}
