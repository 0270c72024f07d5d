import { Config, Context, Duration, Effect, Layer, type LogLevel, Option, type Redacted, Result, Schema, SchemaTransformation } from "effect"

/** LemonSqueezy, when billing is on (LEMON_API_KEY and the settings that go with it are set). */
export interface LemonSqueezySettings {
  readonly apiKey: Redacted.Redacted
  /** The API root, without a trailing slash (LEMON_API_URL). */
  readonly apiUrl: string
  readonly storeId: string
  /** The variant of each paid plan. */
  readonly variants: { readonly promo: string; readonly standard: string }
  /** Webhook signing secrets accepted: the current one, then the previous one during a rotation. */
  readonly webhookSecrets: ReadonlyArray<Redacted.Redacted>
}

/** Named rate limits (README, Rate limits): the most allowed per window. */
export interface RateLimitSettings {
  /** LLM turns per minute per user. */
  readonly llmPerMinute: number
  /** Telegram updates per minute per user. */
  readonly updatesPerMinute: number
  /** POST /lemonsqueezy/webhook per minute per source address. */
  readonly lemonWebhookPerMinute: number
  /** Data exports per hour per user. */
  readonly exportPerHour: number
}

/** Every setting, validated once at start. Names are the operator's contract (README table). */
export interface Settings {
  readonly port: number
  /**
   * The address the HTTP server listens on (HOST). By default 127.0.0.1 in polling mode (nothing
   * outside needs to reach it), 0.0.0.0 in webhook mode (Telegram, through a proxy, must).
   */
  readonly host: string
  /** A second HTTP server, on 127.0.0.1, serving /metrics alone (METRICS_PORT); none: /metrics is on PORT. */
  readonly metricsPort: Option.Option<number>
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
  /** Chats a worker process answers at once (turns mostly wait: on the LLM, then on the send budget). */
  readonly workerConcurrency: number
  /**
   * LLM requests a worker process streams at once; a turn waiting for Telegram holds none. As many
   * as WORKER_CONCURRENCY by default: below it, a burst's last turns wait for the first answers
   * to end (issue 10 measured 300 chats: last LLM request at 7 s with 200, 4 s with 500). Lower it
   * for a provider's concurrency limit.
   */
  readonly llmConcurrency: number
  /** The bot's send budget: Bot API calls writing to chats per second, all processes together. */
  readonly telegramSendsPerSecond: number
  readonly turnLease: Duration.Duration
  readonly turnTimeout: Duration.Duration
  readonly contextTokenBudget: number
  readonly maxAnswerTokens: number
  readonly rateLimits: RateLimitSettings
  /** User messages a day on the free plan; 0: unlimited. */
  readonly freeDailyMessages: number
  /** The paid plans' fair-use cap, user messages a day. */
  readonly paidDailyMessages: number
  /** The IANA time zone whose midnight starts a new quota day. */
  readonly billingTimezone: string
  /** Subscribers who get the promo price for life. */
  readonly promoSeats: number
  /** None: billing is off (no checkout; the free quota still applies). */
  readonly lemonSqueezy: Option.Option<LemonSqueezySettings>
  /** How often subscriptions are checked against LemonSqueezy's API. */
  readonly reconcileInterval: Duration.Duration
  readonly sweepInterval: Duration.Duration
  readonly shutdownGrace: Duration.Duration
  readonly maxBodyBytes: number
  /** In groups: answer only what is addressed to the bot ("mention"), or every message ("all"). */
  readonly groupReplyMode: "mention" | "all"
  /** Queued messages of one sender this close together (ms) are answered as one; 0: never merged. */
  readonly burstMergeMs: number
  /** Earlier exchanges a group's prompt may hold at most (GROUP_HISTORY_MESSAGES), within the token budget. */
  readonly groupHistoryMessages: number
  /** The model's prices, USD per million tokens (LLM_PRICE_INPUT_PER_MTOK, LLM_PRICE_OUTPUT_PER_MTOK); 0: unknown, cost 0. */
  readonly llmPrices: { readonly inputPerMtok: number; readonly outputPerMtok: number }
  /** Tokens (in + out) a user may spend a quota day on the free plan (USER_DAILY_TOKENS) and on a paid one (PAID_DAILY_TOKENS); 0: no cap. */
  readonly dailyTokens: { readonly free: number; readonly paid: number }
  /** What all turns together may cost a quota day, in USD (DAILY_SPEND_LIMIT_USD); 0: no cap. */
  readonly dailySpendLimitUsd: number
}

/** The settings cannot run the program: `message` lists every problem, one per line. */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  message: Schema.String
}) {}

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

const positiveInt = (name: string, fallback: number) =>
  Config.schema(PositiveInt, name).pipe(Config.withDefault(fallback))

const nonNegativeInt = (name: string, fallback: number) =>
  Config.schema(NonNegativeInt, name).pipe(Config.withDefault(fallback))

const nonNegativeNumber = (name: string, fallback: number) =>
  Config.schema(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)), name).pipe(Config.withDefault(fallback))

const urlWithoutSlash = (name: string) => Config.URL(name).pipe(Config.map((u) => u.toString().replace(/\/$/, "")))

/** Whether `host` (a name or an IP address) is this machine's loopback: localhost, 127.0.0.0/8, ::1. */
export const isLoopbackHost = (host: string) =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host)

/** Whether credentials sent to `url` stay private: https, or plain http to this machine only. */
const isPrivateChannel = (url: string) => {
  const { hostname, protocol } = new URL(url)
  return protocol === "https:" || (protocol === "http:" && isLoopbackHost(hostname))
}

const isTimeZone = (zone: string) => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone })
    return true
  } catch {
    return false
  }
}

/**
 * One of `values`, written in any case (`info`, `INFO` and `Info` are Info); the error lists
 * the values as documented.
 */
const oneOf = <const L extends ReadonlyArray<string>>(name: string, values: L, fallback: L[number]) =>
  Config.schema(
    Schema.String.pipe(Schema.decodeTo(
      Schema.Literals(values),
      SchemaTransformation.transform({
        decode: (given: string) => values.find((value) => value.toLowerCase() === given.trim().toLowerCase()) ?? given,
        encode: (value: string) => value
      })
    )),
    name
  ).pipe(Config.withDefault(fallback))

/**
 * A secret the operator chooses: refused when shorter than 32 characters (issue 9: a short
 * secret can be guessed). The problem names the rule, never the value.
 */
const secretSetting = (name: string, pattern: RegExp, rule: string) =>
  Config.schema(
    Schema.Redacted(Schema.String.check(Schema.makeFilter((secret: string) => pattern.test(secret) || `${rule} (\`openssl rand -hex 32\` makes one)`))),
    name
  ).pipe(Config.option)

const logLevels = ["All", "Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"] as const

const seconds = (name: string, fallback: number) =>
  positiveInt(name, fallback).pipe(Config.map((n) => Duration.seconds(n)))

/** One Config per setting, so that a bad start lists every problem at once, not the first. */
const settings = {
  freeDailyMessages: nonNegativeInt("FREE_DAILY_MESSAGES", 50),
  paidDailyMessages: positiveInt("PAID_DAILY_MESSAGES", 2000),
  billingTimezone: Config.schema(
    Schema.String.check(Schema.makeFilter((zone: string) => isTimeZone(zone) || "an IANA time zone such as Europe/Paris")),
    "BILLING_TIMEZONE"
  ).pipe(Config.withDefault("UTC")),
  promoSeats: nonNegativeInt("PROMO_SEATS", 100),
  reconcileInterval: seconds("RECONCILE_INTERVAL_SECONDS", 3600),
  port: Config.Port("PORT").pipe(Config.withDefault(3000)),
  metricsPort: Config.Port("METRICS_PORT").pipe(Config.option),
  publicUrl: Config.URL("PUBLIC_URL").pipe(Config.map((u) => u.toString().replace(/\/$/, "")), Config.option),
  telegramBotToken: Config.Redacted("TELEGRAM_BOT_TOKEN"),
  // Telegram's rule for secret_token (1-256 characters of A-Z a-z 0-9 _ -), and 32 at least.
  telegramWebhookSecret: secretSetting("TELEGRAM_WEBHOOK_SECRET", /^[A-Za-z0-9_-]{32,256}$/, "32 to 256 characters of A-Z a-z 0-9 _ -"),
  telegramApiRoot: Config.URL("TELEGRAM_API_ROOT").pipe(
    Config.map((u) => u.toString().replace(/\/$/, "")),
    Config.withDefault("https://api.telegram.org")
  ),
  openaiApiKey: Config.Redacted("OPENAI_API_KEY"),
  openaiBaseUrl: Config.URL("OPENAI_BASE_URL").pipe(Config.map((u) => u.toString().replace(/\/$/, "")), Config.option),
  openaiModel: Config.NonEmptyString("OPENAI_MODEL").pipe(Config.withDefault("gpt-4o-mini")),
  databaseUrl: Config.Redacted("DATABASE_URL").pipe(Config.option),
  redisUrl: Config.Redacted("REDIS_URL").pipe(Config.option),
  logLevel: oneOf("LOG_LEVEL", logLevels, "Info"),
  metricsToken: secretSetting("METRICS_TOKEN", /^\S{32,}$/, "32 characters or more, no spaces"),
  otlpEndpoint: Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(
    Config.map((u) => u.toString().replace(/\/$/, "")),
    Config.option
  ),
  dataDir: Config.NonEmptyString("DATA_DIR").pipe(Config.withDefault("./data")),
  workerConcurrency: positiveInt("WORKER_CONCURRENCY", 500),
  llmConcurrency: positiveInt("LLM_CONCURRENCY", 500),
  // Telegram answers 429 past about 30 a second per bot (Bot API FAQ): a margin under it.
  telegramSendsPerSecond: Config.schema(Schema.Finite.check(Schema.isGreaterThan(0)), "TELEGRAM_SENDS_PER_SECOND").pipe(
    Config.withDefault(28)
  ),
  turnLease: seconds("TURN_LEASE_SECONDS", 30),
  turnTimeout: seconds("TURN_TIMEOUT_SECONDS", 180),
  contextTokenBudget: positiveInt("CONTEXT_TOKEN_BUDGET", 6000),
  maxAnswerTokens: positiveInt("MAX_ANSWER_TOKENS", 1500),
  sweepInterval: seconds("SWEEP_INTERVAL_SECONDS", 15),
  shutdownGrace: seconds("SHUTDOWN_GRACE_SECONDS", 20),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 1_048_576),
  groupReplyMode: oneOf("GROUP_REPLY_MODE", ["mention", "all"], "mention"),
  burstMergeMs: nonNegativeInt("BURST_MERGE_MS", 1500),
  groupHistoryMessages: nonNegativeInt("GROUP_HISTORY_MESSAGES", 20),
  llmPrices: Config.all({
    inputPerMtok: nonNegativeNumber("LLM_PRICE_INPUT_PER_MTOK", 0),
    outputPerMtok: nonNegativeNumber("LLM_PRICE_OUTPUT_PER_MTOK", 0)
  }),
  dailyTokens: Config.all({ free: nonNegativeInt("USER_DAILY_TOKENS", 0), paid: nonNegativeInt("PAID_DAILY_TOKENS", 0) }),
  dailySpendLimitUsd: nonNegativeNumber("DAILY_SPEND_LIMIT_USD", 0)
} satisfies { readonly [K in Exclude<keyof Settings, "lemonSqueezy" | "rateLimits" | "host">]: Config.Config<Settings[K]> }

/** HOST as given; its default depends on the mode (see Settings.host). */
const host = { host: Config.NonEmptyString("HOST").pipe(Config.option) }

const rateLimits = {
  llmPerMinute: positiveInt("RATE_LIMIT_LLM_PER_MINUTE", 5),
  updatesPerMinute: positiveInt("RATE_LIMIT_UPDATES_PER_MINUTE", 100),
  lemonWebhookPerMinute: positiveInt("RATE_LIMIT_LEMON_WEBHOOK_PER_MINUTE", 10),
  exportPerHour: positiveInt("RATE_LIMIT_EXPORT_PER_HOUR", 3)
} satisfies { readonly [K in keyof RateLimitSettings]: Config.Config<RateLimitSettings[K]> }

/** LemonSqueezy's settings, each optional here: load() checks that they come together. */
const lemonSqueezy = {
  apiKey: Config.Redacted("LEMON_API_KEY").pipe(Config.option),
  apiUrl: urlWithoutSlash("LEMON_API_URL").pipe(Config.withDefault("https://api.lemonsqueezy.com")),
  storeId: Config.NonEmptyString("LEMON_STORE_ID").pipe(Config.option),
  promo: Config.NonEmptyString("LEMON_VARIANT_PROMO").pipe(Config.option),
  standard: Config.NonEmptyString("LEMON_VARIANT_STANDARD").pipe(Config.option),
  // LemonSqueezy's rule for a webhook's signing secret: 6 to 40 characters.
  secret: Config.schema(Schema.Redacted(Schema.String.check(Schema.isBetweenLength(6, 40))), "LEMON_WEBHOOK_SECRET").pipe(
    Config.option
  ),
  previousSecret: Config.schema(
    Schema.Redacted(Schema.String.check(Schema.isBetweenLength(6, 40))),
    "LEMON_WEBHOOK_SECRET_PREVIOUS"
  ).pipe(Config.option)
}

/** Settings that were renamed: set, they stop the start with what replaces them. */
const renamed: Record<string, string> = {
  USER_MESSAGES_PER_MINUTE: "RATE_LIMIT_LLM_PER_MINUTE (LLM turns) and RATE_LIMIT_UPDATES_PER_MINUTE (all updates)"
}

/** "SchemaError(Expected string at ["X"])" -> "X is required"; other problems keep the schema's words. */
const problem = (error: Config.ConfigError): string => {
  const text = error.message.replace(/\s+/g, " ").trim()
  const match = /^SchemaError\((.*) at \["([A-Z0-9_]+)"\]\)$/.exec(text)
  if (!match) return text
  const [, reason, name] = match
  return reason === "Expected string" ? `${name} is required` : `${name}: ${reason}`
}

/** Reads every config of `configs`, noting each one's problem rather than stopping at the first. */
const collect = Effect.fnUntraced(function*(configs: Record<string, Config.Config<unknown>>, problems: Array<string>) {
  const values: Record<string, unknown> = {}
  for (const [key, config] of Object.entries(configs)) {
    const result = yield* Effect.result(config)
    if (Result.isSuccess(result)) values[key] = result.success
    else problems.push(problem(result.failure))
  }
  return values
})

/** Billing is on when any LEMON_* setting is; then all of these are required. */
const lemonRequired = [
  ["apiKey", "LEMON_API_KEY"],
  ["storeId", "LEMON_STORE_ID"],
  ["promo", "LEMON_VARIANT_PROMO"],
  ["standard", "LEMON_VARIANT_STANDARD"],
  ["secret", "LEMON_WEBHOOK_SECRET"]
] as const

const lemonSqueezyOf = (values: Record<string, unknown>, problems: Array<string>): Option.Option<LemonSqueezySettings> => {
  const given = (key: string) => Option.getOrUndefined(values[key] as Option.Option<unknown> | undefined ?? Option.none())
  const set = lemonRequired.filter(([key]) => given(key) !== undefined)
  if (set.length === 0 && given("previousSecret") === undefined) return Option.none()
  const missing = lemonRequired.filter(([key]) => given(key) === undefined && !problems.some((p) => p.includes(key)))
  if (missing.length > 0) {
    problems.push(`billing needs ${missing.map(([, name]) => name).join(", ")} as well (or no LEMON_* setting at all)`)
    return Option.none()
  }
  return Option.some({
    apiKey: given("apiKey") as Redacted.Redacted,
    apiUrl: values.apiUrl as string,
    storeId: given("storeId") as string,
    variants: { promo: given("promo") as string, standard: given("standard") as string },
    webhookSecrets: [given("secret"), given("previousSecret")].filter((s) => s !== undefined) as Array<Redacted.Redacted>
  })
}

const load = Effect.gen(function*() {
  const problems: Array<string> = []
  const env = yield* collect(Object.fromEntries(Object.keys(renamed).map((name) => [name, Config.String(name).pipe(Config.option)])), problems)
  for (const [name, replacement] of Object.entries(renamed)) {
    if (Option.isSome(env[name] as Option.Option<string>)) problems.push(`${name} was replaced by ${replacement}`)
  }
  const values = yield* collect(settings, problems)
  const limits = yield* collect(rateLimits, problems)
  const lemonValues = yield* collect(lemonSqueezy, problems)
  const lemon = lemonSqueezyOf(lemonValues, problems)
  const apiRoots: ReadonlyArray<readonly [string, unknown]> = [
    ["TELEGRAM_API_ROOT", values.telegramApiRoot],
    ["OPENAI_BASE_URL", Option.getOrUndefined((values.openaiBaseUrl as Option.Option<string> | undefined) ?? Option.none())],
    ["LEMON_API_URL", lemonValues.apiUrl]
  ]
  for (const [name, url] of apiRoots) {
    if (typeof url === "string" && !isPrivateChannel(url)) {
      problems.push(`${name} must be an https:// address (or http:// to this machine: localhost, 127.0.0.1, [::1]): the bot sends its token or key there`)
    }
  }
  const publicUrl = values.publicUrl as Option.Option<string> | undefined
  const secret = values.telegramWebhookSecret as Option.Option<unknown> | undefined
  if (publicUrl && Option.isSome(publicUrl) && secret && Option.isNone(secret)) {
    problems.push("TELEGRAM_WEBHOOK_SECRET is required when PUBLIC_URL is set (webhook mode)")
  }
  const budget = values.contextTokenBudget as number | undefined
  const answer = values.maxAnswerTokens as number | undefined
  if (budget !== undefined && answer !== undefined && answer >= budget) {
    problems.push(`MAX_ANSWER_TOKENS (${answer}) must be below CONTEXT_TOKEN_BUDGET (${budget}): the rest is the prompt's room`)
  }
  const prices = values.llmPrices as Settings["llmPrices"] | undefined
  if ((values.dailySpendLimitUsd as number | undefined ?? 0) > 0 && prices && prices.inputPerMtok === 0 && prices.outputPerMtok === 0) {
    problems.push("DAILY_SPEND_LIMIT_USD needs the model's prices (LLM_PRICE_INPUT_PER_MTOK, LLM_PRICE_OUTPUT_PER_MTOK): without them every turn costs 0")
  }
  const given = yield* collect(host, problems)
  const listenOn = Option.getOrElse(
    (given.host as Option.Option<string> | undefined) ?? Option.none(),
    () => (publicUrl && Option.isSome(publicUrl) ? "0.0.0.0" : "127.0.0.1")
  )
  if (problems.length > 0) {
    return yield* new InvalidConfig({
      message: `Invalid configuration (${problems.length} problem${problems.length > 1 ? "s" : ""}):\n- ${
        problems.join("\n- ")
      }`
    })
  }
  return { ...values, host: listenOn, rateLimits: limits, lemonSqueezy: lemon } as unknown as Settings
})

/** What every program needs, the migrate task included: the database and the log level. */
export interface BaseSettings {
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly dataDir: string
  readonly logLevel: LogLevel.LogLevel
}

const loadBase = Effect.gen(function*() {
  const problems: Array<string> = []
  const values = yield* collect({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logLevel: settings.logLevel }, problems)
  if (problems.length > 0) {
    return yield* new InvalidConfig({ message: `Invalid configuration:\n- ${problems.join("\n- ")}` })
  }
  return values as unknown as BaseSettings
})

/** The settings of the database and the logs only, so that `npm run migrate` needs no bot token. */
export class BaseConfig extends Context.Service<BaseConfig, BaseSettings>()("bot/BaseConfig") {
  /** Reads DATABASE_URL, DATA_DIR and LOG_LEVEL; fails with InvalidConfig listing what is wrong. */
  static readonly layer = Layer.effect(BaseConfig, loadBase)
}

/** The validated settings (README, Configuration). */
export class AppConfig extends Context.Service<AppConfig, Settings>()("bot/AppConfig") {
  /**
   * Reads the current ConfigProvider (the environment, unless a test provides another); fails
   * with InvalidConfig listing every missing or invalid setting at once.
   */
  static readonly layer = Layer.effect(AppConfig, load)
}
