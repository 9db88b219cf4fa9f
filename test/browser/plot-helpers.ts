/**
 * Reading the timeline's plotly plot from the page: where to hover a span of
 * a category, and how light a computed colour is (to check themes).
 */
import type { Page } from "@playwright/test";

/** Page coordinates of the first hover point of the named category's trace in the visible notebook. */
export async function hoverPointOf(page: Page, category: string): Promise<{ x: number; y: number }> {
  return (await hoverPointsOf(page, category))[0]!;
}

/**
 * Hover points of `category`'s spans drawn on their own, best first: hover picks the closest marker of
 * any trace, and enclosing or nested spans (the cell's compute span, a wait inside a collective) have
 * markers on the same row, so the points farthest from every other marker come first.
 */
export async function hoverPointsOf(page: Page, category: string): Promise<{ x: number; y: number }[]> {
  return page.evaluate((cat) => {
    type Axis = { l2p: (v: number) => number; _offset: number };
    const gd = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-DistlabTimeline-plot") as HTMLElement & {
      data: Array<{ name: string; mode: string; x: number[]; y: number[]; hovertext?: string[] }>;
      _fullLayout: { xaxis: Axis; yaxis: Axis };
    };
    const trace = gd.data.find((t) => t.name === cat && t.mode === "markers" && t.x.length > 0);
    if (!trace) throw new Error(`no hover points for ${cat}`);
    const box = gd.getBoundingClientRect();
    const { xaxis, yaxis } = gd._fullLayout;
    const pixel = (x: number, y: number) => ({ x: box.left + xaxis._offset + xaxis.l2p(x), y: box.top + yaxis._offset + yaxis.l2p(y) });
    const others = gd.data.filter((t) => t !== trace && t.mode === "markers").flatMap((t) => t.x.map((x, i) => pixel(x, t.y[i]!)));
    const candidates: { point: { x: number; y: number }; gap: number }[] = [];
    trace.x.forEach((x, i) => {
      // Only a span drawn on its own (its hover names the op), not a bin of short spans.
      if (!/\bop\b/.test(trace.hovertext?.[i] ?? "")) return;
      const point = pixel(x, trace.y[i]!);
      const gap = others.reduce((nearest, o) => Math.min(nearest, Math.hypot(o.x - point.x, o.y - point.y)), Infinity);
      candidates.push({ point, gap });
    });
    if (candidates.length === 0) return [pixel(trace.x[0]!, trace.y[0]!)];
    return candidates.sort((a, b) => b.gap - a.gap).map((c) => c.point);
  }, category);
}

/** Relative luminance (0 dark .. 1 light) of a CSS `rgb(r, g, b)` colour. */
export function luminance(rgb: string): number {
  const [r, g, b] = (rgb.match(/\d+/g) ?? ["0", "0", "0"]).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

/** Switches JupyterLab's theme through its command and waits until the body says so. */
export async function changeTheme(page: Page, theme: "JupyterLab Light" | "JupyterLab Dark"): Promise<void> {
  await page.evaluate((name) => (window as unknown as { jupyterapp: { commands: { execute(id: string, args: unknown): Promise<unknown> } } })
    .jupyterapp.commands.execute("apputils:change-theme", { theme: name }), theme);
}
