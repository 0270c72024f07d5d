import { describe, expect, it } from "vitest"
import { isEntitled, noticeFor, quotaDay } from "../../../src/services/billing/Entitlement.ts"

const now = new Date("2026-11-29T12:00:00Z")

describe("entitlement", () => {
  it("entitles on_trial, active, past_due (grace) and cancelled until ends_at; not paused, unpaid, expired", () => {
    for (const status of ["on_trial", "active", "past_due"] as const) expect(isEntitled(status, null, now), status).toBe(true)
    for (const status of ["paused", "unpaid", "expired"] as const) expect(isEntitled(status, null, now), status).toBe(false)
    expect(isEntitled("cancelled", new Date(now.getTime() + 1), now)).toBe(true)
    expect(isEntitled("cancelled", now, now)).toBe(false) // ends_at reached: over
    expect(isEntitled("cancelled", null, now)).toBe(false)
  })

  it("tells each change of status once, as what it means to the holder", () => {
    expect(noticeFor(undefined, "active")).toBe("activated")
    expect(noticeFor(undefined, "on_trial")).toBe("activated")
    expect(noticeFor("on_trial", "active")).toBeUndefined()
    expect(noticeFor("active", "active")).toBeUndefined()
    expect(noticeFor("active", "past_due")).toBe("payment_failed")
    expect(noticeFor("past_due", "active")).toBe("recovered")
    expect(noticeFor("unpaid", "active")).toBe("recovered")
    expect(noticeFor("past_due", "unpaid")).toBe("unpaid")
    expect(noticeFor("active", "cancelled")).toBe("cancelled")
    expect(noticeFor("cancelled", "active")).toBe("resumed")
    expect(noticeFor("active", "paused")).toBe("paused")
    expect(noticeFor("paused", "active")).toBe("resumed")
    expect(noticeFor("cancelled", "expired")).toBe("expired")
    expect(noticeFor("expired", "active")).toBe("activated")
  })

  it("counts quota days in the billing time zone", () => {
    const lastSecond = Date.parse("2026-11-29T22:59:59Z")
    expect(quotaDay(lastSecond, "Europe/Paris")).toBe("2026-11-29")
    expect(quotaDay(lastSecond + 1000, "Europe/Paris")).toBe("2026-11-30")
    expect(quotaDay(lastSecond + 1000, "UTC")).toBe("2026-11-29")
    expect(quotaDay(Date.parse("2026-11-30T00:00:00Z"), "UTC")).toBe("2026-11-30")
  })
})
