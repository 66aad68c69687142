// Encryption of queued bodies that still hold PHI (destinations under a
// BAA): AES-256-GCM with WebCrypto, a fresh 96-bit IV per message. The
// additional data binds the destination, the policy's SHA-256 and the key
// id, so a sealed body opens only for the destination and policy it was
// made for, and only under the key it names. The key is the
// QUEUE_ENCRYPTION_KEY secret; QUEUE_ENCRYPTION_KEY_PREVIOUS (decrypt
// only) opens what the previous key sealed while a rotation drains. Each
// is 32 bytes as 64 hex digits or as base64.

const enc = new TextEncoder();

/**
 * The key of a secret as { key, kid } (a promise), or null when it is not
 * set. The key id is the first 8 hex digits of the SHA-256 of the key's
 * bytes: it names the key without revealing it. Throws `invalid_queue_key`
 * when the secret is set but not 32 bytes (never quoting it).
 */
export function sealKey(secret, name = "QUEUE_ENCRYPTION_KEY") {
  if (secret === undefined || secret === null || secret === "") return null;
  const text = String(secret).trim();
  let bytes = null;
  if (/^[0-9a-fA-F]{64}$/.test(text)) {
    bytes = Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));
  } else if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) {
    bytes = Uint8Array.from(atob(text.length === 43 ? `${text}=` : text), (c) => c.charCodeAt(0));
  }
  if (bytes?.length !== 32) {
    throw Object.assign(new Error(`${name} must be 32 bytes, as 64 hex digits or base64 (e.g. \`openssl rand -base64 32\`)`), { code: "invalid_queue_key" });
  }
  return (async () => {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const kid = Array.from(digest.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
    const key = await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]);
    return { key, kid };
  })();
}

/** The additional data: key id, policy hash and destination, unambiguously joined. */
const aad = (kid, policy, destination) => enc.encode(JSON.stringify(["phimask-seal-1", kid, policy, destination]));

/** `bytes` sealed for `destination` under `policy` (hex SHA-256): { iv, body, kid }. */
export async function seal(sealing, { destination, policy }, bytes) {
  const { key, kid } = await sealing;
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const body = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(kid, policy, destination) }, key, bytes));
  return { iv, body, kid };
}

/**
 * The bytes of a sealed body, opened with whichever of `keys` (promises of
 * { key, kid }, or null) its key id names; throws when none does, or it
 * does not open (altered, another destination, another policy).
 */
export async function open(keys, { destination, policy, kid }, iv, body) {
  for (const k of keys) {
    const sealing = await k;
    if (!sealing || sealing.kid !== kid) continue;
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad(kid, policy, destination) }, sealing.key, body));
  }
  throw new Error("no key with this key id");
}
