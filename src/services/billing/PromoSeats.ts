import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../platform/AppConfig.ts"
import { inTransaction, type StorageOutage } from "../platform/StorageOutage.ts"

/** Serialises every promo seat decision across processes (pg_advisory_xact_lock key). */
const promoSeatsLock = 4_242_001

/** What holding a seat came to: within PROMO_SEATS, or past it (already paid at the promo price). */
export type Holding = "held" | "oversold"

/** A reserve's outcome: promo or not, and what to undo. */
export interface Reservation {
  readonly promo: boolean
  /** The reservation this one replaced (null: none), to put back on release. */
  readonly previous: Date | null
  /** Set only when this call reserved. */
  readonly until: Date | null
}

/**
 * The PROMO_SEATS promo seats (`promo_seats`): a promo checkout reserves one until it can no
 * longer be paid, an active promo subscription holds one for life (its holder gets the promo
 * price again if they come back). Every decision takes the same lock, so racing checkouts never
 * take the last seat twice. Each method runs in its own transaction, or the caller's.
 */
export class PromoSeats extends Context.Service<PromoSeats, {
  /**
   * Whether the user may pay the promo price: they hold a seat, or one is free, which is then
   * reserved for them until `until` (the app's clock, like `now`).
   */
  readonly reserve: (userId: number, now: Date, until: Date) => Effect.Effect<Reservation, StorageOutage>
  /** Undoes `reserve` (its checkout could not be made): an earlier reservation is kept as it was. */
  readonly release: (userId: number, reservation: Reservation) => Effect.Effect<void, StorageOutage>
  /** The user's promo subscription is active: their seat is theirs for life, oversold if none was left. */
  readonly hold: (userId: number, now: Date) => Effect.Effect<Holding, StorageOutage>
}>()("bot/PromoSeats") {
  static readonly layer = Layer.effect(
    PromoSeats,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const transaction = inTransaction(sql)
      const { promoSeats } = yield* AppConfig

      /** Seats held, or reserved past `now`, by others than the user. */
      const takenByOthers = (userId: number, now: Date) =>
        sql<{ count: bigint }>`
          select count(*) as count from promo_seats
          where user_id <> ${userId} and (held or reserved_until > ${now})`.pipe(Effect.map((rows) => Number(rows[0]!.count)))

      return PromoSeats.of({
        reserve: Effect.fn("PromoSeats.reserve")(function*(userId: number, now: Date, until: Date) {
          return yield* transaction(Effect.gen(function*() {
            yield* sql`select pg_advisory_xact_lock(${promoSeatsLock})`
            const [mine] = yield* sql<{ held: boolean; reserved_until: Date | null }>`
              select held, reserved_until from promo_seats where user_id = ${userId}`
            if (mine?.held) return { promo: true, previous: null, until: null }
            if ((yield* takenByOthers(userId, now)) >= promoSeats) return { promo: false, previous: null, until: null }
            yield* sql`
              insert into promo_seats (user_id, held, reserved_until) values (${userId}, false, ${until})
              on conflict (user_id) do update set reserved_until = excluded.reserved_until`
            return { promo: true, previous: mine?.reserved_until ?? null, until }
          }))
        }),
        release: Effect.fn("PromoSeats.release")(function*(userId: number, reservation: Reservation) {
          if (reservation.until === null) return
          yield* transaction(
            reservation.previous === null
              ? sql`delete from promo_seats where user_id = ${userId} and not held and reserved_until = ${reservation.until}`
              : sql`update promo_seats set reserved_until = ${reservation.previous}
                    where user_id = ${userId} and not held and reserved_until = ${reservation.until}`
          )
        }),
        hold: Effect.fn("PromoSeats.hold")(function*(userId: number, now: Date) {
          return yield* transaction(Effect.gen(function*() {
            yield* sql`select pg_advisory_xact_lock(${promoSeatsLock})`
            const [mine] = yield* sql<{ held: boolean; reserved_until: Date | null }>`
              select held, reserved_until from promo_seats where user_id = ${userId}`
            if (mine?.held) return "held" as const
            const reserved = mine?.reserved_until != null
            const full = (yield* takenByOthers(userId, now)) >= promoSeats
            yield* sql`
              insert into promo_seats (user_id, held, reserved_until) values (${userId}, true, null)
              on conflict (user_id) do update set held = true, reserved_until = null`
            // A reservation (even a lapsed one: the webhook came late) was a seat promised.
            return full && !reserved ? "oversold" as const : "held" as const
          }))
        })
      })
    })
  )
}
