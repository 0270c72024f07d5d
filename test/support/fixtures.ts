import { createHmac } from "node:crypto"
import { readFileSync } from "node:fs"

const telegramDir = new URL("../fixtures/telegram/", import.meta.url)
const lemonDir = new URL("../fixtures/lemonsqueezy/", import.meta.url)

/** A real Telegram update from test/fixtures/telegram (copied from shared/fixtures, see SOURCES.md). */
export const telegramFixture = (name: string): Record<string, unknown> & { update_id: number } =>
  JSON.parse(readFileSync(new URL(`${name}.json`, telegramDir), "utf8"))

/** A LemonSqueezy webhook body as the fixtures hold it: `{ meta, data }`. */
export interface LemonEvent {
  meta: { event_name: string; custom_data?: Record<string, unknown>; [key: string]: unknown }
  data: { type: string; id: string; attributes: Record<string, unknown>; [key: string]: unknown }
}

/** A real LemonSqueezy webhook payload from test/fixtures/lemonsqueezy (see SOURCES.md there). */
export const lemonFixture = (name: string): LemonEvent => JSON.parse(readFileSync(new URL(`${name}.json`, lemonDir), "utf8"))

/** The bytes LemonSqueezy sends: compact JSON, `meta` first, `/` escaped as `\/` (SOURCES.md). */
export const lemonWire = (event: LemonEvent): string => {
  const { data, meta, ...rest } = event
  return JSON.stringify({ meta, data, ...rest }).replaceAll("/", "\\/")
}

/** X-Signature: HMAC-SHA256 of the exact bytes with the webhook's signing secret, in hex. */
export const lemonSignature = (body: string, secret: string): string => createHmac("sha256", secret).update(body).digest("hex")
