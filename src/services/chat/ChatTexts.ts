/** What the bot says without asking the LLM, and the commands it understands. */
export const texts = {
  start:
    "Hi! I'm an AI assistant. Send me any message and I'll answer.\n\n/new starts a new conversation\n/account shows your plan and today's usage\n/subscribe for unlimited messages\n/help shows this help",
  help:
    "Write to me as you would to a person: I remember our conversation until you send /new.\n\n/new starts a new conversation (I forget the earlier one)\n/account shows your plan and today's usage\n/subscribe for unlimited messages\n/help shows this help",
  newConversation: "Started a new conversation: I won't use anything we said before.",
  /** Past the updates-per-minute limit: said once, then silence until the minute frees up. */
  slowDown: "You're sending messages too fast: I'll ignore them for a minute. Please slow down.",
  /** Past the LLM turns per minute. */
  rateLimited: (perMinute: number, seconds: number) =>
    `You can send me ${perMinute} messages a minute. Please try again in ${seconds} second${seconds === 1 ? "" : "s"}.`,
  failed: "Sorry, I couldn't answer that just now. Please try again in a moment.",
  /** Appended (Markdown) to the part of an answer shown before the LLM failed. */
  cutOff: "\n\n_(The answer was cut off. Please ask again.)_",
  /** The final reply when the LLM streamed nothing but whitespace. */
  empty: "…"
} as const

export type Command = "start" | "help" | "new" | "subscribe" | "account"

/**
 * The command a message starts with (`/new`, `/new@any_bot`, any case, then a space or the end),
 * or undefined for anything else, which goes to the LLM. `/start subscribe` and `/start account`
 * (a t.me/<bot>?start= link from a group) are those commands.
 */
export const parseCommand = (text: string): Command | undefined => {
  const match = /^\/(start|help|new|subscribe|account)(?:@\w+)?(?:\s+(\S+))?(?:\s|$)/i.exec(text.trim())
  if (!match) return undefined
  const command = match[1]!.toLowerCase() as Command
  const payload = match[2]?.toLowerCase()
  return command === "start" && (payload === "subscribe" || payload === "account") ? payload : command
}
