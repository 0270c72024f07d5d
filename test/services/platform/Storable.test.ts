import { describe, expect, it } from "vitest"
import { storable, storableJson, storableOrNull } from "../../../src/services/platform/Storable.ts"

describe("storable", () => {
  it("drops NUL, replaces lone surrogates, and keeps everything else (pairs, emoji, zero-width) as sent", () => {
    expect(storable("a\u0000b")).toBe("ab")
    expect(storable("lone \ud800 high, lone \udc00 low")).toBe("lone \ufffd high, lone \ufffd low")
    expect(storable("pair 😀, zero\u200bwidth, e\u0301")).toBe("pair 😀, zero\u200bwidth, e\u0301")
    expect(storableOrNull(undefined)).toBeNull()
    expect(storableOrNull(null)).toBeNull()
  })

  it("cleans every string of a JSON value, keys included", () => {
    expect(storableJson({ "k\u0000": ["v\ud800", 1, null, { deep: "x\u0000y" }], n: 2, b: true })).toEqual({
      k: ["v\ufffd", 1, null, { deep: "xy" }],
      n: 2,
      b: true
    })
  })
})
