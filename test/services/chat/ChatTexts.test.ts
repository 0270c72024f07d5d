import { assert, describe, it } from "@effect/vitest"
import { isBlank, parseCommand } from "../../../src/services/chat/ChatTexts.ts"

describe("isBlank", () => {
  it("is true for nothing readable: whitespace, NUL and control characters, zero-width and format characters, blank fillers", () => {
    for (const text of ["", " \n\t", "\u0000", "\u200B\u200C\u200D", "\u2060\uFEFF", "\u00AD", "\u202E\u200E", "\u2800", "\u3164\uFFA0", "\u3000"]) {
      assert.isTrue(isBlank(text), JSON.stringify(text))
    }
  })
  it("is false once anything readable is there, emoji and other scripts included", () => {
    for (const text of ["a", "\u200B?", "👍", "日本", ".", "\u0000x"]) assert.isFalse(isBlank(text), JSON.stringify(text))
  })
})

describe("parseCommand", () => {
  it("reads /cmd and /cmd@bot, case-insensitive, and a /start link's payload", () => {
    assert.strictEqual(parseCommand("/NEW@Some_Bot"), "new")
    assert.strictEqual(parseCommand("/start subscribe"), "subscribe")
    assert.strictEqual(parseCommand("/newish"), undefined)
  })
})
