// The destinations' stand-in for `make run`: the fakes of each API
// (www/dev/fakes.mjs) on http://127.0.0.1:8788. The development policy's
// endpoints point here; each request is printed with its headers, and
// everything received is at GET / (JSON).
//   node www/dev/sink.mjs [port]
import { fileURLToPath } from "node:url";
import { startFakes } from "./fakes.mjs";

export const startSink = startFakes;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 8788);
  await startFakes(port);
  console.log(`sink: fakes of Amplitude, Mixpanel, GA4, PostHog and Segment-batch destinations on http://127.0.0.1:${port} (all received: GET /)`);
}
