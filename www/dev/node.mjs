// Loads the phimask wasm package in Node (tests, examples, benchmarks).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { initSync } from "../../pkg/phimask.js";

const wasmPath = fileURLToPath(new URL("../../pkg/phimask_bg.wasm", import.meta.url));
initSync({ module: readFileSync(wasmPath) });

export { callTypes, dataMap, limits, preparePolicy, readRequest, requestWriteKey, Sanitizer, validatePolicy } from "../../pkg/phimask.js";
