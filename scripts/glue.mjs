#!/usr/bin/env node
// Rewrites the JavaScript glue wasm-bindgen writes (phimask.js):
// - passStringToWasm0 copies a string's ASCII prefix into wasm memory one
//   character at a time in JavaScript (about 4 ns a byte) before it hands
//   the rest to TextEncoder.encodeInto. Here the whole string goes to
//   encodeInto at once (UTF-8 is at most 3 bytes per UTF-16 unit), and the
//   allocation is cut to what was written.
// - resetSync() is added: a fresh instance of the same module, for a
//   caller whose instance trapped (its memory may be corrupt; initSync
//   returns the old one once initialized). Objects made by the old
//   instance must not be used after it; their finalizers never free into
//   the new one (each instance's objects are in a registry of their own).
// Fails if the glue is not as expected (another wasm-bindgen version), so
// the build never ships it unpatched without saying so.
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

/** Each class's finalizer registry: its name and the wasm export that frees. */
const REGISTRY = /const (\w+Finalization) = \(typeof FinalizationRegistry === 'undefined'\)\n\s*\? \{ register: \(\) => \{\}, unregister: \(\) => \{\} \}\n\s*: new FinalizationRegistry\(ptr => wasm\.(\w+)\(ptr, 1\)\);\n/g;

const REGISTRY_OF_INSTANCE = `// phimask (scripts/glue.mjs): the instance's generation; each registry
// frees only into the instance that was current when it was made.
let phimaskGeneration = 0;
function phimaskRegistry(free) {
    if (typeof FinalizationRegistry === 'undefined') return { register: () => {}, unregister: () => {} };
    const generation = phimaskGeneration;
    return new FinalizationRegistry((ptr) => { if (generation === phimaskGeneration) free(ptr); });
}
`;

const RESET = (registries) => `
// phimask (scripts/glue.mjs): a fresh instance of the module initSync was
// given (the old one may hold corrupt memory after a trap). Objects of the
// old instance must not be used after this.
function resetSync() {
    if (wasmModule === undefined) throw new Error("resetSync: not initialized");
    const module = wasmModule;
    phimaskGeneration += 1;
${registries.map(([name, free]) => `    ${name} = phimaskRegistry(ptr => wasm.${free}(ptr, 1));\n`).join("")}    wasm = undefined;
    return initSync({ module });
}
`;

const fail = (file, what) => {
  console.error(`glue: ${file}: ${what} is not as expected; update scripts/glue.mjs for this wasm-bindgen`);
  process.exit(1);
};

for (const file of process.argv.slice(2)) {
  let text = readFileSync(file, "utf8");
  const start = text.indexOf("function passStringToWasm0(arg, malloc, realloc) {");
  const end = text.indexOf("\n}\n", start);
  if (start < 0 || end < 0 || !LOOP.test(text.slice(start, end + 3))) fail(file, "passStringToWasm0");
  const fn = text.slice(start, end + 3).replace(LOOP, (_, indent) => WHOLE(indent));
  text = text.slice(0, start) + fn + text.slice(end + 3);

  const registries = [...text.matchAll(REGISTRY)].map((m) => [m[1], m[2]]);
  if (registries.length === 0) fail(file, "the FinalizationRegistry of its classes");
  let first = true;
  text = text.replace(REGISTRY, (_, name, free) => {
    const made = `let ${name} = phimaskRegistry(ptr => wasm.${free}(ptr, 1));\n`;
    return first ? ((first = false), REGISTRY_OF_INSTANCE + made) : made;
  });
  const exports = "export { initSync, __wbg_init as default };";
  if (!text.includes(exports) || !text.includes("\nfunction initSync(module) {\n    if (wasm !== undefined) return wasm;")) fail(file, "initSync");
  text = text.replace(exports, RESET(registries) + "\nexport { initSync, resetSync, __wbg_init as default };");
  writeFileSync(file, text);
}
