import { Option } from "effect"
import { describe, expect, it } from "vitest"
import { clientAddress } from "../../src/http/clientAddress.ts"

const from = (peer: string | undefined, forwarded?: string) =>
  clientAddress({ remoteAddress: Option.fromNullishOr(peer), headers: forwarded === undefined ? {} : { "x-forwarded-for": forwarded } })

describe("clientAddress", () => {
  it("is the socket's peer when it is not a proxy of ours, whatever the request says", () => {
    expect(from("203.0.113.7")).toBe("203.0.113.7")
    expect(from("203.0.113.7", "198.51.100.1")).toBe("203.0.113.7")
    expect(from(undefined)).toBe("unknown")
  })

  it("is the address a proxy on loopback or a private network appended last", () => {
    expect(from("127.0.0.1", "198.51.100.1")).toBe("198.51.100.1")
    expect(from("172.18.0.5", "10.9.9.9, 198.51.100.1")).toBe("198.51.100.1")
    expect(from("::1", "2001:db8::1")).toBe("2001:db8::1")
    expect(from("192.168.1.2")).toBe("192.168.1.2")
  })

  it("ignores a forwarded value that is not an IP address (no new rate-limit key for it)", () => {
    expect(from("127.0.0.1", "not-an-ip")).toBe("127.0.0.1")
    expect(from("127.0.0.1", "198.51.100.1, x".repeat(3))).toBe("127.0.0.1")
  })
})
