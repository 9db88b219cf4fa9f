// `npm run bench:timeline-browser`: the first draw of a large timeline in Chromium.
// The extension's own TimelineWidget (bench/timeline-browser/page.ts, bundled with
// esbuild) draws a payload built by the kernel's own TimelineAggregator: 8 ranks,
// steps of data loading, forward, backward with 4 bucketed allReduce spans on a
// comm stream (idle spans derived from their arrival times), optimizer: a main
// and a comm row per rank.
// Timed, in the page: from the payload's JSON text in hand (as the websocket
// message delivers it) to the first complete frame: JSON.parse, renderModel
// (validation, rows, summary table, traces, Plotly's draw) and two animation
// frames (the widget's fit-to-width resize runs in the first).
// Each figure: median [min, max] of --reps fresh page loads (default 5, >= 5), wall time.
// Chromium is $CHROMIUM_PATH or /usr/bin/chromium (never downloaded); WebGL on SwiftShader,
// as the browser tests run. Flag --spans N,M chooses the sizes (default 20000,100000).
// Plain script: prints numbers, asserts nothing.
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { chromium } from "playwright";
import trace from "../kernel/src/trace/index.ts";
import stats from "./stats.ts";

const { TimelineAggregator } = trace;
const { summarize, formatSummary, repsOption, machineLine } = stats;
const argv = process.argv.slice(2);
const REPS = repsOption(argv, 5);
const spansFlag = argv.indexOf("--spans");
const SIZES = spansFlag >= 0 ? argv[spansFlag + 1].split(",").map(Number) : [20_000, 100_000];
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: set CHROMIUM_PATH (this bench never downloads one)`);
console.log(`bench:timeline-browser  ${machineLine()}  chromium ${CHROMIUM}`);

const RANKS = 8;
/**
 * Spans per rank per step in the payload: data, forward, backward, 4 allReduce, optimizer, and
 * about 3.2 idle spans the aggregator derives from the allReduce arrival times.
 */
const SPANS_PER_STEP = 11.2;

/** A payload of about `total` spans, idle spans included; microseconds. */
function payloadOf(total) {
  const ranks = Array.from({ length: RANKS }, (_, rank) => ({ rank, host: "localhost", device: "cpu" }));
  const aggregator = new TimelineAggregator({ ranks, cellStartUs: 0 });
  const steps = Math.ceil(total / RANKS / SPANS_PER_STEP);
  for (const { rank } of ranks) {
    const spans = [];
    let t = 0;
    for (let step = 0; step < steps; step++) {
      const jitter = ((rank * 7 + step * 13) % 11) * 3; // ranks drift apart a little, so collectives wait
      spans.push({ name: "load batch", cat: "data", start: t, dur: 40 + jitter, args: { step } });
      t += 45 + jitter;
      spans.push({ name: "forward", cat: "compute", start: t, dur: 300, args: { step } });
      t += 300;
      const backward = t;
      for (let bucket = 0; bucket < 4; bucket++) {
        spans.push({ name: "allReduce", cat: "comm", start: backward + 80 * bucket + 60, dur: 60 + jitter, args: { op: "allReduce", bytes: 1 << 22, seq: step * 4 + bucket, group: "world", stream: "comm" } });
      }
      spans.push({ name: "backward", cat: "compute", start: backward, dur: 560, args: { step } });
      t += 600;
      spans.push({ name: "optimizer", cat: "compute", start: t, dur: 50, args: { step } });
      t += 60;
    }
    aggregator.add({ rank, spans });
  }
  return aggregator.payload(false);
}

const bundle = (await build({ sourcemap: process.env.BENCH_SOURCEMAP ? "inline" : false, entryPoints: [new URL("./timeline-browser/page.ts", import.meta.url).pathname], bundle: true, format: "iife", minify: true, write: false, logLevel: "error" })).outputFiles[0].text;
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0;font:12px sans-serif} #output{width:1380px}</style></head><body><div id="output"></div><script src="/page.js"></script></body></html>`;

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"] });
try {
  for (const size of SIZES) {
    const payload = payloadOf(size);
    const json = JSON.stringify(payload);
    const samples = [];
    for (let rep = 0; rep < REPS; rep++) {
      // A fresh context and page each time: nothing of the last draw (compiled code, WebGL context) carries over.
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();
      await page.route("http://bench.invalid/**", (route) => {
        const path = new URL(route.request().url()).pathname;
        if (path === "/page.js") return route.fulfill({ body: bundle, contentType: "text/javascript" });
        if (path === "/payload.json") return route.fulfill({ body: json, contentType: "text/plain" });
        return route.fulfill({ body: PAGE, contentType: "text/html" });
      });
      await page.goto("http://bench.invalid/");
      samples.push(await page.evaluate(async () => {
        const text = await (await fetch("/payload.json")).text();
        return window.drawTimeline(text);
      }));
      await context.close();
    }
    const first = summarize(samples.map((s) => s.firstFrameMs), `first draw of ${size} spans`);
    const model = summarize(samples.map((s) => s.renderModelMs), "renderModel");
    const parse = summarize(samples.map((s) => s.parseMs), "JSON.parse");
    console.log(`${payload.spans.length.toLocaleString()} spans (${RANKS} ranks, idle spans included, ${(json.length / 1024).toFixed(0)} KiB of JSON): first draw ${formatSummary(first, 0)} ms wall, JSON text to first complete frame, ${REPS} fresh page loads; of it JSON.parse ${formatSummary(parse, 0)} ms, renderModel ${formatSummary(model, 0)} ms; ${samples[0].drawnSegments} segments drawn`);
  }
} finally {
  await browser.close();
}
