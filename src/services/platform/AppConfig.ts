import { Config, Context, Duration, Effect, Layer, type LogLevel, Option, type Redacted, Result, Schema } from "effect"

/** Every setting, validated once at start. Names are the operator's contract (README table). */
export interface Settings {
  readonly port: number
  readonly publicUrl: Option.Option<string>
  readonly telegramBotToken: Redacted.Redacted
  readonly telegramWebhookSecret: Option.Option<Redacted.Redacted>
  readonly telegramApiRoot: string
  readonly openaiApiKey: Redacted.Redacted
  readonly openaiBaseUrl: Option.Option<string>
  readonly openaiModel: string
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly redisUrl: Option.Option<Redacted.Redacted>
  readonly logLevel: LogLevel.LogLevel
  readonly metricsToken: Option.Option<Redacted.Redacted>
  readonly otlpEndpoint: Option.Option<string>
  readonly dataDir: string
  readonly workerConcurrency: number
  readonly turnLease: Duration.Duration
  readonly turnTimeout: Duration.Duration
  readonly contextTokenBudget: number
  readonly maxAnswerTokens: number
  readonly userMessagesPerMinute: number
  readonly sweepInterval: Duration.Duration
  readonly shutdownGrace: Duration.Duration
  readonly maxBodyBytes: number
}

/** The settings cannot run the program: `message` lists every problem, one per line. */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  message: Schema.String
}) {}

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

const positiveInt = (name: string, fallback: number) =>
  Config.schema(PositiveInt, name).pipe(Config.withDefault(fallback))

const seconds = (name: string, fallback: number) =>
  positiveInt(name, fallback).pipe(Config.map((n) => Duration.seconds(n)))

/** One Config per setting, so that a bad start lists every problem at once, not the first. */
const settings = {
  port: Config.Port("PORT").pipe(Config.withDefault(3000)),
  publicUrl: Config.URL("PUBLIC_URL").pipe(Config.map((u) => u.toString().replace(/\/$/, "")), Config.option),
  telegramBotToken: Config.Redacted("TELEGRAM_BOT_TOKEN"),
  // Telegram's rule for secret_token: 1-256 characters of A-Z a-z 0-9 _ -
  telegramWebhookSecret: Config.schema(
    Schema.Redacted(Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,256}$/))),
    "TELEGRAM_WEBHOOK_SECRET"
  ).pipe(Config.option),
  telegramApiRoot: Config.URL("TELEGRAM_API_ROOT").pipe(
    Config.map((u) => u.toString().replace(/\/$/, "")),
    Config.withDefault("https://api.telegram.org")
  ),
  openaiApiKey: Config.Redacted("OPENAI_API_KEY"),
  openaiBaseUrl: Config.URL("OPENAI_BASE_URL").pipe(Config.map((u) => u.toString().replace(/\/$/, "")), Config.option),
  openaiModel: Config.NonEmptyString("OPENAI_MODEL").pipe(Config.withDefault("gpt-4o-mini")),
  databaseUrl: Config.Redacted("DATABASE_URL").pipe(Config.option),
  redisUrl: Config.Redacted("REDIS_URL").pipe(Config.option),
  logLevel: Config.LogLevel("LOG_LEVEL").pipe(Config.withDefault("Info")),
  metricsToken: Config.Redacted("METRICS_TOKEN").pipe(Config.option),
  otlpEndpoint: Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(
    Config.map((u) => u.toString().replace(/\/$/, "")),
    Config.option
  ),
  dataDir: Config.NonEmptyString("DATA_DIR").pipe(Config.withDefault("./data")),
  workerConcurrency: positiveInt("WORKER_CONCURRENCY", 50),
  turnLease: seconds("TURN_LEASE_SECONDS", 30),
  turnTimeout: seconds("TURN_TIMEOUT_SECONDS", 180),
  contextTokenBudget: positiveInt("CONTEXT_TOKEN_BUDGET", 6000),
  maxAnswerTokens: positiveInt("MAX_ANSWER_TOKENS", 1500),
  userMessagesPerMinute: positiveInt("USER_MESSAGES_PER_MINUTE", 20),
  sweepInterval: seconds("SWEEP_INTERVAL_SECONDS", 15),
  shutdownGrace: seconds("SHUTDOWN_GRACE_SECONDS", 20),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 1_048_576)
} satisfies { readonly [K in keyof Settings]: Config.Config<Settings[K]> }

/** "SchemaError(Expected string at ["X"])" -> "X is required"; other problems keep the schema's words. */
const problem = (error: Config.ConfigError): string => {
  const text = error.message.replace(/\s+/g, " ").trim()
  const match = /^SchemaError\((.*) at \["([A-Z0-9_]+)"\]\)$/.exec(text)
  if (!match) return text
  const [, reason, name] = match
  return reason === "Expected string" ? `${name} is required` : `${name}: ${reason}`
}

const load = Effect.gen(function*() {
  const values: Record<string, unknown> = {}
  const problems: Array<string> = []
  for (const [key, config] of Object.entries(settings) as Array<[string, Config.Config<unknown>]>) {
    const result = yield* Effect.result(config)
    if (Result.isSuccess(result)) values[key] = result.success
    else problems.push(problem(result.failure))
  }
  const publicUrl = values.publicUrl as Option.Option<string> | undefined
  const secret = values.telegramWebhookSecret as Option.Option<unknown> | undefined
  if (publicUrl && Option.isSome(publicUrl) && secret && Option.isNone(secret)) {
    problems.push("TELEGRAM_WEBHOOK_SECRET is required when PUBLIC_URL is set (webhook mode)")
  }
  if (problems.length > 0) {
    return yield* new InvalidConfig({
      message: `Invalid configuration (${problems.length} problem${problems.length > 1 ? "s" : ""}):\n- ${
        problems.join("\n- ")
      }`
    })
  }
  return values as unknown as Settings
})

/** The validated settings (README, Configuration). */
export class AppConfig extends Context.Service<AppConfig, Settings>()("bot/AppConfig") {
  /**
   * Reads the current ConfigProvider (the environment, unless a test provides another); fails
   * with InvalidConfig listing every missing or invalid setting at once.
   */
  static readonly layer = Layer.effect(AppConfig, load)
}
