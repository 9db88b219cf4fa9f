/**
 * The tutorials' plots (kernel/src/techniques/plot.ts, loss-plot.ts): the SVG
 * that vega draws in Node has round, distinct tick labels and whole numbers
 * on step axes, for data picked to land ticks on awkward values; the result's
 * mime bundle carries the Vega-Lite spec and the SVG and nothing else.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import * as vegaLite from "vega-lite";
import { lossPlot, plotSpec, plotSvg, seriesOf, VEGA_LITE_MIME_TYPE, type PlotOptions, type PlotSeries } from "../../kernel/src/techniques";

const MIME_BUNDLE = Symbol.for("distlab.mimeBundle");

/** 8 integer steps, losses from 1.7349 down to 0.4812: the range whose fifths gave 0.48, 0.79, 1.1, ... */
const STEPS = [1, 2, 3, 4, 5, 6, 7, 8];
const STEP_LOSSES = [1.7349, 1.2034, 0.9411, 0.7713, 0.6522, 0.5707, 0.5166, 0.4812];
/** 16 evaluations over 8,192 samples (every 512). */
const SAMPLES = Array.from({ length: 16 }, (_, i) => 512 * (i + 1));
const SAMPLE_LOSSES = SAMPLES.map((s) => 0.4812 + (1.7349 - 0.4812) * Math.exp(-s / 2048));

interface Axis {
  /** the axis's aria-label, e.g. "X-axis titled 'step' for a linear scale with values from 1 to 8" */
  description: string;
  labels: string[];
}

/** The visible tick labels of each axis in vega's SVG (labels hidden for overlap have opacity 0). */
function axesOf(svg: string): { x: Axis; y: Axis } {
  const axes: Record<string, Axis> = {};
  for (const match of svg.matchAll(/aria-label="([XY])-axis ([^"]*)"/g)) {
    const rest = svg.slice(match.index);
    const group = /<g class="mark-text role-axis-label"[^>]*>(.*?)<\/g>/.exec(rest);
    assert.ok(group, `no tick labels after the ${match[1]}-axis`);
    const labels = [...group[1]!.matchAll(/<text([^>]*)>([^<]*)<\/text>/g)].filter((t) => !/opacity="0"/.test(t[1]!)).map((t) => t[2]!);
    axes[match[1]!.toLowerCase()] = { description: match[2]!, labels };
  }
  assert.ok(axes.x && axes.y, "the SVG has no X-axis and Y-axis groups");
  return { x: axes.x, y: axes.y };
}

/** Round: every tick is a whole multiple of one step of 1, 2 or 5 x 10^k (the step a reader can count in). */
function assertRound(labels: string[], axis: string): void {
  const values = labels.map((label) => Number(label.replace(/,/g, "")));
  assert.ok(values.every(Number.isFinite), `${axis}: labels are not plain numbers: ${labels.join(", ")}`);
  assert.ok(values.length >= 3, `${axis}: only ${values.length} tick labels: ${labels.join(", ")}`);
  assert.equal(new Set(labels).size, labels.length, `${axis}: repeated tick labels: ${labels.join(", ")}`);
  const step = values[1]! - values[0]!;
  const exponent = Math.floor(Math.log10(step) + 1e-9);
  const mantissa = step / 10 ** exponent;
  assert.ok([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-6), `${axis}: tick step ${step} is not 1, 2 or 5 x 10^k: ${labels.join(", ")}`);
  for (const value of values) {
    const multiple = value / step;
    assert.ok(Math.abs(multiple - Math.round(multiple)) < 1e-6, `${axis}: tick ${value} is not a multiple of the step ${step}: ${labels.join(", ")}`);
  }
}

async function svgOf(series: PlotSeries[], options: PlotOptions): Promise<string> {
  const bundle = await (lossPlot(series, options) as unknown as Record<symbol, () => Promise<Record<string, unknown>>>)[MIME_BUNDLE]!();
  return bundle["image/svg+xml"] as string;
}

test("awkward losses over 8 integer steps: round, distinct tick labels, integers on the step axis", async () => {
  const svg = await svgOf([seriesOf("2 ranks", STEPS, STEP_LOSSES)], { title: "Awkward", xLabel: "step", yLabel: "training loss (nats)" });
  const { x, y } = axesOf(svg);
  assert.match(x.description, /titled 'step'/);
  assert.ok(x.labels.every((label) => /^\d+$/.test(label)), `step axis labels are not all integers: ${x.labels.join(", ")}`);
  assertRound(x.labels, "step axis");
  assertRound(y.labels, "loss axis");
  assert.match(y.description, /titled 'training loss \(nats\)' for a linear scale/);
});

test("losses over 8,192 samples: round sample ticks (thousands grouped) and loss ticks", async () => {
  const svg = await svgOf([seriesOf("1 rank", SAMPLES, SAMPLE_LOSSES), seriesOf("8 ranks", SAMPLES, SAMPLE_LOSSES.map((l) => l * 1.03))],
    { title: "Samples", xLabel: "samples (all ranks)", yLabel: "held-out loss (nats)" });
  const { x, y } = axesOf(svg);
  assertRound(x.labels, "samples axis");
  assertRound(y.labels, "loss axis");
  assert.ok(x.labels.some((label) => label.includes(",")), `samples axis labels should group thousands: ${x.labels.join(", ")}`);
});

test("a quantity spanning decades goes on a log scale unless told otherwise; decade labels in one form", async () => {
  const distances = STEPS.map((s) => 3.3 * 10 ** -s);
  const auto = axesOf(await svgOf([seriesOf("ring", STEPS, distances)], { title: "Consensus", xLabel: "step", yLabel: "distance" }));
  assert.match(auto.y.description, /for a log scale/);
  assert.ok(auto.y.labels.every((label) => /^\d(e[+-]\d+)$/.test(label)), `log axis labels: ${auto.y.labels.join(", ")}`);
  assert.equal(new Set(auto.y.labels).size, auto.y.labels.length);
  const linear = axesOf(await svgOf([seriesOf("ring", STEPS, distances)], { title: "Consensus", xLabel: "step", yLabel: "distance", logY: false }));
  assert.match(linear.y.description, /for a linear scale/);
  const narrow = axesOf(await svgOf([seriesOf("2 ranks", STEPS, STEP_LOSSES)], { title: "Loss", xLabel: "step", yLabel: "loss" }));
  assert.match(narrow.y.description, /for a linear scale/, "losses within one decade stay linear");
});

test("the result carries the Vega-Lite spec and its SVG, no plotly JSON; the spec compiles without warnings", async () => {
  const series = [seriesOf("a", [1, 2, 3], [0.9, NaN, 0.7]), seriesOf("b", [1, 2, 3], [1.1, 1.0, 0.8])];
  const plot = lossPlot(series, { title: "Two series", xLabel: "step", yLabel: "loss (nats)" });
  const bundle = await (plot as unknown as Record<symbol, () => Promise<Record<string, unknown>>>)[MIME_BUNDLE]!();
  assert.deepEqual(Object.keys(bundle).sort(), ["image/svg+xml", "text/plain", VEGA_LITE_MIME_TYPE].sort());
  assert.equal(VEGA_LITE_MIME_TYPE, "application/vnd.vegalite.v5+json");
  const spec = bundle[VEGA_LITE_MIME_TYPE] as { data: { values: unknown[] }; layer: { encoding?: { tooltip?: { field: string }[] } }[] };
  assert.deepEqual(spec.data.values, [
    { series: "a", x: 1, y: 0.9 }, { series: "a", x: 3, y: 0.7 },
    { series: "b", x: 1, y: 1.1 }, { series: "b", x: 2, y: 1.0 }, { series: "b", x: 3, y: 0.8 },
  ], "the non-finite point is left out");
  assert.deepEqual(spec.layer[1]!.encoding!.tooltip!.map((t) => t.field), ["series", "x", "y"]);
  assert.equal(bundle["text/plain"], "Two series: a ends at 0.7; b ends at 0.8");
  const warnings: string[] = [];
  const logger = { level: () => logger, error: (...m: unknown[]) => { warnings.push(m.join(" ")); return logger; }, warn: (...m: unknown[]) => { warnings.push(m.join(" ")); return logger; }, info: () => logger, debug: () => logger } as never;
  vegaLite.compile(spec as never, { logger });
  assert.deepEqual(warnings, []);
  assert.match(await plotSvg(plotSpec(series, { title: "Two series", xLabel: "step", yLabel: "loss (nats)" })), /^<svg[^>]*>.*<\/svg>$/s);
});

test("bad plots fail at the call with the plot or option named", () => {
  assert.throws(() => lossPlot([seriesOf("a", [1], [NaN])], { title: "Empty", xLabel: "step", yLabel: "loss" }), /plot "Empty": no finite points to draw in 1 series/);
  assert.throws(() => lossPlot([seriesOf("a", [1, 2], [0, -1])], { title: "Log", xLabel: "step", yLabel: "loss", logY: true }), /plot "Log": no finite, positive points/);
  assert.throws(() => seriesOf("a", [1, 2], [1]), /seriesOf: a has 2 x values and 1 y values/);
  assert.throws(() => lossPlot([], { title: "T", xLabel: "step", yLabel: "loss", width: 10 }), /plot "T": options.width must be a number of pixels >= 50, got 10/);
  assert.throws(() => lossPlot([], { title: "T", xLabel: "step" } as PlotOptions), /options.yLabel must be a string/);
  assert.throws(() => lossPlot(undefined as never, { title: "T", xLabel: "step", yLabel: "loss" }), /lossPlot: series must be an array/);
});

test("vega and vega-lite load only when a plot is first shown, not with distlab/techniques", () => {
  // A fresh process: this test file itself imports vega-lite.
  const script = `
    const loaded = () => Object.keys(require.cache).filter((path) => /[\\\\/]node_modules[\\\\/](vega|vega-lite)[\\\\/]/.test(path)).length;
    const techniques = require(${JSON.stringify(join(__dirname, "..", "..", "kernel", "src", "techniques"))});
    const plot = techniques.lossPlot([techniques.seriesOf("a", [1, 2], [1, 0.5])], { title: "t", xLabel: "step", yLabel: "loss" });
    const atImport = loaded();
    plot[Symbol.for("distlab.mimeBundle")]().then(() => console.log(JSON.stringify({ atImport, afterShow: loaded() })));`;
  const child = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { encoding: "utf8", cwd: join(__dirname, "..", "..") });
  assert.equal(child.status, 0, child.stderr);
  const counts = JSON.parse(child.stdout.trim().split("\n").at(-1)!) as { atImport: number; afterShow: number };
  assert.equal(counts.atImport, 0, "importing distlab/techniques and building a plot loaded vega");
  assert.ok(counts.afterShow >= 2, `showing a plot should load vega and vega-lite, loaded ${counts.afterShow} of their modules`);
});
