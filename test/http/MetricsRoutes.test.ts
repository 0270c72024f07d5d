import { Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { metricsAccess } from "../../src/http/MetricsRoutes.ts"

describe("metricsAccess", () => {
  const token = Option.some(Redacted.make("m".repeat(32)))

  it("asks for the token whenever one is set, on any address", () => {
    for (const host of ["127.0.0.1", "0.0.0.0", "10.0.0.2"]) expect(metricsAccess(token, host)._tag).toBe("Token")
  })

  it("without a token, is open on loopback only and closed on every other address", () => {
    for (const host of ["127.0.0.1", "127.0.1.1", "localhost", "::1"]) expect(metricsAccess(Option.none(), host)._tag, host).toBe("Open")
    for (const host of ["0.0.0.0", "::", "192.168.1.10", "bot.example.com"]) expect(metricsAccess(Option.none(), host)._tag, host).toBe("Closed")
  })
})
