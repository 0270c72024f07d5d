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
 * The system prompt, then as many of the most recent exchanges (`history`, newest first) as fit
 * in `budget` tokens (as `count` counts a message: Tokenizer.count; the new message and system
 * prompt included: an exact fit is kept), then the new message. Older exchanges are dropped
 * whole, never cut in half; one too big for the room on its own is left out and older ones
 * still considered.
 */
export const buildPrompt = (
  history: ReadonlyArray<Exchange>,
  message: string,
  budget: number,
  count: (text: string) => number
): ReadonlyArray<ChatMessage> => {
  const room = budget - count(systemPrompt) - count(message)
  let remaining = room
  const kept: Array<ChatMessage> = []
  for (const exchange of history) {
    const cost = count(exchange.question) + count(exchange.answer)
    // One that could never fit (a long paste, cut when it was asked) is skipped, not an end.
    if (cost > room) continue
    if (cost > remaining) break
    remaining -= cost
    kept.unshift({ role: "user", content: exchange.question }, { role: "assistant", content: exchange.answer })
  }
  return [{ role: "system", content: systemPrompt }, ...kept, { role: "user", content: message }]
}
