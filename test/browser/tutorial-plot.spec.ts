/**
 * An executed tutorial's plots in a real JupyterLab (its built-in Vega
 * renderer, no extension): hovering a plotted point shows that point's series,
 * x and y as the kernel computed them, clicking a legend entry fades the other
 * series, and the plot is drawn in the dark theme when JupyterLab is dark. The
 * same notebook converted by `jupyter nbconvert --to html` shows the plot as
 * an SVG image. Screenshots land in test-artifacts/browser/tutorial-plot-*.png.
 */
import { test, expect, type Locator, type Page } from "@playwright/test";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startJupyterLab, type RunningLab } from "./jupyterlab-server";
import { executedTutorial, type Notebook } from "./executed-tutorial";
import { changeTheme, luminance } from "./plot-helpers";

const ROOT = resolve(__dirname, "..", "..");
const ARTIFACTS = join(ROOT, "test-artifacts", "browser");
const TUTORIAL = "08-stragglers.ipynb";
const VEGA_LITE = "application/vnd.vegalite.v5+json";

interface Row { series: string; x: number; y: number }
interface PlotSpec { title: string; data: { values: Row[] }; encoding: { x: { title: string }; y: { title: string } } }

let lab: RunningLab;
let dir: string;
/** The Vega-Lite specs of the executed tutorial's plot outputs, in notebook order. */
let specs: PlotSpec[];

test.beforeAll(async () => {
  test.setTimeout(600_000);
  dir = mkdtempSync(join(tmpdir(), "distlab-plots-"));
  const notebookPath = join(dir, TUTORIAL);
  console.log(`${TUTORIAL}: ${await executedTutorial(TUTORIAL, notebookPath)}`);
  const notebook = JSON.parse(readFileSync(notebookPath, "utf8")) as Notebook;
  specs = notebook.cells.flatMap((cell) => cell.outputs ?? []).filter((o) => o.data?.[VEGA_LITE]).map((o) => o.data![VEGA_LITE] as PlotSpec);
  const converted = spawnSync(join(ROOT, ".venv", "bin", "jupyter"), ["nbconvert", "--to", "html", notebookPath], { cwd: dir, encoding: "utf8" });
  if (converted.status !== 0) throw new Error(`jupyter nbconvert --to html ${TUTORIAL} failed:\n${converted.stderr}`);
  // Every cell attached to the page (JupyterLab otherwise renders only cells near the viewport),
  // so the plots far down the tutorial render when it opens.
  const notebookSettings = join(dir, ".lab-settings", "@jupyterlab", "notebook-extension");
  mkdirSync(notebookSettings, { recursive: true });
  writeFileSync(join(notebookSettings, "tracker.jupyterlab-settings"), JSON.stringify({ windowingMode: "none" }));
  lab = await startJupyterLab(dir);
  mkdirSync(ARTIFACTS, { recursive: true });
});

test.afterAll(async () => {
  await lab?.stop();
});

/** The number as the spec's tooltip formats it (d3 ",.4~g" for y, ",~g" for x). */
const formatted = (value: number, digits: number): string => new Intl.NumberFormat("en-US", { maximumSignificantDigits: digits }).format(value);

/** Key -> value of the Vega tooltip on screen. */
async function tooltipRows(page: Page): Promise<Record<string, string>> {
  const tooltip = page.locator("#vg-tooltip-element.visible");
  await expect(tooltip).toBeVisible({ timeout: 10_000 });
  const rows = await tooltip.locator("tr").evaluateAll((trs) => trs.map((tr) => [tr.querySelector(".key")?.textContent ?? "", tr.querySelector(".value")?.textContent ?? ""]));
  return Object.fromEntries(rows.map(([key, value]) => [key!.replace(/:$/, ""), value!]));
}

/** Hovers the plotted point of data row `index` (vega draws a point mark's items in data order) and checks the tooltip. */
async function hoverAndCheck(page: Page, plot: Locator, spec: PlotSpec, index: number): Promise<void> {
  const points = plot.locator("g.mark-symbol.role-mark path");
  await expect(points).toHaveCount(spec.data.values.length, { timeout: 30_000 });
  await points.nth(index).scrollIntoViewIfNeeded();
  const box = (await points.nth(index).boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const row = spec.data.values[index]!;
  expect(await tooltipRows(page)).toEqual({
    series: row.series,
    [spec.encoding.x.title]: formatted(row.x, 6),
    [spec.encoding.y.title]: formatted(row.y, 4),
  });
}

/** Luminance of the first tick label's fill: dark text on a light page, light text on a dark one. */
async function tickLuminance(plot: Locator): Promise<number> {
  return luminance(await plot.locator("g.role-axis-label text").first().evaluate((el) => getComputedStyle(el).fill));
}

test("hovering a tutorial plot's point shows its values, the legend toggles series, in light and dark themes", async ({ page }) => {
  test.setTimeout(480_000);   // JupyterLab opens a long notebook twice (light, then dark) on a loaded machine
  expect(specs.map((s) => s.title)).toEqual(["Training loss (rank 0's batch)", "Step time per policy (rank 3 slowed 3x)"]);
  const spec = specs[1]!;   // step time (ms) per integer step, 3 policies
  const series = [...new Set(spec.data.values.map((r) => r.series))];
  const probe = spec.data.values.findIndex((r) => r.series === series[1] && r.x === 3);   // a point in the middle of the second series
  expect(probe).toBeGreaterThan(0);

  await page.goto(`${lab.url}/lab/tree/${TUTORIAL}?reset`);
  const plots = page.locator(".jp-NotebookPanel:visible .jp-RenderedVegaLite");
  await expect(plots).toHaveCount(2, { timeout: 90_000 });
  let plot = plots.nth(1);
  await expect(plot.locator("svg.marks")).toBeVisible({ timeout: 60_000 });
  await plot.scrollIntoViewIfNeeded();
  const xLabels = await plot.locator("g.role-axis").filter({ has: page.locator("g.role-axis-title text", { hasText: spec.encoding.x.title }) }).locator("g.role-axis-label text").allTextContents();
  expect(xLabels.length).toBeGreaterThan(2);
  expect(xLabels.every((label) => /^\d+$/.test(label)), `step axis labels: ${xLabels.join(", ")}`).toBe(true);

  await hoverAndCheck(page, plot, spec, probe);
  await page.screenshot({ path: join(ARTIFACTS, "tutorial-plot-light-hover.png"), clip: await clipAround(plot) });
  expect(await tickLuminance(plot)).toBeLessThan(0.5);

  // Legend toggling: clicking a series' entry leaves that series opaque and fades the others.
  const lines = plot.locator("g.mark-line.role-mark path");
  await expect(lines).toHaveCount(series.length);
  // A click where the entry is drawn (not locator.click: without the legend binding the label takes no pointer events, and it would wait forever).
  const entry = (await plot.locator("g.role-legend-label text", { hasText: new RegExp(`^${series[1]}$`) }).boundingBox())!;
  await page.mouse.click(entry.x + entry.width / 2, entry.y + entry.height / 2);
  await expect.poll(async () => lines.evaluateAll((paths) => paths.map((p) => Number(getComputedStyle(p).opacity))), { timeout: 10_000 })
    .toEqual(series.map((_, i) => (i === 1 ? 1 : 0.12)));
  await page.mouse.move(0, 0);
  await plot.screenshot({ path: join(ARTIFACTS, "tutorial-plot-light-legend.png") });

  // Dark: the renderer picks Vega's theme when it draws, so reopen the notebook after switching.
  await changeTheme(page, "JupyterLab Dark");
  await expect(page.locator("body")).toHaveAttribute("data-jp-theme-light", "false", { timeout: 30_000 });
  await page.reload();
  await expect(plots).toHaveCount(2, { timeout: 90_000 });
  plot = plots.nth(1);
  await expect(plot.locator("svg.marks")).toBeVisible({ timeout: 60_000 });
  await plot.scrollIntoViewIfNeeded();
  await expect.poll(() => tickLuminance(plot), { timeout: 10_000 }).toBeGreaterThan(0.5);
  await hoverAndCheck(page, plot, spec, probe);
  await page.screenshot({ path: join(ARTIFACTS, "tutorial-plot-dark-hover.png"), clip: await clipAround(plot) });
  await changeTheme(page, "JupyterLab Light");
});

test("the tutorial converted by nbconvert shows each plot as an SVG image", async ({ page }) => {
  await page.goto(`file://${join(dir, TUTORIAL.replace(/\.ipynb$/, ".html"))}`);
  const images = page.locator('.jp-RenderedSVG[data-mime-type="image/svg+xml"] img');
  await expect(images).toHaveCount(specs.length);
  for (const [i, spec] of specs.entries()) {
    const image = images.nth(i);
    await image.scrollIntoViewIfNeeded();
    expect(await image.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 100)).toBe(true);
    const svg = Buffer.from((await image.getAttribute("src"))!.replace(/^data:image\/svg\+xml;base64,/, ""), "base64").toString();
    expect(svg).toContain(`X-axis titled '${spec.encoding.x.title}'`);
    expect(svg.replace(/&#39;/g, "'")).toContain(`>${spec.title}</text>`);
  }
  await images.nth(1).screenshot({ path: join(ARTIFACTS, "tutorial-plot-nbconvert.png") });
});

/** The plot and room below-right of it for the tooltip. */
async function clipAround(plot: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  const box = (await plot.boundingBox())!;
  return { x: Math.max(0, box.x - 10), y: Math.max(0, box.y - 10), width: box.width + 220, height: box.height + 80 };
}
