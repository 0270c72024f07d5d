import { Effect, Layer, Option } from "effect"
import { Ai } from "../../services/llm/Ai.ts"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { StartupError } from "../../services/platform/StartupError.ts"

/**
 * Checks the LLM key once at start, in the programs that call the LLM. Refused (401/403): the
 * start stops, naming OPENAI_API_KEY and the server. Anything else (the server away, no /models
 * on a compatible server): a warning, and the start goes on; the provider may come back.
 */
export const LlmKeyCheckLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  const ai = yield* Ai
  const server = Option.getOrElse(config.openaiBaseUrl, () => "https://api.openai.com/v1")
  const checked = yield* Effect.result(ai.checkKey)
  if (checked._tag === "Success") return
  const error = checked.failure
  if (error.status === 401 || error.status === 403) {
    return yield* new StartupError({
      message: `the LLM server ${server} refuses OPENAI_API_KEY (${error.status}): set the key it gave you, or OPENAI_BASE_URL to the server the key is for.`
    })
  }
  yield* Effect.logWarning("cannot check the LLM key at start; starting anyway").pipe(
    Effect.annotateLogs({ server, status: error.status, error: error.message })
  )
}))
