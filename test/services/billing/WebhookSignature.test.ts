import { Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { isSignedBy } from "../../../src/services/billing/WebhookSignature.ts"
import { lemonFixture, lemonSignature, lemonWire } from "../../support/fixtures.ts"

const body = lemonWire(lemonFixture("subscription_created-time8-product"))
const bytes = new TextEncoder().encode(body)
const current = Redacted.make("current-secret")
const previous = Redacted.make("previous-secret")

describe("LemonSqueezy's webhook signature", () => {
  it("is the HMAC-SHA256 of the exact bytes, in hex, under the current or the previous secret", () => {
    expect(isSignedBy(bytes, lemonSignature(body, "current-secret"), [current, previous])).toBe(true)
    expect(isSignedBy(bytes, lemonSignature(body, "previous-secret"), [current, previous])).toBe(true)
    expect(isSignedBy(bytes, lemonSignature(body, "previous-secret"), [current])).toBe(false)
    expect(isSignedBy(bytes, lemonSignature(body, "current-secret").toUpperCase(), [current])).toBe(true)
  })

  it("refuses a missing, short, long, odd-length or non-hex signature, and other bytes", () => {
    const good = lemonSignature(body, "current-secret")
    for (const bad of [undefined, "", good.slice(0, 62), good.slice(0, 63), `${good}00`, `${good.slice(0, 63)}g`]) {
      expect(isSignedBy(bytes, bad, [current]), String(bad)).toBe(false)
    }
    const reserialised = new TextEncoder().encode(JSON.stringify(JSON.parse(body)))
    expect(isSignedBy(reserialised, good, [current])).toBe(false)
  })
})
