import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { afterEach, describe, expect, it, vi } from "vitest"
import * as Logging from "../../../src/layers/platform/Logging.ts"
import { BaseConfig } from "../../../src/services/platform/AppConfig.ts"

/** The JSON lines `effect` logs through the Logging layer (LOG_LEVEL=All). */
const linesOf = async (effect: Effect.Effect<void>) => {
  const written: Array<string> = []
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    written.push(String(chunk))
    return true
  })
  const layer = Logging.layer.pipe(
    Layer.provide(BaseConfig.layer),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ LOG_LEVEL: "all" })))
  )
  await Effect.runPromise(Effect.provide(effect, layer))
  vi.restoreAllMocks()
  return written.map((line) => JSON.parse(line) as Record<string, unknown>)
}

describe("the JSON log line", () => {
  afterEach(() => vi.restoreAllMocks())

  it("keeps the message a fixed sentence: further strings go in `error`, objects' keys become fields", async () => {
    const [line] = await linesOf(
      Effect.logWarning("chat turn failed", "500 Internal Server Error", { url: "https://x.example", status: 500 }).pipe(
        Effect.annotateLogs({ chat_id: 42 })
      )
    )
    expect(line).toMatchObject({
      level: "WARN",
      message: "chat turn failed",
      error: "500 Internal Server Error",
      url: "https://x.example",
      status: 500,
      chat_id: 42
    })
  })

  it("never lets a detail overwrite the line's own keys, and prints secrets redacted", async () => {
    const [line] = await linesOf(Effect.logInfo("started", { message: "other", level: "X", token: Redacted.make("s3cret") }))
    expect(line).toMatchObject({ level: "INFO", message: "started", token: "<redacted>" })
    expect(JSON.stringify(line)).not.toContain("s3cret")
  })
})
