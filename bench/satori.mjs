// The reference point for imgate's card benchmark: the product card through
// Satori + resvg, as @vercel/og renders it. Same text, same Noto Sans files,
// 1200×630. Prints one JSON object; `cargo bench -p imgate-origin` runs it.
//
//   node bench/satori.mjs [iterations] [save-card-to.png]
import { readFileSync, writeFileSync } from "node:fs";
import satori from "satori";
import { Resvg } from "@resvg/resvg-js";

const iterations = Number(process.argv[2] ?? 40);
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
if (process.argv[3]) writeFileSync(process.argv[3], await render());

const times = [];
let bytes = 0;
let peakRss = 0;
const cpuBefore = process.cpuUsage();
const wallBefore = performance.now();
for (let i = 0; i < iterations; i++) {
  const started = performance.now();
  const png = await render();
  times.push(performance.now() - started);
  bytes = png.length;
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}
const wall = (performance.now() - wallBefore) / 1000;
const cpu = process.cpuUsage(cpuBefore);
times.sort((a, b) => a - b);
const pct = (q) => times[Math.min(times.length - 1, Math.floor(times.length * q))];
console.log(JSON.stringify({
  iterations,
  p50_ms: pct(0.5),
  p95_ms: pct(0.95),
  cards_per_s: iterations / wall,
  cpu_ms_per_card: (cpu.user + cpu.system) / 1000 / iterations,
  png_bytes: bytes,
  peak_rss_mib: peakRss / (1 << 20),
}));
