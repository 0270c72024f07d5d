import { encode } from "gpt-tokenizer/encoding/o200k_base"
import { describe, expect, it } from "vitest"
import { encodingOf, tokenCounter, tokenCountOf } from "../../../src/services/llm/Tokenizer.ts"

const cjk = "我们今天讨论一下分布式系统的一致性问题，以及在网络分区时如何取舍。".repeat(130).slice(0, 4_000)

describe("Tokenizer", () => {
  it("knows which encoding OpenAI's models use, and which models it cannot count exactly", () => {
    for (const model of ["gpt-4o-mini", "gpt-4.1", "gpt-5-mini", "o3-mini", "o4-mini", "openai/gpt-oss-20b"]) {
      expect(encodingOf(model), model).toEqual({ encoding: "o200k_base", exact: true })
    }
    for (const model of ["gpt-4", "gpt-4-turbo", "gpt-3.5-turbo"]) expect(encodingOf(model), model).toEqual({ encoding: "cl100k_base", exact: true })
    for (const model of ["llama-3.1-70b", "mistral-large", "qwen2.5", "gpt-test"]) expect(encodingOf(model).exact, model).toBe(false)
  })

  it("counts OpenAI's models exactly (the text's tokens plus the message's overhead)", async () => {
    const count = await tokenCounter("gpt-4o-mini")
    for (const text of ["hello world", cjk, "😀🎉🚀".repeat(50)]) expect(count(text)).toBe(encode(text).length + 4)
  })

  it("counts other models' CJK and emoji at least one token a character, never fewer than o200k_base", async () => {
    const count = await tokenCounter("llama-3.1-70b")
    expect(count(cjk)).toBeGreaterThanOrEqual(cjk.length)
    expect(count(cjk)).toBeGreaterThan(encode(cjk).length)
    const english = "Can you explain how a hash map works? ".repeat(50)
    expect(count(english)).toBeGreaterThanOrEqual(Math.ceil(english.length / 3))
    // characters / 3 (the old estimate) counted this CJK message at a third of this.
    expect(count(cjk)).toBeGreaterThan(3 * Math.ceil(cjk.length / 3) * 0.9)
  })

  it("cuts a 4,000-character CJK message to the budget, the longest prefix that fits", async () => {
    for (const model of ["gpt-4o", "mistral-large"]) {
      const tokens = tokenCountOf(await tokenCounter(model))
      const cut = tokens.fit(cjk, 1_000)
      expect(tokens.count(cut.text), model).toBeLessThanOrEqual(1_000)
      expect(tokens.count(cjk.slice(0, cut.text.length + 1)), model).toBeGreaterThan(1_000)
      expect(cut.keptChars).toBe(cut.text.length)
      expect(tokens.fit("short", 1_000)).toEqual({ text: "short" })
    }
  })

  it("counts special-token text (\"<|endoftext|>\") as plain text instead of failing", async () => {
    for (const model of ["gpt-4o", "gpt-4", "llama-3"]) {
      const count = await tokenCounter(model)
      expect(count("<|endoftext|> hi <|im_start|>system")).toBeGreaterThan(4)
    }
  })

  it("never cuts a surrogate pair in half", async () => {
    const tokens = tokenCountOf(await tokenCounter("gpt-4o"))
    const cut = tokens.fit("😀".repeat(5_000), 500)
    expect(cut.text.length % 2).toBe(0)
    expect(/[\uD800-\uDBFF]$/.test(cut.text)).toBe(false)
    expect(tokens.count(cut.text)).toBeLessThanOrEqual(500)
  })
})
