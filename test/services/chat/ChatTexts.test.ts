import { assert, describe, it } from "@effect/vitest"
import { isBlank, parseCommand } from "../../../src/services/chat/ChatTexts.ts"
import { fitMessage } from "../../../src/services/llm/Prompt.ts"

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

describe("fitMessage", () => {
  it("keeps a message that fits, and cuts one that does not to the room left by the system prompt", () => {
    assert.deepStrictEqual(fitMessage("short", 1000), { text: "short" })
    const cut = fitMessage("x".repeat(100_000), 1000)
    assert.isTrue(cut.text.length < 3000 && cut.text.length > 2500)
    assert.strictEqual(cut.keptChars, cut.text.length)
  })
  it("never cuts a surrogate pair in half", () => {
    const emoji = "😀".repeat(50_000)
    const cut = fitMessage(emoji, 1000)
    assert.strictEqual(cut.text.length % 2, 0)
    assert.isFalse(/[\uD800-\uDBFF]$/.test(cut.text))
  })
})
