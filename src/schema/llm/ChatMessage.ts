import { Schema } from "effect"

/** One message of a chat completion request (OpenAI's `messages[]`, text only). */
export const ChatMessage = Schema.Struct({
  role: Schema.Literals(["system", "user", "assistant"]),
  content: Schema.String
})
export type ChatMessage = typeof ChatMessage.Type
