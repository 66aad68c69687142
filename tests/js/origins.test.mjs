// Bound browser keys as pages in headless Chromium really send them, under
// `wrangler dev`: navigator.sendBeacon (the key in a text/plain body, no
// answer the page can read) from the key's origin is accepted and
// delivered, from another origin refused with nothing delivered; a page
// served with `Referrer-Policy: no-referrer` is still known by its Origin;
// a sandboxed iframe (`Origin: null`) is refused 403. A recording proxy in
// front of the Worker shows what each request carried and was answered.
// And a page reads the Retry-After of a 503 queue_unavailable (inside
// workerd, with a queue that refuses), as it reads a 429's.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { launchChromium } from "./chromium.mjs";
import { bundle, startDestination, startWorker, startWranglerDev, until } from "./worker-harness.mjs";

const KEY = "origins-test-masking-key-0123456789abcdef";
const WEB = "wk_origins_web";
// A user ID as the destination gets it: masked with the policy's key.
const hmac = (v) => createHmac("sha256", KEY).update(v).digest("hex");
const basic = (key) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;
const track = (userId) => ({ type: "track", event: "Origin Probe", userId, messageId: `m-${userId}`, properties: { plan: "basic" } });

/** A site on 127.0.0.1 answering each path with `pages[path]` ({ html, headers }), else a plain page. */
async function site(pages = {}) {
  const server = createServer((req, res) => {
    const page = pages[req.url] ?? { html: "<!doctype html><title>a clinic's site</title>" };
    res.writeHead(200, { "content-type": "text/html", ...page.headers }).end(page.html);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/**
 * A proxy to `target` recording each POST's Origin, Referer and Authorization
 * presence and the status it was answered, by the body's userId.
 */
async function recorder(target) {
  const seen = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const headers = { ...req.headers };
      delete headers.host;
      const answer = await fetch(target + req.url, { method: req.method, headers, body: ["GET", "HEAD"].includes(req.method) ? undefined : body });
      const text = await answer.text();
      if (req.method === "POST") {
        let userId;
        try {
          userId = JSON.parse(body).userId;
        } catch {
          userId = undefined;
        }
        seen.push({ userId, origin: req.headers.origin, referer: req.headers.referer, contentType: req.headers["content-type"], status: answer.status, code: answer.status === 200 ? undefined : JSON.parse(text).code });
      }
      const back = Object.fromEntries(answer.headers);
      delete back["content-length"];
      delete back["content-encoding"];
      res.writeHead(answer.status, back).end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }) };
}

describe("a bound browser key from pages in Chromium, under wrangler dev", () => {
  let dest;
  let dev;
  let proxy;
  let browser;
  let clinic;
  let other;

  before(async () => {
    dest = await startDestination();
    const policy = {
      version: 1, environment: "origins-test", hipaa: true,
      allowlists: { event_properties: { plan: "allow" } },
      destinations: { analytics: { connection: "server-side", endpoint: dest.url } },
    };
    // The sandboxed frame's script posts with the bound key and tells its parent what it read.
    const frame = `<script>fetch(PROXY + "/v1/track", { method: "POST", headers: { "Content-Type": "application/json", Authorization: ${JSON.stringify(basic(WEB))} }, body: JSON.stringify(${JSON.stringify(track("u-sandboxed"))}) })
      .then(async (r) => parent.postMessage({ status: r.status, code: (await r.json()).code, origin: location.origin }, "*"), (e) => parent.postMessage({ error: String(e) }, "*"));</script>`;
    clinic = await site({
      "/no-referrer": { html: "<!doctype html><title>no referrer</title>", headers: { "Referrer-Policy": "no-referrer" } },
      "/sandbox": { html: "<!doctype html><title>sandbox</title>", headers: {} },
    });
    other = await site();
    dev = await startWranglerDev(policy, { PHI_MASKING_KEY: KEY, WRITE_KEYS: `${WEB}@${clinic.origin}` });
    proxy = await recorder(dev.url);
    clinic.frame = frame.replace("PROXY", JSON.stringify(proxy.url));
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await proxy?.close();
    await dev?.stop();
    clinic?.server.close();
    other?.server.close();
    await dest?.close();
  });

  const delivered = (userId) => dest.delivered().filter((e) => e.userId === hmac(userId) || e.userId === userId);
  const seen = (userId) => proxy.seen.find((s) => s.userId === userId);
  async function pageAt(url) {
    const page = await browser.newPage();
    await page.goto(url);
    return page;
  }
  /** navigator.sendBeacon from `page`, the key in the body as analytics.js puts it. */
  const beacon = (page, userId) => page.evaluate(({ url, body }) => navigator.sendBeacon(url, body), { url: `${proxy.url}/v1/track`, body: JSON.stringify({ ...track(userId), writeKey: WEB }) });
  /** A fetch with the key as Basic auth (preflighted), its answer as the page reads it. */
  const basicFetch = (page, userId) => page.evaluate(async ({ url, auth, body }) => {
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", Authorization: auth }, body });
    return { status: res.status, body: await res.json() };
  }, { url: `${proxy.url}/v1/track`, auth: basic(WEB), body: JSON.stringify(track(userId)) });

  test("sendBeacon with the bound key: from its origin accepted and delivered, from another origin 403 and nothing delivered", async () => {
    const home = await pageAt(`${clinic.origin}/`);
    const elsewhere = await pageAt(`${other.origin}/`);
    try {
      assert.equal(await beacon(home, "u-beacon-clinic"), true, "the beacon was queued");
      assert.equal(await beacon(elsewhere, "u-beacon-other"), true);
      await until(() => seen("u-beacon-clinic") && seen("u-beacon-other"), "both beacons at the Worker", 30_000);
      assert.deepEqual({ ...seen("u-beacon-clinic"), referer: undefined }, { userId: "u-beacon-clinic", origin: clinic.origin, referer: undefined, contentType: "text/plain;charset=UTF-8", status: 200, code: undefined });
      assert.equal(seen("u-beacon-other").origin, other.origin);
      assert.equal(seen("u-beacon-other").status, 403);
      assert.equal(seen("u-beacon-other").code, "origin_not_allowed");
      await until(() => delivered("u-beacon-clinic").length === 1, "the clinic's beacon at the destination", 30_000);
      // Sent after the refused one, and arrived: nothing of it comes later.
      assert.equal(await beacon(home, "u-beacon-last"), true);
      await until(() => delivered("u-beacon-last").length === 1, "the last beacon", 30_000);
      assert.equal(delivered("u-beacon-other").length, 0, "nothing of the other origin's beacon is delivered");
    } finally {
      await home.close();
      await elsewhere.close();
    }
  });

  test("a page with Referrer-Policy: no-referrer: its fetch and its beacon carry its Origin and no Referer, and are accepted", async () => {
    const page = await pageAt(`${clinic.origin}/no-referrer`);
    try {
      assert.deepEqual(await basicFetch(page, "u-no-referrer"), { status: 200, body: { success: true } });
      assert.equal(seen("u-no-referrer").origin, clinic.origin);
      assert.equal(seen("u-no-referrer").referer, undefined, "no Referer sent");
      await until(() => delivered("u-no-referrer").length === 1, "its event", 30_000);
      // A beacon from such a page (the key in its body) carries its Origin too.
      assert.equal(await beacon(page, "u-no-referrer-beacon"), true);
      await until(() => seen("u-no-referrer-beacon"), "the beacon at the Worker", 30_000);
      assert.deepEqual(seen("u-no-referrer-beacon"), { userId: "u-no-referrer-beacon", origin: clinic.origin, referer: undefined, contentType: "text/plain;charset=UTF-8", status: 200, code: undefined });
      await until(() => delivered("u-no-referrer-beacon").length === 1, "the beacon's event", 30_000);
    } finally {
      await page.close();
    }
  });

  test("a sandboxed iframe (Origin: null) with the bound key: 403 origin_not_allowed, which it can read; nothing delivered", async () => {
    const page = await pageAt(`${clinic.origin}/sandbox`);
    try {
      const answer = await page.evaluate((html) => new Promise((resolve) => {
        window.addEventListener("message", (e) => resolve(e.data), { once: true });
        const iframe = document.createElement("iframe");
        iframe.setAttribute("sandbox", "allow-scripts");
        iframe.srcdoc = html;
        document.body.append(iframe);
      }), clinic.frame);
      assert.deepEqual(answer, { status: 403, code: "origin_not_allowed", origin: "null" });
      assert.equal(seen("u-sandboxed").origin, "null");
      // An event from the clinic's own page after it, and arrived: the sandboxed one never will.
      assert.equal((await basicFetch(page, "u-after-sandbox")).status, 200);
      await until(() => delivered("u-after-sandbox").length === 1, "the later event", 30_000);
      assert.equal(delivered("u-sandboxed").length, 0);
    } finally {
      await page.close();
    }
  });

  test("hostile: a page cannot forge its Origin, and a forged Referer from outside a browser does not help a request with Origin", async () => {
    const page = await pageAt(`${other.origin}/`);
    try {
      // Origin is a forbidden header name: the browser keeps the real one.
      const answer = await page.evaluate(async ({ url, auth, body, forged }) => {
        const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", Authorization: auth, Origin: forged }, body });
        return { status: res.status, code: (await res.json()).code };
      }, { url: `${proxy.url}/v1/track`, auth: basic(WEB), body: JSON.stringify(track("u-forged")), forged: clinic.origin });
      assert.deepEqual(answer, { status: 403, code: "origin_not_allowed" });
      assert.equal(seen("u-forged").origin, other.origin);
    } finally {
      await page.close();
    }
    const res = await fetch(`${dev.url}/v1/track`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: basic(WEB), Origin: "null", Referer: `${clinic.origin}/` }, body: JSON.stringify(track("u-null-referer")) });
    assert.equal(res.status, 403, "Origin: null is not passed over for the Referer");
    assert.equal((await res.json()).code, "origin_not_allowed");
    assert.equal(delivered("u-forged").length + delivered("u-null-referer").length, 0);
  });
});

describe("Retry-After of a 503 queue_unavailable, read by a page in Chromium", () => {
  test("a page's cross-origin fetch reads the 503's code and its Retry-After (exposed like a 429's)", async () => {
    const dest = await startDestination();
    const built = await bundle({
      version: 1, environment: "origins-test", hipaa: true,
      allowlists: { event_properties: { plan: "allow" } },
      destinations: { analytics: { connection: "server-side", endpoint: dest.url } },
    });
    const worker = await startWorker(built.script, { PHI_MASKING_KEY: KEY, WRITE_KEYS: WEB }, { refusingQueue: true });
    const page = await site();
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage();
      await tab.goto(`${page.origin}/`);
      const seen = await tab.evaluate(async ({ url, auth, body }) => {
        const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", Authorization: auth }, body });
        return { status: res.status, retryAfter: res.headers.get("Retry-After"), code: (await res.json()).code };
      }, { url: new URL("/v1/track", worker.url).href, auth: basic(WEB), body: JSON.stringify(track("u-queue-down")) });
      assert.deepEqual(seen, { status: 503, retryAfter: "5", code: "queue_unavailable" });
    } finally {
      await browser.close();
      page.server.close();
      await worker.mf.dispose();
      built.cleanup();
      await dest.close();
    }
  });
});
