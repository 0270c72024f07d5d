import { Clock, Context, Effect, Layer, Metric, Option } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../platform/AppConfig.ts"
import { checkoutsStarted } from "../platform/Metrics.ts"
import { inTransaction, type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import { LemonSqueezy, LemonSqueezyError } from "./LemonSqueezy.ts"

/** A checkout stays open this long; a promo one holds its seat as long. */
const checkoutLife = 2 * 60 * 60 * 1000
/** A checkout made for the user this recently (and open for a while yet) is reused. */
const reuseWithin = 60 * 60 * 1000
/** Serialises promo seat decisions across processes (pg_advisory_xact_lock key). */
const promoSeatsLock = 4_242_001

const provider = "lemonsqueezy"

/** A checkout a user can pay at: its URL, and the plan its price is. */
export interface OpenCheckout {
  readonly plan: "promo" | "standard"
  readonly url: string
}

/**
 * Checkouts for subscriptions, priced by the promo seats: the first PROMO_SEATS subscribers
 * (and whoever held a promo subscription before) get the promo variant, everyone else the
 * standard one. A promo checkout reserves its seat until it expires, under a lock, so seats are
 * never oversold even when checkouts race for the last one.
 */
export class Checkout extends Context.Service<Checkout, {
  /**
   * The user's open checkout: one made in the last hour, or a new one (LemonSqueezy API, with
   * the user's telegram_user_id, expiring in 2 h and redirecting to `redirectUrl`). Fails with
   * LemonSqueezyError when billing is off or LemonSqueezy stays away (the seat is given back).
   */
  readonly open: (userId: number, redirectUrl: string) => Effect.Effect<OpenCheckout, LemonSqueezyError | StorageOutage>
}>()("bot/Checkout") {
  static readonly layer = Layer.effect(
    Checkout,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const transaction = inTransaction(sql)
      const config = yield* AppConfig
      const lemon = yield* LemonSqueezy

      const reusable = (userId: number, now: number) =>
        sql<{ plan_id: "promo" | "standard"; url: string }>`
          select plan_id, url from checkouts
          where user_id = ${userId} and created_at > ${new Date(now - reuseWithin)}
            and expires_at > ${new Date(now + checkoutLife - reuseWithin)}
          order by created_at desc limit 1`.pipe(
          Effect.map((rows) => Option.fromNullishOr(rows[0])),
          Effect.mapError(storageOutage)
        )

      /** promo when the user holds a seat, or one is free (then reserved until `until`); else standard. */
      const choosePlan = (userId: number, now: Date, until: Date) =>
        transaction(Effect.gen(function*() {
          yield* sql`select pg_advisory_xact_lock(${promoSeatsLock})`
          const [mine] = yield* sql<{ held: boolean }>`select held from promo_seats where user_id = ${userId}`
          if (mine?.held) return { plan: "promo" as const, reserved: false }
          const [taken] = yield* sql<{ count: bigint }>`
            select count(*) as count from promo_seats
            where user_id <> ${userId} and (held or reserved_until > ${now})`
          if (Number(taken!.count) >= config.promoSeats) return { plan: "standard" as const, reserved: false }
          yield* sql`
            insert into promo_seats (user_id, held, reserved_until) values (${userId}, false, ${until})
            on conflict (user_id) do update set reserved_until = excluded.reserved_until`
          return { plan: "promo" as const, reserved: true }
        }))

      const releaseSeat = (userId: number) =>
        sql`delete from promo_seats where user_id = ${userId} and not held`.pipe(Effect.mapError(storageOutage))

      return Checkout.of({
        open: Effect.fn("Checkout.open")(function*(userId: number, redirectUrl: string) {
          if (Option.isNone(config.lemonSqueezy)) {
            return yield* new LemonSqueezyError({ status: -1, message: "billing is off (no LEMON_API_KEY)" })
          }
          const variants = config.lemonSqueezy.value.variants
          const now = yield* Clock.currentTimeMillis
          const reused = yield* reusable(userId, now)
          if (Option.isSome(reused)) return { plan: reused.value.plan_id, url: reused.value.url }
          const expiresAt = new Date(now + checkoutLife)
          const { plan, reserved } = yield* choosePlan(userId, new Date(now), expiresAt)
          const created = yield* lemon.createCheckout({
            variantId: plan === "promo" ? variants.promo : variants.standard,
            telegramUserId: userId,
            redirectUrl,
            expiresAt
          }).pipe(Effect.tapError(() => (reserved ? releaseSeat(userId) : Effect.void)))
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
