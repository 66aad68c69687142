// The engine, loaded once for the Worker: every Worker module imports it
// from here, so the wasm is ready before any of them uses it.
import wasm from "../pkg/phimask_bg.wasm";
import { initSync } from "../pkg/phimask.js";

initSync({ module: wasm });

export { callTypes, limits, readRequest, Sanitizer } from "../pkg/phimask.js";
