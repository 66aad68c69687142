#!/usr/bin/env node
// Rewrites one function of the JavaScript glue wasm-bindgen writes
// (phimask.js): passStringToWasm0 copies a string's ASCII prefix into wasm
// memory one character at a time in JavaScript (about 4 ns a byte) before
// it hands the rest to TextEncoder.encodeInto. Here the whole string goes
// to encodeInto at once (UTF-8 is at most 3 bytes per UTF-16 unit), and
// the allocation is cut to what was written. Fails if the glue does not
// have the function as expected (another wasm-bindgen version), so the
// build never ships it unpatched without saying so.
//   node scripts/glue.mjs pkg/phimask.js ...
import { readFileSync, writeFileSync } from "node:fs";

const LOOP = /\n([ \t]*)let len = arg\.length;\n[ \t]*let ptr = malloc\(len, 1\) >>> 0;\n[\s\S]*?\n[ \t]*WASM_VECTOR_LEN = offset;\n[ \t]*return ptr;\n/;

const WHOLE = (indent) => `
// phimask (scripts/glue.mjs): the whole string in one encodeInto.
const len = arg.length * 3;
let ptr = malloc(len, 1) >>> 0;
const { written } = cachedTextEncoder.encodeInto(arg, getUint8ArrayMemory0().subarray(ptr, ptr + len));
// realloc takes no size 0: an empty string keeps its empty allocation.
if (written !== len) ptr = realloc(ptr, len, written, 1) >>> 0;
WASM_VECTOR_LEN = written;
return ptr;
`.replace(/\n(?=.)/g, `\n${indent}`);

for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  const start = text.indexOf("function passStringToWasm0(arg, malloc, realloc) {");
  const end = text.indexOf("\n}\n", start);
  if (start < 0 || end < 0 || !LOOP.test(text.slice(start, end + 3))) {
    console.error(`glue: ${file}: passStringToWasm0 is not as expected; update scripts/glue.mjs for this wasm-bindgen`);
    process.exit(1);
  }
  const fn = text.slice(start, end + 3).replace(LOOP, (_, indent) => WHOLE(indent));
  writeFileSync(file, text.slice(0, start) + fn + text.slice(end + 3));
}
