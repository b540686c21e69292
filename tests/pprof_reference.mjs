// The pprof report read by a reference reader: pprof-format, the decoder of Datadog's and
// Google's Node.js profilers (npm). Checks the profile is well formed (sample and period types,
// every location's function, labels) and that the samples labelled `scope=<scope>` split
// between `checksum` and `parse` as their measured CPU time did.
//
//   node tests/pprof_reference.mjs NODE_MODULES FILE.pb.gz SCOPE CHECKSUM_CPU_PERCENT
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import path from "node:path";

const [modules, file, scope, truthText] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { Profile } = require(path.resolve(modules, "pprof-format"));

const fail = (why) => {
  console.error(`pprof reference: ${file}: ${why}`);
  process.exit(1);
};

const profile = Profile.decode(gunzipSync(readFileSync(file)));
const strings = profile.stringTable.strings;
const s = (i) => strings[Number(i)];
if (s(0) !== "") fail("the string table does not start with \"\"");
const types = profile.sampleType.map((t) => `${s(t.type)}/${s(t.unit)}`);
if (types.join(",") !== "samples/count,cpu/nanoseconds") fail(`sample types ${types}`);
if (!profile.periodType || s(profile.periodType.type) !== "cpu") fail("no cpu period type");
if (Number(profile.period) <= 0) fail(`period ${profile.period}`);

const functions = new Map(profile.function.map((f) => [Number(f.id), s(f.name)]));
const locations = new Map();
for (const loc of profile.location) {
  if (loc.line.length === 0) fail(`location ${loc.id} has no line`);
  const names = loc.line.map((l) => functions.get(Number(l.functionId)));
  if (names.some((n) => n === undefined)) fail(`location ${loc.id} names no function`);
  locations.set(Number(loc.id), names);
}

// Optimised builds name inlined frames without their path: the last segment is compared.
const last = (name) => name.split("::").pop();
let inScope = 0;
let checksum = 0;
let parse = 0;
let nanos = 0;
for (const sample of profile.sample) {
  const labels = new Map(sample.label.map((l) => [s(l.key), s(l.str)]));
  if (!labels.has("task_group")) fail("a sample without a task_group label");
  const count = Number(sample.value[0]);
  nanos += Number(sample.value[1]);
  if (labels.get("scope") !== scope) continue;
  inScope += count;
  const names = sample.locationId.flatMap((id) => {
    const n = locations.get(Number(id));
    if (n === undefined) fail(`a sample names location ${id}, which is not there`);
    return n.map(last);
  });
  if (names.includes("checksum")) checksum += count;
  if (names.includes("parse")) parse += count;
}
if (inScope < 100) fail(`${inScope} samples labelled scope=${scope}`);
const share = (100 * checksum) / (checksum + parse);
const truth = Number(truthText);
console.log(
  `pprof reference: ${profile.sample.length} stacks, ${inScope} samples in ${scope} ` +
    `(${(nanos / 1e9).toFixed(2)} s of CPU in all): checksum ${share.toFixed(1)} % of ` +
    `checksum + parse, ${truth.toFixed(1)} % of their CPU time`
);
if (!(Math.abs(share - truth) <= 6)) fail(`checksum ${share.toFixed(1)} %, CPU time ${truth} %`);
