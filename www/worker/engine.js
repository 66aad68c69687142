// The engine, loaded once for the Worker: every Worker module imports it
// from here, so the wasm is ready before any of them uses it. It is the
// Worker's build (pkg-worker/): no policy validator, so it loads policies
// prepared at build time (www/dev/check-policy.mjs).
import wasm from "../../pkg-worker/phimask_bg.wasm";
import { initSync, resetSync, Sanitizer } from "../../pkg-worker/phimask.js";
import { warmUp as run } from "./warm-up.js";

initSync({ module: wasm });

export { callTypes, limits, requestWriteKey, Sanitizer } from "../../pkg-worker/phimask.js";

/** The start-up run of the engine on a prepared policy (www/worker/warm-up.js). */
export const warmUp = (prepared) => run(Sanitizer, prepared);

/** Which instance of the engine is current: objects of another are never used. */
let generation = 0;
export const engineGeneration = () => generation;

/**
 * Whether an error thrown by an engine call is a trap (a
 * WebAssembly.RuntimeError, an allocation that failed: anything the
 * engine did not throw on purpose, with a `code`), after which the
 * instance's memory may be corrupt.
 */
export const isTrap = (e) => typeof e?.code !== "string";

/**
 * A fresh instance of the engine after a trap. Every object of the old
 * one (compiled sanitizers) is dropped, never freed or called again:
 * its pointers mean nothing in the new instance.
 */
export function restartEngine() {
  resetSync();
  generation += 1;
}
