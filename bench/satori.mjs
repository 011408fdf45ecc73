// The reference point for imgate's card benchmark: the product card through
// Satori + resvg, as @vercel/og renders it. Same text, same Noto Sans files,
// 1200×630. `cargo bench -p imgate-origin --bench cards` runs it: after warming
// up it prints {"ready":true}, then for each number N read from stdin renders
// N cards and prints one JSON line (times, wall and CPU milliseconds, size, RSS).
//
//   node bench/satori.mjs [save-card-to.png]
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import satori from "satori";
import { Resvg } from "@resvg/resvg-js";

const font = (file) => readFileSync(`/usr/share/fonts/truetype/noto/${file}`);
const fonts = [
  { name: "Noto Sans", data: font("NotoSans-Regular.ttf"), weight: 400, style: "normal" },
  { name: "Noto Sans", data: font("NotoSans-Bold.ttf"), weight: 700, style: "normal" },
];

// The same design as templates/product/card.html, in the flexbox subset Satori supports.
const h = (type, style, children) => ({ type, props: { style, children } });
const card = (p) =>
  h("div", {
    width: 1200, height: 630, display: "flex", fontFamily: "Noto Sans", color: "#0f172a",
    backgroundImage: "linear-gradient(135deg, #fef3c7 0%, #fde68a 45%, #f59e0b 100%)",
  }, [h("div", {
    display: "flex", flexDirection: "column", justifyContent: "space-between", flexGrow: 1,
    margin: "64px 72px", width: 1056, height: 502,
  }, [
    h("div", { display: "flex", alignItems: "center", fontSize: 34, fontWeight: 700, letterSpacing: "0.04em", opacity: 0.8 }, [
      h("div", { width: 22, height: 22, marginRight: 14, borderRadius: 6, background: "#0f172a" }, []),
      p.brand.toUpperCase(),
    ]),
    h("div", { display: "flex", flexDirection: "column" }, [
      h("div", { fontSize: 76, lineHeight: 1.08, fontWeight: 700, letterSpacing: "-0.02em" }, p.title),
      h("div", { marginTop: 22, fontSize: 36, lineHeight: 1.3, opacity: 0.75 }, p.subtitle),
    ]),
    h("div", { display: "flex", justifyContent: "flex-end" }, [
      h("div", { fontSize: 56, fontWeight: 700, background: "#0f172a", color: "#fef3c7", padding: "10px 34px", borderRadius: 999 }, p.price),
    ]),
  ])]);

const params = {
  title: "Noise-cancelling headphones, now 30% off",
  subtitle: "Free shipping this week only",
  price: "$249",
  brand: "Acme Audio",
};

async function render() {
  const svg = await satori(card(params), { width: 1200, height: 630, fonts });
  return new Resvg(svg, { fitTo: { mode: "original" } }).render().asPng();
}

for (let i = 0; i < 5; i++) await render(); // warm up: JIT, font parsing caches
if (process.argv[2]) writeFileSync(process.argv[2], await render());

// Rounds on demand, so that the bench can alternate them with imgate's and
// both sides see the same machine (a shared host drifts by 10-20% within minutes).
console.log(JSON.stringify({ ready: true }));
for await (const line of createInterface({ input: process.stdin })) {
  const cards = Number(line);
  const times = [];
  let bytes = 0;
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  for (let i = 0; i < cards; i++) {
    const started = performance.now();
    const png = await render();
    times.push(performance.now() - started);
    bytes = png.length;
  }
  const wall_ms = performance.now() - wallBefore;
  const cpu = process.cpuUsage(cpuBefore);
  console.log(JSON.stringify({
    times_ms: times,
    wall_ms,
    cpu_ms: (cpu.user + cpu.system) / 1000,
    png_bytes: bytes,
    rss_mib: process.memoryUsage().rss / (1 << 20),
  }));
}
