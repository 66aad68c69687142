// The engine, loaded once for the Worker: every Worker module imports it
// from here, so the wasm is ready before any of them uses it. It is the
// Worker's build (pkg-worker/): no policy validator, so it loads policies
// prepared at build time (www/dev/check-policy.mjs).
import wasm from "../../pkg-worker/phimask_bg.wasm";
import { initSync, Sanitizer } from "../../pkg-worker/phimask.js";
import { warmUp as run } from "./warm-up.js";

initSync({ module: wasm });

export { callTypes, limits, Sanitizer } from "../../pkg-worker/phimask.js";

/** The start-up run of the engine on a prepared policy (www/worker/warm-up.js). */
export const warmUp = (prepared) => run(Sanitizer, prepared);
