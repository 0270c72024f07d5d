import { createHmac, timingSafeEqual } from "node:crypto"
import { Redacted } from "effect"

/** HMAC-SHA256 is 32 bytes: LemonSqueezy sends it as 64 lowercase hex characters. */
const signatureHexLength = 64

/**
 * Whether `signature` (the X-Signature header) is the HMAC-SHA256 of the raw body bytes under one
 * of `secrets` (LemonSqueezy's webhook signing; the previous secret is accepted during a
 * rotation). The header's length and alphabet are checked first, the digests compared in
 * constant time. Parsing and re-serialising the JSON changes the bytes: verify before parsing.
 */
export const isSignedBy = (body: Uint8Array, signature: string | undefined, secrets: ReadonlyArray<Redacted.Redacted>): boolean => {
  if (signature === undefined || signature.length !== signatureHexLength || !/^[0-9a-fA-F]+$/.test(signature)) return false
  const given = Buffer.from(signature, "hex")
  let matched = false
  // Every secret is tried, so the time does not tell which one matched.
  for (const secret of secrets) {
    const expected = createHmac("sha256", Redacted.value(secret)).update(body).digest()
    matched = timingSafeEqual(expected, given) || matched
  }
  return matched
}
