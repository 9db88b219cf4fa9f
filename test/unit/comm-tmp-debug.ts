import { ThreadWorld } from "./comm-harness";
(async () => {
  for (const n of [2, 4]) {
    const w = new ThreadWorld(n, {});
    for (const c of [{ bytes: 1 << 20, link: { bandwidth: 125e6, latency: 0.002 } }, { bytes: 4096, link: { bandwidth: 125e6, latency: 0.005 } }]) {
      for (let i = 0; i < 3; i++) console.log(n, c.bytes, ((await w.values("timedTransfer", Array(n).fill(c))) as number[]).map((v) => v.toFixed(2)).join(" "));
    }
    await w.close();
  }
})();
