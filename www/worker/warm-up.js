// The engine's start-up run (www/worker/engine.js), apart so that the benchmark
// of the first request (benches/compile.mjs) runs exactly the same.

// Not a secret: the key of the start-up run, whose sanitizer is freed
// before any request exists and never sees an event.
const WARM_UP_KEY = "phimask start-up run; not a masking key";
const WARM_UP_BODY = new TextEncoder().encode('{"batch":[{"type":"track","event":"Start-up","userId":"start-up","properties":{"plan":"start-up"},"context":{"page":{"url":"https://start-up.invalid/?a=1"}}}]}');

/**
 * Runs the engine's code once at start-up (module scope), so the first
 * request does not pay for it: V8 compiles each wasm function the first
 * time it is called, which made a first policy compile cost several times
 * a warm one. Compiles the policy with a throwaway key, processes one
 * built-in event, frees it all; any error is the first request's to
 * report, when it compiles the policy for real.
 */
export function warmUp(Sanitizer, prepared) {
  let s;
  try {
    s = Sanitizer.fromPrepared(prepared, WARM_UP_KEY);
    s.processRequest(WARM_UP_BODY, "batch");
  } catch {
    // Reported by the first request.
  } finally {
    s?.free();
  }
}
