// The pprof report opened in speedscope (npm), the way its own command-line tool opens a file:
// a script calling `speedscope.loadFileFromBase64`, named by `#localProfilePath=` on speedscope's
// page, here in headless Chromium driven by playwright-core. Reads the Sandwich view's table as a
// user would and checks that speedscope imported it as pprof, and that `checksum` and `parse`
// split their total time as their measured CPU time did.
//
//   node tests/pprof_speedscope.mjs NODE_MODULES FILE.pb.gz CHECKSUM_CPU_PERCENT
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const [modules, file, truthText] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { chromium } = require(path.resolve(modules, "playwright-core"));

const fail = (why) => {
  console.error(`speedscope: ${file}: ${why}`);
  process.exit(1);
};

const dir = mkdtempSync(path.join(tmpdir(), "speedscope-"));
const loader = path.join(dir, "load.js");
const name = path.basename(file);
const base64 = readFileSync(file).toString("base64");
writeFileSync(loader, `speedscope.loadFileFromBase64(${JSON.stringify(name)}, ${JSON.stringify(base64)})`);
const page_url =
  "file://" + path.resolve(modules, "speedscope/dist/release/index.html") +
  `#localProfilePath=${loader}&view=sandwich`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const logs = [];
let text = "";
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("console", (m) => logs.push(m.text()));
  await page.goto(page_url);
  // The Sandwich view's table, once the profile is in.
  await page.waitForFunction(() => document.body.innerText.includes("Symbol Name"), null, {
    timeout: 30000,
  }).catch(() => {});
  text = await page.innerText("body");
} finally {
  await browser.close();
}
if (!logs.some((l) => l.includes("Importing as protobuf encoded pprof"))) {
  fail(`not imported as pprof; speedscope said: ${logs.join(" | ")}`);
}
if (!text.includes(name)) fail(`the page does not name the profile:\n${text.slice(0, 500)}`);

// Rows read "TOTAL (P%)", "SELF (P%)", "SYMBOL": the total time of the function named
// `…::checksum` and of `…::parse` (the largest, where several end so: `str::parse`, which the
// example's parse calls, has a row of its own, inside the example's).
const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
const ms = (cell) => {
  const m = /^([0-9.]+)(ms|s|µs|us)\b/.exec(cell);
  if (!m) return null;
  const scale = { s: 1000, ms: 1, "µs": 0.001, us: 0.001 }[m[2]];
  return Number(m[1]) * scale;
};
const totals = new Map();
for (let i = 0; i + 2 < lines.length; i++) {
  const total = ms(lines[i]);
  if (total === null || ms(lines[i + 1]) === null) continue;
  const symbol = lines[i + 2];
  const last = symbol.split("::").pop();
  if (last === "checksum" || last === "parse") totals.set(last, Math.max(totals.get(last) || 0, total));
  i += 2;
}
if (!totals.has("checksum") || !totals.has("parse")) {
  fail(`no checksum or parse row in the Sandwich view:\n${lines.slice(0, 40).join("\n")}`);
}
const share = (100 * totals.get("checksum")) / (totals.get("checksum") + totals.get("parse"));
const truth = Number(truthText);
console.log(
  `speedscope: ${name} imported as pprof; Sandwich view: checksum ${totals.get("checksum").toFixed(1)} ms, ` +
    `parse ${totals.get("parse").toFixed(1)} ms: checksum ${share.toFixed(1)} % of both, ` +
    `${truth.toFixed(1)} % of their CPU time`
);
if (!(Math.abs(share - truth) <= 6)) fail(`checksum ${share.toFixed(1)} %, CPU time ${truth} %`);
