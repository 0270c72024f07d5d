import { Context, Effect, Layer } from "effect"
import { AppConfig } from "../platform/AppConfig.ts"

/** The per-message overhead of the chat format (role and separators), in tokens. */
const messageOverhead = 4

/**
 * Which of OpenAI's encodings (gpt-tokenizer's, the same as tiktoken's) a model uses: o200k_base
 * for GPT-4o, 4.1, 4.5, 5, o-series and gpt-oss, cl100k_base for GPT-4 and 3.5. Other models
 * (Llama, Mistral, Qwen... behind an OpenAI-compatible server) have tokenizers of their own: they
 * are counted conservatively (see tokenCounter).
 */
export const encodingOf = (model: string): { readonly encoding: "o200k_base" | "cl100k_base"; readonly exact: boolean } => {
  const name = model.toLowerCase().replace(/^openai\//, "")
  if (/^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o\d|gpt-oss)/.test(name)) return { encoding: "o200k_base", exact: true }
  if (/^(gpt-4|gpt-3\.5)/.test(name)) return { encoding: "cl100k_base", exact: true }
  return { encoding: "o200k_base", exact: false }
}

const utf8 = new TextEncoder()

/**
 * Counts a message's tokens (text + the chat format's overhead) for `model`: exact for OpenAI's
 * models; for others the larger of o200k_base's count plus 10 % and one token per 3 UTF-8 bytes,
 * which stays above what the usual open models' tokenizers count, CJK and emoji included
 * (characters / 3 undercounted CJK about 3x: issue 9). Loads the encoding (about 16 MB of
 * heap for o200k_base) on first call.
 */
export const tokenCounter = async (model: string): Promise<(text: string) => number> => {
  const { encoding, exact } = encodingOf(model)
  const { countTokens } = encoding === "o200k_base"
    ? await import("gpt-tokenizer/encoding/o200k_base")
    : await import("gpt-tokenizer/encoding/cl100k_base")
  // "<|endoftext|>" in a message is text, not a special token (gpt-tokenizer throws on it by default).
  const asText = { disallowedSpecial: new Set<string>() }
  const tokens = (text: string) => countTokens(text, asText)
  return exact
    ? (text) => tokens(text) + messageOverhead
    : (text) => Math.max(Math.ceil(tokens(text) * 1.1), Math.ceil(utf8.encode(text).length / 3)) + messageOverhead
}

/** A model's token counts (see tokenCounter). */
export interface TokenCount {
  /** Tokens of one chat message with `text` as its content, overhead included. */
  readonly count: (text: string) => number
  /**
   * `text` cut to at most `tokens` tokens (as one message), never inside a surrogate pair;
   * `keptChars` (UTF-16 units) when it had to be cut.
   */
  readonly fit: (text: string, tokens: number) => { readonly text: string; readonly keptChars?: number }
}

/** Counting and cutting with `count`: the longest prefix that fits, by binary search (counts grow with the prefix). */
export const tokenCountOf = (count: (text: string) => number): TokenCount => ({
  count,
  fit: (text, tokens) => {
    if (count(text) <= tokens) return { text }
    let fits = 0
    let over = text.length
    while (over - fits > 1) {
      const middle = Math.floor((fits + over) / 2)
      if (count(text.slice(0, middle)) <= tokens) fits = middle
      else over = middle
    }
    const end = /[\uD800-\uDBFF]/.test(text[fits - 1] ?? "") ? fits - 1 : fits
    return { text: text.slice(0, end), keptChars: end }
  }
})

/** Counts tokens the way OPENAI_MODEL does, for trimming prompts and for the caps. */
export class Tokenizer extends Context.Service<Tokenizer, {
  /** OPENAI_MODEL's counts, its encoding loaded on first use (so processes that run no turn never load it). */
  readonly counter: Effect.Effect<TokenCount>
}>()("bot/Tokenizer") {
  static readonly layer = Layer.effect(
    Tokenizer,
    Effect.gen(function*() {
      const { openaiModel } = yield* AppConfig
      const counter = yield* Effect.cached(Effect.promise(() => tokenCounter(openaiModel)).pipe(Effect.map(tokenCountOf)))
      return Tokenizer.of({ counter })
    })
  )
}
