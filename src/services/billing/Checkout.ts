import { Clock, Context, Effect, Layer, Metric, Option } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../platform/AppConfig.ts"
import { checkoutsStarted } from "../platform/Metrics.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import { LemonSqueezy, LemonSqueezyError } from "./LemonSqueezy.ts"
import { PromoSeats } from "./PromoSeats.ts"

const minute = 60 * 1000

/**
 * How long a checkout stays payable: a paywall's is short, so free users who see it and walk
 * away do not keep promo seats from buyers; one asked for with /subscribe lasts longer.
 */
const lifeOf = { paywall: 30 * minute, subscribe: 120 * minute } as const
/** A promo seat is held this much past its checkout's end, for a payment's late webhook. */
const seatMargin = 30 * minute
/** A checkout made in the last hour with at least this much life left is reused. */
const reuseWithin = 60 * minute
const minimumLifeLeft = 15 * minute

const provider = "lemonsqueezy"

/** Why a checkout is made: past the free quota, or asked for. */
export type CheckoutPurpose = keyof typeof lifeOf

/** A checkout a user can pay at: its URL, and the plan its price is. */
export interface OpenCheckout {
  readonly plan: "promo" | "standard"
  readonly url: string
}

/**
 * Checkouts for subscriptions, priced by the promo seats: the first PROMO_SEATS subscribers (and
 * whoever held a promo subscription before) get the promo variant, everyone else the standard
 * one (PromoSeats reserves the seat for the checkout's life).
 */
export class Checkout extends Context.Service<Checkout, {
  /**
   * The user's open checkout: one made in the last hour with 15 minutes left, or a new one
   * (LemonSqueezy API, with the user's telegram_user_id, redirecting to `redirectUrl`). Fails
   * with LemonSqueezyError when billing is off or LemonSqueezy stays away (the seat is given back).
   */
  readonly open: (
    userId: number,
    redirectUrl: string,
    purpose: CheckoutPurpose
  ) => Effect.Effect<OpenCheckout, LemonSqueezyError | StorageOutage>
}>()("bot/Checkout") {
  static readonly layer = Layer.effect(
    Checkout,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const config = yield* AppConfig
      const lemon = yield* LemonSqueezy
      const seats = yield* PromoSeats

      const reusable = (userId: number, now: number) =>
        sql<{ plan_id: "promo" | "standard"; url: string }>`
          select plan_id, url from checkouts
          where user_id = ${userId} and created_at > ${new Date(now - reuseWithin)}
            and expires_at > ${new Date(now + minimumLifeLeft)}
          order by created_at desc limit 1`.pipe(
          Effect.map((rows) => Option.fromNullishOr(rows[0])),
          Effect.mapError(storageOutage)
        )

      return Checkout.of({
        open: Effect.fn("Checkout.open")(function*(userId: number, redirectUrl: string, purpose: CheckoutPurpose) {
          if (Option.isNone(config.lemonSqueezy)) {
            return yield* new LemonSqueezyError({ status: -1, message: "billing is off (no LEMON_API_KEY)" })
          }
          const variants = config.lemonSqueezy.value.variants
          const now = yield* Clock.currentTimeMillis
          const reused = yield* reusable(userId, now)
          if (Option.isSome(reused)) return { plan: reused.value.plan_id, url: reused.value.url }
          const expiresAt = new Date(now + lifeOf[purpose])
          const reservation = yield* seats.reserve(userId, new Date(now), new Date(expiresAt.getTime() + seatMargin))
          const plan = reservation.promo ? "promo" as const : "standard" as const
          const created = yield* lemon.createCheckout({
            variantId: plan === "promo" ? variants.promo : variants.standard,
            telegramUserId: userId,
            redirectUrl,
            expiresAt
          }).pipe(Effect.tapError(() => seats.release(userId, reservation)))
          yield* sql`
            insert into checkouts (user_id, plan_id, provider, provider_checkout_id, url, expires_at)
            values (${userId}, ${plan}, ${provider}, ${created.id}, ${created.url}, ${expiresAt})`.pipe(Effect.mapError(storageOutage))
          yield* Metric.update(Metric.withAttributes(checkoutsStarted, { plan }), 1)
          return { plan, url: created.url }
        })
      })
    })
  )
}
