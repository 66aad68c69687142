// The module a Worker entry imports its policy from: the environment's
// name, the policy prepared by the engine (`preparePolicy`), which the
// Worker's engine (built without the validator) loads with
// `Sanitizer.fromPrepared`, and whether the policy honours Global Privacy
// Control (the Worker's /.well-known/gpc.json says so), and for the
// evidence report its data map (Markdown) and BAA register. Node only
// (build time).
import { dataMap, preparePolicy, Sanitizer } from "./node.mjs";

/**
 * The module's text for a policy (JSON text); throws the engine's Error
 * (code `invalid_policy`, with `errors`) for an invalid one.
 */
export function preparedModule(text, source) {
  return preparedPolicy(text, source).module;
}

/**
 * The module's text and the prepared policy's SHA-256 (its last 32 bytes:
 * what the Worker's GET /health reports, so an operator can tell which
 * policy a deployment runs).
 */
export function preparedPolicy(text, source) {
  const bytes = preparePolicy(text);
  const sha256 = Buffer.from(bytes.subarray(-32)).toString("hex");
  return { module: moduleText(Buffer.from(bytes).toString("base64"), text, source), sha256 };
}

function moduleText(prepared, text, source) {
  const policy = JSON.parse(text);
  const { environment } = policy;
  const map = { markdown: dataMap(text, "markdown") };
  return `// Prepared from ${source} by www/dev/check-policy.mjs; do not edit.\n` +
    `export default { environment: ${JSON.stringify(environment)}, prepared: "${prepared}", gpc: ${honoursGpc(policy)}, ` +
    `baa: ${JSON.stringify(baaRegister(text))}, map: ${JSON.stringify(map)} };\n`;
}

// A key only to make a sanitizer that reads the register: it masks nothing.
const READ_ONLY_KEY = "phimask build: reads the policy's BAA register only";

/** The policy's BAA register ([{ destination, signed, ref }]), as the engine reads it. */
export function baaRegister(text) {
  const sanitizer = new Sanitizer(text, READ_ONLY_KEY);
  try {
    return sanitizer.baaRegister();
  } finally {
    sanitizer.free();
  }
}

/**
 * Whether a (validated) policy honours Global Privacy Control: a server-side
 * destination needs a purpose its consent section has GPC deny, so a
 * visitor's GPC signal changes what is sent.
 */
export function honoursGpc(policy) {
  const gpc = Array.isArray(policy?.consent?.gpc) ? policy.consent.gpc : [];
  return Object.values(policy?.destinations ?? {}).some(
    (d) => d?.connection === "server-side" && Array.isArray(d.consent) && d.consent.some((p) => gpc.includes(p)),
  );
}
