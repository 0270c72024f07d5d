import { Schema } from "effect"

/**
 * The program cannot start: `message` is one sentence that names the setting or resource at
 * fault (PORT, DATA_DIR, DATABASE_URL, TELEGRAM_BOT_TOKEN, ...) and what to do about it.
 */
export class StartupError extends Schema.TaggedError<StartupError>()("StartupError", {
  message: Schema.String
}) {}
