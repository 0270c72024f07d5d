import { createHash, timingSafeEqual } from "node:crypto"

/** A secret kept as its SHA-256 digest, for comparing what a request presents. */
export const secretDigest = (value: string): Buffer => createHash("sha256").update(value).digest()

/** Compares digests, so neither the content nor the length of the secret leaks through timing. */
export const matchesSecret = (expected: Buffer, given: string | undefined): boolean =>
  given !== undefined && timingSafeEqual(expected, secretDigest(given))
