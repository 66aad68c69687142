// A local stand-in for the destinations: the development policy's
// endpoints are http://127.0.0.1:8788/<destination>. It prints every batch
// it receives, with the headers that came along, and shows them all at
// GET / (JSON).
//   node www/sink.mjs [port]
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";

export function startSink(port = 8788, { quiet = false } = {}) {
  const received = {};
  const server = createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url, "http://x").pathname.slice(1));
    if (req.method === "GET" && name === "") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(received, null, 2));
      return;
    }
    if (req.method !== "POST" || name === "") {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let batch;
      try {
        batch = JSON.parse(Buffer.concat(chunks).toString("utf8")).batch;
      } catch {
        batch = null;
      }
      if (!Array.isArray(batch)) {
        res.writeHead(400, { "content-type": "application/json" }).end('{"success":false}');
        return;
      }
      (received[name] ??= []).push(...batch);
      if (!quiet) {
        const headers = Object.keys(req.headers).sort().join(", ");
        console.log(`\n[${name}] received ${batch.length} event${batch.length === 1 ? "" : "s"} (headers: ${headers})`);
        for (const event of batch) console.log(JSON.stringify(event, null, 2));
      }
      res.writeHead(200, { "content-type": "application/json" }).end('{"success":true}');
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve({ server, received }));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 8788);
  await startSink(port);
  console.log(`sink: destinations' stand-in on http://127.0.0.1:${port}/<destination> (all received: GET /)`);
}
