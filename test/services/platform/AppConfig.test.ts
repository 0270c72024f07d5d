import { ConfigProvider, Effect, Layer, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { AppConfig } from "../../../src/services/platform/AppConfig.ts"

const load = (env: Record<string, string>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      return yield* AppConfig
    }).pipe(
      Effect.provide(AppConfig.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))),
      Effect.result
    )
  )

const minimal = { TELEGRAM_BOT_TOKEN: "123:secret-token", OPENAI_API_KEY: "sk-secret" }

describe("AppConfig", () => {
  it("lists every missing or invalid setting in one message", async () => {
    const result = await load({
      PORT: "eighty",
      PUBLIC_URL: "not a url",
      TELEGRAM_WEBHOOK_SECRET: "has spaces!",
      WORKER_CONCURRENCY: "0",
      LOG_LEVEL: "Loud"
    })
    expect(result._tag).toBe("Failure")
    if (result._tag !== "Failure") return
    const message = result.failure.message
    expect(message).toMatch(/^Invalid configuration \(7 problems\):/)
    for (const name of ["PORT", "PUBLIC_URL", "TELEGRAM_WEBHOOK_SECRET", "WORKER_CONCURRENCY", "LOG_LEVEL"]) {
      expect(message).toContain(`- ${name}: `)
    }
    expect(message).toContain("- TELEGRAM_BOT_TOKEN is required")
    expect(message).toContain("- OPENAI_API_KEY is required")
  })

  it("requires the webhook secret in webhook mode", async () => {
    const result = await load({ ...minimal, PUBLIC_URL: "https://bot.example.com" })
    expect(result._tag === "Failure" && result.failure.message).toContain(
      "TELEGRAM_WEBHOOK_SECRET is required when PUBLIC_URL is set"
    )
  })

  it("takes each limit at its bound and refuses one past it", async () => {
    const accepted = await load({
      ...minimal,
      PUBLIC_URL: "https://bot.example.com",
      TELEGRAM_WEBHOOK_SECRET: "s".repeat(256),
      WORKER_CONCURRENCY: "1",
      PORT: "65535"
    })
    expect(accepted._tag).toBe("Success")
    const refused = await load({
      ...minimal,
      PUBLIC_URL: "https://bot.example.com",
      TELEGRAM_WEBHOOK_SECRET: "s".repeat(257),
      WORKER_CONCURRENCY: "0",
      PORT: "65536"
    })
    expect(refused._tag === "Failure" && refused.failure.message).toMatch(/^Invalid configuration \(3 problems\):/)
  })

  it("refuses secrets shorter than 32 characters, naming the rule and never the value", async () => {
    const short = "s".repeat(31)
    const result = await load({ ...minimal, TELEGRAM_WEBHOOK_SECRET: short, METRICS_TOKEN: "t".repeat(31) })
    const message = result._tag === "Failure" ? result.failure.message : ""
    expect(message).toMatch(/^Invalid configuration \(2 problems\):/)
    expect(message).toContain("- TELEGRAM_WEBHOOK_SECRET: 32 to 256 characters of A-Z a-z 0-9 _ - (`openssl rand -hex 32` makes one)")
    expect(message).toContain("- METRICS_TOKEN: 32 characters or more, no spaces")
    expect(message).not.toContain(short)
    expect(message).not.toContain("t".repeat(31))
    const accepted = await load({ ...minimal, TELEGRAM_WEBHOOK_SECRET: "s".repeat(32), METRICS_TOKEN: "t".repeat(32) })
    expect(accepted._tag).toBe("Success")
  })

  it("sends the token and keys only over https, or plain http to this machine", async () => {
    const refused = await load({
      ...minimal,
      TELEGRAM_API_ROOT: "http://telegram-proxy.example",
      OPENAI_BASE_URL: "http://10.0.0.5:8000/v1",
      LEMON_API_URL: "ftp://lemon.example"
    })
    const message = refused._tag === "Failure" ? refused.failure.message : ""
    expect(message).toMatch(/^Invalid configuration \(3 problems\):/)
    for (const name of ["TELEGRAM_API_ROOT", "OPENAI_BASE_URL", "LEMON_API_URL"]) {
      expect(message).toContain(`- ${name} must be an https:// address (or http:// to this machine: localhost, 127.0.0.1, [::1])`)
    }
    for (const local of ["http://localhost:8081", "http://127.0.0.1:9", "http://127.1.2.3", "http://[::1]:11434", "https://api.example"]) {
      const accepted = await load({ ...minimal, TELEGRAM_API_ROOT: local, OPENAI_BASE_URL: `${local}/v1` })
      expect(accepted._tag, local).toBe("Success")
    }
    // A host that only starts like loopback is not loopback.
    expect((await load({ ...minimal, OPENAI_BASE_URL: "http://127.0.0.1.evil.example/v1" }))._tag).toBe("Failure")
  })

  it("listens on loopback by default in polling mode, on every address in webhook mode, or on HOST", async () => {
    const polling = await load(minimal)
    expect(polling._tag === "Success" && polling.success.host).toBe("127.0.0.1")
    const webhook = await load({ ...minimal, PUBLIC_URL: "https://bot.example.com", TELEGRAM_WEBHOOK_SECRET: "s".repeat(32) })
    expect(webhook._tag === "Success" && webhook.success.host).toBe("0.0.0.0")
    const given = await load({ ...minimal, HOST: "10.0.0.2", METRICS_PORT: "9464" })
    expect(given._tag === "Success" && [given.success.host, Option.getOrNull(given.success.metricsPort)]).toEqual(["10.0.0.2", 9464])
    const refused = await load({ ...minimal, METRICS_PORT: "metrics" })
    expect(refused._tag === "Failure" && refused.failure.message).toContain("- METRICS_PORT: ")
  })

  it("reads the prices and the spend caps, refusing negative ones", async () => {
    const off = await load(minimal)
    expect(off._tag === "Success" && [off.success.llmPrices, off.success.dailyTokens, off.success.dailySpendLimitUsd]).toEqual([
      { inputPerMtok: 0, outputPerMtok: 0 },
      { free: 0, paid: 0 },
      0
    ])
    const set = await load({ ...minimal, LLM_PRICE_INPUT_PER_MTOK: "0.15", LLM_PRICE_OUTPUT_PER_MTOK: "0.6", USER_DAILY_TOKENS: "20000", PAID_DAILY_TOKENS: "500000", DAILY_SPEND_LIMIT_USD: "25.5" })
    expect(set._tag === "Success" && [set.success.llmPrices, set.success.dailyTokens, set.success.dailySpendLimitUsd]).toEqual([
      { inputPerMtok: 0.15, outputPerMtok: 0.6 },
      { free: 20000, paid: 500000 },
      25.5
    ])
    // A spend limit without prices could never be reached: every turn would cost 0.
    const unpriced = await load({ ...minimal, DAILY_SPEND_LIMIT_USD: "5" })
    expect(unpriced._tag === "Failure" && unpriced.failure.message).toContain("DAILY_SPEND_LIMIT_USD needs the model's prices")
    const refused = await load({ ...minimal, LLM_PRICE_INPUT_PER_MTOK: "-1", USER_DAILY_TOKENS: "1.5", DAILY_SPEND_LIMIT_USD: "lots" })
    const message = refused._tag === "Failure" ? refused.failure.message : ""
    for (const name of ["LLM_PRICE_INPUT_PER_MTOK", "USER_DAILY_TOKENS", "DAILY_SPEND_LIMIT_USD"]) expect(message).toContain(name)
  })

  it("turns billing on only with every LEMON_* setting it needs, and names the missing ones", async () => {
    const off = await load(minimal)
    expect(off._tag === "Success" && Option.isNone(off.success.lemonSqueezy)).toBe(true)
    const partial = await load({ ...minimal, LEMON_API_KEY: "lk", LEMON_VARIANT_PROMO: "1" })
    expect(partial._tag === "Failure" && partial.failure.message).toContain(
      "billing needs LEMON_STORE_ID, LEMON_VARIANT_STANDARD, LEMON_WEBHOOK_SECRET as well"
    )
    const on = await load({
      ...minimal,
      LEMON_API_KEY: "lk",
      LEMON_STORE_ID: "9",
      LEMON_VARIANT_PROMO: "1",
      LEMON_VARIANT_STANDARD: "2",
      LEMON_WEBHOOK_SECRET: "whsec-current",
      LEMON_WEBHOOK_SECRET_PREVIOUS: "whsec-previous",
      LEMON_API_URL: "http://127.0.0.1:9/"
    })
    if (on._tag !== "Success" || Option.isNone(on.success.lemonSqueezy)) throw new Error("billing should be on")
    const lemon = on.success.lemonSqueezy.value
    expect(lemon.apiUrl).toBe("http://127.0.0.1:9")
    expect(lemon.variants).toEqual({ promo: "1", standard: "2" })
    expect(lemon.webhookSecrets.map(Redacted.value)).toEqual(["whsec-current", "whsec-previous"])
    expect(JSON.stringify(on.success)).not.toContain("whsec")
  })

  it("refuses a webhook secret LemonSqueezy would not take, a zone that does not exist, and the replaced USER_MESSAGES_PER_MINUTE", async () => {
    const result = await load({
      ...minimal,
      LEMON_WEBHOOK_SECRET: "short",
      BILLING_TIMEZONE: "Mars/Olympus",
      USER_MESSAGES_PER_MINUTE: "20",
      FREE_DAILY_MESSAGES: "-1"
    })
    const message = result._tag === "Failure" ? result.failure.message : ""
    expect(message).toContain("- LEMON_WEBHOOK_SECRET: ")
    expect(message).toContain("- BILLING_TIMEZONE: ")
    expect(message).toContain("- FREE_DAILY_MESSAGES: ")
    expect(message).toContain("USER_MESSAGES_PER_MINUTE was replaced by RATE_LIMIT_LLM_PER_MINUTE")
  })

  it("refuses an answer budget that leaves the prompt no room, an unknown group mode and a negative burst window", async () => {
    const result = await load({ ...minimal, CONTEXT_TOKEN_BUDGET: "1500", MAX_ANSWER_TOKENS: "1500", GROUP_REPLY_MODE: "everyone", BURST_MERGE_MS: "-1" })
    const message = result._tag === "Failure" ? result.failure.message : ""
    expect(message).toMatch(/^Invalid configuration \(3 problems\):/)
    expect(message).toContain("- MAX_ANSWER_TOKENS (1500) must be below CONTEXT_TOKEN_BUDGET (1500)")
    expect(message).toContain("- GROUP_REPLY_MODE: ")
    expect(message).toContain("- BURST_MERGE_MS: ")
    expect((await load({ ...minimal, CONTEXT_TOKEN_BUDGET: "1501", MAX_ANSWER_TOKENS: "1500", BURST_MERGE_MS: "0", GROUP_REPLY_MODE: "all" }))._tag).toBe("Success")
  })

  it("takes enumerated settings in any case", async () => {
    for (const [given, level] of [["info", "Info"], ["WARN", "Warn"], [" Debug ", "Debug"], ["nOnE", "None"]] as const) {
      const result = await load({ ...minimal, LOG_LEVEL: given, GROUP_REPLY_MODE: given === "info" ? "ALL" : "Mention" })
      if (result._tag !== "Success") throw new Error(String(result.failure))
      expect(result.success.logLevel).toBe(level)
      expect(result.success.groupReplyMode).toBe(given === "info" ? "all" : "mention")
    }
  })

  it("applies the documented defaults and keeps secrets redacted", async () => {
    const result = await load(minimal)
    if (result._tag !== "Success") throw new Error(String(result.failure))
    const settings = result.success
    expect(settings.port).toBe(3000)
    expect(settings.telegramApiRoot).toBe("https://api.telegram.org")
    expect(settings.openaiModel).toBe("gpt-4o-mini")
    expect(Option.isNone(settings.databaseUrl)).toBe(true)
    expect(Option.isNone(settings.redisUrl)).toBe(true)
    expect(settings.workerConcurrency).toBe(500)
    expect(settings.llmConcurrency).toBe(500)
    expect(settings.telegramSendsPerSecond).toBe(28)
    expect(settings.groupReplyMode).toBe("mention")
    expect(settings.burstMergeMs).toBe(1500)
    expect(Redacted.value(settings.telegramBotToken)).toBe("123:secret-token")
    expect(JSON.stringify(settings)).not.toContain("secret")
    expect(String(settings.openaiApiKey)).toBe("<redacted>")
  })
})
