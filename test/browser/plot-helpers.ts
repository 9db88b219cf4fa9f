/**
 * Reading the timeline's plotly plot from the page: where to hover a span of
 * a category, and how light a computed colour is (to check themes).
 */
import type { Page } from "@playwright/test";

/** Page coordinates of the first hover point of the named category's trace in the visible notebook. */
export async function hoverPointOf(page: Page, category: string): Promise<{ x: number; y: number }> {
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
    // Hover picks the closest marker of any trace, and an enclosing span (the whole cell's compute
    // span) has markers along the same row: take the point of `cat` farthest from every other marker.
    const others = gd.data.filter((t) => t !== trace && t.mode === "markers").flatMap((t) => t.x.map((x, i) => pixel(x, t.y[i]!)));
    let best = pixel(trace.x[0]!, trace.y[0]!);
    let bestGap = -1;
    trace.x.forEach((x, i) => {
      // Only a span drawn on its own (its hover names the op), not a bin of short spans.
      if (!/\bop\b/.test(trace.hovertext?.[i] ?? "")) return;
      const point = pixel(x, trace.y[i]!);
      const gap = others.reduce((nearest, o) => Math.min(nearest, Math.hypot(o.x - point.x, o.y - point.y)), Infinity);
      if (gap > bestGap) [best, bestGap] = [point, gap];
    });
    return best;
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
