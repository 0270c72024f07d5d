import { Context, Effect, Layer, Metric } from "effect"
import { Quota } from "../billing/Quota.ts"
import { Subscriptions } from "../billing/Subscriptions.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { quotaHits } from "../platform/Metrics.ts"
import { RateLimits } from "../platform/RateLimits.ts"
import type { RedisOutage } from "../platform/Redis.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import { type Mail, Mailbox, type MailboxError } from "./Mailbox.ts"

/** Whether a user message goes to the LLM, and if not, what the user is told instead. */
export type Admitted =
  | { readonly _tag: "Llm" }
  /** The free quota is used up: the paywall. `limit`: messages a day. */
  | { readonly _tag: "Paywall"; readonly limit: number }
  /** A paid plan's fair-use cap is reached. */
  | { readonly _tag: "FairUse"; readonly limit: number }
  /** Past the LLM turns per minute: try again in `retryAfterSeconds`. */
  | { readonly _tag: "RateLimited"; readonly perMinute: number; readonly retryAfterSeconds: number }

/**
 * The gate before the LLM: the sender's daily quota (their plan's), then the LLM rate limit. A
 * message the rate limit refuses does not use up quota. The decision is stored with the message,
 * so a redo after a crash keeps it and charges nothing twice.
 */
export class Admission extends Context.Service<Admission, {
  /** Decides for a user message once; a redo gets the stored decision. */
  readonly admit: (mail: Mail) => Effect.Effect<Admitted, MailboxError | StorageOutage | RedisOutage>
}>()("bot/Admission") {
  static readonly layer = Layer.effect(
    Admission,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const mailbox = yield* Mailbox
      const subscriptions = yield* Subscriptions
      const quota = yield* Quota
      const limits = yield* RateLimits
      const perMinute = config.rateLimits.llmPerMinute

      /** A decision an earlier attempt stored (the quota and the limit were charged then). */
      const stored = (mail: Mail): Admitted | undefined => {
        switch (mail.gate) {
          case "llm":
            return { _tag: "Llm" }
          case "paywall":
            return { _tag: "Paywall", limit: config.freeDailyMessages }
          case "fair_use":
            return { _tag: "FairUse", limit: config.paidDailyMessages }
          case "rate_limited":
            return { _tag: "RateLimited", perMinute, retryAfterSeconds: 60 }
          default:
            return undefined
        }
      }

      return Admission.of({
        admit: Effect.fn("Admission.admit")(function*(mail: Mail) {
          const earlier = stored(mail)
          if (earlier !== undefined) return earlier
          if (mail.userId === null) {
            yield* mailbox.decide(mail, "llm")
            return { _tag: "Llm" } as const
          }
          const { plan } = yield* subscriptions.entitlement(mail.userId)
          const use = yield* quota.consume(mail.userId, plan, 1)
          if (!use.allowed) {
            yield* Metric.update(Metric.withAttributes(quotaHits, { plan }), 1)
            yield* mailbox.decide(mail, plan === "free" ? "paywall" : "fair_use")
            return plan === "free" ? { _tag: "Paywall", limit: use.limit } as const : { _tag: "FairUse", limit: use.limit } as const
          }
          const [decision] = yield* limits.consume("llm", [mail.userId])
          if (!decision!.allowed) {
            yield* quota.giveBack(mail.userId, 1)
            yield* mailbox.decide(mail, "rate_limited")
            return { _tag: "RateLimited", perMinute, retryAfterSeconds: Math.ceil(decision!.retryAfterMillis / 1000) } as const
          }
          yield* mailbox.decide(mail, "llm")
          return { _tag: "Llm" } as const
        })
      })
    })
  )
}
