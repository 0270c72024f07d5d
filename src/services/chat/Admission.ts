import { Context, Effect, Layer, Metric } from "effect"
import { SqlClient } from "effect/sql"
import type { Plan } from "../billing/Entitlement.ts"
import { Quota } from "../billing/Quota.ts"
import { Subscriptions } from "../billing/Subscriptions.ts"
import { Spend } from "../llm/Spend.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { quotaHits } from "../platform/Metrics.ts"
import { RateLimits } from "../platform/RateLimits.ts"
import type { RedisOutage } from "../platform/Redis.ts"
import { inTransaction, type StorageOutage } from "../platform/StorageOutage.ts"
import { type Gate, type Mail, Mailbox, type MailboxError } from "./Mailbox.ts"

/** Whether a user message goes to the LLM, and if not, what the user is told instead. */
export type Admitted =
  | { readonly _tag: "Llm" }
  /** The free quota is used up: the paywall. `limit`: messages a day; `day`: the quota day (YYYY-MM-DD). */
  | { readonly _tag: "Paywall"; readonly limit: number; readonly day: string }
  /** A paid plan's fair-use cap is reached on the quota day `day`. */
  | { readonly _tag: "FairUse"; readonly limit: number; readonly day: string }
  /** Past the LLM turns per minute (`perMinute`, the user's own limit): try again in `retryAfterSeconds`. */
  | { readonly _tag: "RateLimited"; readonly perMinute: number; readonly retryAfterSeconds: number }
  /** Past a spend cap on quota `day` (Spend): the user's daily tokens ("user") or the day's total cost ("daily_spend"). */
  | { readonly _tag: "SpendCapped"; readonly cap: "user" | "daily_spend"; readonly day: string }

/** The decisions Admission stores as final (quota_ok is half-way; the other gates are the turn's). */
type AdmissionGate = Extract<Gate, "llm" | "paywall" | "fair_use" | "rate_limited" | "token_cap" | "spend_cap">
const finalGates: ReadonlySet<Gate> = new Set<AdmissionGate>(["llm", "paywall", "fair_use", "rate_limited", "token_cap", "spend_cap"])
const isFinal = (gate: Gate | null): gate is AdmissionGate => gate !== null && finalGates.has(gate)

/**
 * The gate before the LLM: the sender's daily quota (their plan's), then the LLM rate limit; a
 * message the rate limit refuses gives its quota back. The quota is charged in the same
 * statement that stores the decision with the message, so a redo (after a crash, an outage,
 * a lost lock) never charges it twice. The rate limit may count a message twice only when
 * Postgres fails between asking Redis and storing the outcome.
 */
export class Admission extends Context.Service<Admission, {
  /** Decides for a user message once; a redo gets the stored decision. */
  readonly admit: (mail: Mail) => Effect.Effect<Admitted, MailboxError | StorageOutage | RedisOutage>
}>()("bot/Admission") {
  static readonly layer = Layer.effect(
    Admission,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const transaction = inTransaction(yield* SqlClient.SqlClient)
      const mailbox = yield* Mailbox
      const subscriptions = yield* Subscriptions
      const quota = yield* Quota
      const limits = yield* RateLimits
      const spend = yield* Spend
      const llm: Admitted = { _tag: "Llm" }

      /** A decision an earlier attempt stored (and charged for). */
      const stored = (gate: AdmissionGate): Effect.Effect<Admitted> => {
        switch (gate) {
          case "llm":
            return Effect.succeed(llm)
          case "paywall":
            return Effect.map(quota.currentDay, (day): Admitted => ({ _tag: "Paywall", limit: config.freeDailyMessages, day }))
          case "fair_use":
            return Effect.map(quota.currentDay, (day): Admitted => ({ _tag: "FairUse", limit: config.paidDailyMessages, day }))
          case "rate_limited":
            return Effect.succeed({ _tag: "RateLimited", perMinute: config.rateLimits.llmPerMinute, retryAfterSeconds: 60 })
          case "token_cap":
          case "spend_cap":
            return Effect.map(quota.currentDay, (day): Admitted => ({ _tag: "SpendCapped", cap: gate === "token_cap" ? "user" : "daily_spend", day }))
        }
      }

      /**
       * The daily quota, charged with the decision in one statement: the day it was charged to,
       * or what the user is told instead.
       */
      const chargeQuota = (mail: Mail, userId: number, plan: Plan) =>
        Effect.gen(function*() {
          const use = yield* quota.consume(userId, plan, 1, {
            mail,
            allowed: "quota_ok",
            refused: plan === "free" ? "paywall" : "fair_use"
          })
          if (use.allowed) return { charged: use.day }
          yield* Metric.update(Metric.withAttributes(quotaHits, { plan }), 1)
          const refused: Admitted = { _tag: plan === "free" ? "Paywall" : "FairUse", limit: use.limit, day: use.day }
          return { refused }
        })

      return Admission.of({
        admit: Effect.fn("Admission.admit")(function*(mail: Mail) {
          if (isFinal(mail.gate)) return yield* stored(mail.gate)
          if (mail.userId === null) return llm
          const userId = mail.userId
          const { plan } = yield* subscriptions.entitlement(userId)
          // A redo of a message already charged: it was charged today, but for a turn at midnight.
          const charge = mail.gate === "quota_ok" ? { charged: yield* quota.currentDay } : yield* chargeQuota(mail, userId, plan)
          if ("refused" in charge) return charge.refused
          const day = charge.charged
          // Past a spend cap the message never reaches the LLM, and gives its quota back.
          const spent = yield* spend.check(userId, plan, day)
          if (spent._tag !== "Within") {
            const capped = spent._tag === "UserCap" ? "user" as const : "daily_spend" as const
            yield* transaction(Effect.gen(function*() {
              yield* quota.giveBack(userId, day, 1)
              yield* mailbox.decide(mail, capped === "user" ? "token_cap" : "spend_cap")
            }))
            return { _tag: "SpendCapped", cap: capped, day } as const
          }
          const [decision] = yield* limits.consume("llm", [userId])
          if (decision!.allowed) {
            yield* mailbox.decide(mail, "llm")
            return llm
          }
          yield* transaction(Effect.gen(function*() {
            yield* quota.giveBack(userId, day, 1)
            yield* mailbox.decide(mail, "rate_limited")
          }))
          return { _tag: "RateLimited", perMinute: decision!.limit, retryAfterSeconds: Math.ceil(decision!.retryAfterMillis / 1000) } as const
        })
      })
    })
  )
}
