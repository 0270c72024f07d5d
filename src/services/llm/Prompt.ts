import type { ChatMessage } from "../../schema/llm/ChatMessage.ts"

/** An earlier question and its answer, as the conversation's history holds them. */
export interface Exchange {
  readonly question: string
  readonly answer: string
}

/** The instructions every prompt starts with. */
export const systemPrompt =
  "You are a helpful assistant chatting with a person on Telegram. Answer in the person's language. " +
  "Be concise unless asked for detail. Markdown is allowed: bold, italics, code, links and lists."

/**
 * A conservative token estimate (about 4 characters a token for English, fewer for other
 * scripts, so count 3) plus the per-message overhead of the chat format. It errs on the high
 * side so the trimmed prompt always fits.
 */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 3) + 4

/**
 * The message cut to what fits in `budget` tokens beside the system prompt (estimated as above),
 * never in the middle of a surrogate pair; `keptChars` (UTF-16 units) when it had to be cut.
 */
export const fitMessage = (message: string, budget: number): { readonly text: string; readonly keptChars?: number } => {
  const room = Math.max(0, (budget - estimateTokens(systemPrompt) - 4) * 3)
  if (message.length <= room) return { text: message }
  const end = /[\uD800-\uDBFF]/.test(message[room - 1] ?? "") ? room - 1 : room
  return { text: message.slice(0, end), keptChars: end }
}

/**
 * The system prompt, then as many of the most recent exchanges (`history`, newest first) as fit
 * in `budget` tokens (estimated, the new message and system prompt included: an exact fit is
 * kept), then the new message. Older exchanges are dropped whole, never cut in half; one too
 * big for the room on its own is left out and older ones still considered.
 */
export const buildPrompt = (
  history: ReadonlyArray<Exchange>,
  message: string,
  budget: number
): ReadonlyArray<ChatMessage> => {
  const room = budget - estimateTokens(systemPrompt) - estimateTokens(message)
  let remaining = room
  const kept: Array<ChatMessage> = []
  for (const exchange of history) {
    const cost = estimateTokens(exchange.question) + estimateTokens(exchange.answer)
    // One that could never fit (a long paste, cut when it was asked) is skipped, not an end.
    if (cost > room) continue
    if (cost > remaining) break
    remaining -= cost
    kept.unshift({ role: "user", content: exchange.question }, { role: "assistant", content: exchange.answer })
  }
  return [{ role: "system", content: systemPrompt }, ...kept, { role: "user", content: message }]
}
