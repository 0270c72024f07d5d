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
  newAdminsOnly: "In a group, only its administrators can start a new conversation.",
  tokenCap: (zone: string) =>
    `You've used today's share of the assistant. It starts again at midnight (${zone} time).`,
  spendCap: "The assistant has reached its budget for today. Please try again tomorrow.",
  failed: "Sorry, I couldn't answer that just now. Please try again in a moment.",
  /** Appended (Markdown) to the part of an answer shown before the LLM failed. */
  cutOff: "\n\n_(The answer was cut off. Please ask again.)_",
  /** The final reply when the LLM streamed nothing but whitespace. */
  empty: "…",
  /** The LLM server refuses the operator's API key (401/403): nothing the user can do. */
  unavailable: "Sorry, I'm unavailable right now: the service is being fixed. Please come back later.",
  /** A message with nothing readable once cleaned (only whitespace or invisible characters). */
  emptyText: "Your message looks empty to me: please write your question as text.",
  /** A voice message, sticker, photo without a caption...: said once per chat per 10 minutes. */
  textOnly: "I can only read text for now: please write your question (or add a caption to your photo or file).",
  /** Appended (Markdown) to the answer to a caption. */
  attachmentNotRead: (kind: string) => `\n\n_(I read your caption only: I can't see ${kind === "photo" ? "photos" : "attachments"} yet.)_`,
  /** Appended (Markdown) when the message was longer than the prompt's room. */
  truncated: (keptChars: number) => `\n\n_(Your message was too long: I read only its first ${keptChars} characters.)_`,
  /** Appended (Markdown) to what was shown of an answer the user stopped. */
  stopped: "\n\n_(stopped)_",
  /** The button under an answer streaming in a group. */
  stopButton: "⏹ Stop",
  stopping: "Stopping…",
  stopNotYours: "Only the person who asked can stop this answer.",
  stopTooLate: "This answer is already finished."
} as const

/** The commands the bot has. */
export const commands = ["start", "help", "new", "subscribe", "account"] as const
export type Command = (typeof commands)[number]

/** The command menu Telegram's clients show (setMyCommands); /start is Telegram's own button. */
export const commandMenu = [
  { command: "new", description: "Start a new conversation" },
  { command: "account", description: "Your plan and today's usage" },
  { command: "subscribe", description: "Unlimited messages" },
  { command: "help", description: "What I can do" }
] as const satisfies ReadonlyArray<{ readonly command: Command; readonly description: string }>

/**
 * Whether nothing in the text is readable: only whitespace, control and format characters
 * (zero-width spaces and joiners, direction marks, NUL...) and blank-looking fillers.
 */
export const isBlank = (text: string): boolean =>
  /^[\s\p{Cc}\p{Cf}\p{Z}\u034F\u115F\u1160\u17B4\u17B5\u2800\u3164\uFFA0]*$/u.test(text)

const commandPattern = new RegExp(`^\\/(${commands.join("|")})(?:@\\w+)?(?:\\s+(\\S+))?(?:\\s|$)`, "i")

/**
 * The command a message starts with (`/new`, `/new@any_bot`, any case, then a space or the end),
 * or undefined for anything else, which goes to the LLM. `/start subscribe` and `/start account`
 * (a t.me/<bot>?start= link from a group) are those commands.
 */
export const parseCommand = (text: string): Command | undefined => {
  const match = commandPattern.exec(text.trim())
  if (!match) return undefined
  const command = match[1]!.toLowerCase() as Command
  const payload = match[2]?.toLowerCase()
  return command === "start" && (payload === "subscribe" || payload === "account") ? payload : command
}
