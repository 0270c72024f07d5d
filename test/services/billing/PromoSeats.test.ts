import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll } from "vitest"
import { PromoSeats } from "../../../src/services/billing/PromoSeats.ts"
import { testDatabase } from "../../support/Database.ts"

const database = testDatabase(
  { PROMO_SEATS: "2" },
  "insert into users (id, first_name) select g, 'u' from generate_series(1, 30) g"
)
afterAll(() => database.drop())

const now = new Date("2026-11-29T12:00:00Z")
const later = (minutes: number) => new Date(now.getTime() + minutes * 60_000)

layer(PromoSeats.layer.pipe(Layer.provideMerge(database.layer)), { excludeTestServices: true })("PromoSeats (real Postgres)", (it) => {
  it.effect("reserves while seats last, under one lock: 20 racing users get exactly the 2 seats", () =>
    Effect.gen(function*() {
      database.query("delete from promo_seats")
      const seats = yield* PromoSeats
      const users = Array.from({ length: 20 }, (_, i) => i + 1)
      const reservations = yield* Effect.forEach(users, (userId) => seats.reserve(userId, now, later(150)), { concurrency: "unbounded" })
      assert.strictEqual(reservations.filter((r) => r.promo).length, 2)
      // A lapsed reservation frees its seat.
      const [holder] = users.filter((_, i) => reservations[i]!.promo)
      assert.isFalse((yield* seats.reserve(21, now, later(150))).promo)
      database.query(`update promo_seats set reserved_until = '${later(-1).toISOString()}' where user_id = ${holder}`)
      assert.isTrue((yield* seats.reserve(21, now, later(150))).promo)
    }))

  it.effect("gives back only the reservation it made, and keeps an earlier one the user still has", () =>
    Effect.gen(function*() {
      database.query("delete from promo_seats")
      const seats = yield* PromoSeats
      yield* seats.reserve(22, now, later(150))
      const again = yield* seats.reserve(22, later(70), later(220))
      yield* seats.release(22, again) // its checkout could not be made
      assert.strictEqual(
        database.query("select reserved_until from promo_seats where user_id = 22"),
        database.query(`select '${later(150).toISOString()}'::timestamptz`)
      )
      const first = yield* seats.reserve(23, now, later(150))
      yield* seats.release(23, first)
      assert.strictEqual(database.query("select count(*) from promo_seats where user_id = 23"), "0")
    }))

  it.effect("holds a seat for life at activation, and says when the promo was oversold", () =>
    Effect.gen(function*() {
      database.query("delete from promo_seats")
      const seats = yield* PromoSeats
      yield* seats.reserve(24, now, later(150))
      assert.strictEqual(yield* seats.hold(24, later(10)), "held")
      assert.strictEqual(yield* seats.hold(25, later(10)), "held") // the last free seat, no reservation needed
      // None left: a promo subscription that starts anyway (made outside the bot) is oversold.
      assert.strictEqual(yield* seats.hold(26, later(10)), "oversold")
      // A reservation that lapsed before a late webhook was still a seat promised.
      database.query(`insert into promo_seats (user_id, held, reserved_until) values (27, false, '${later(-5).toISOString()}')`)
      assert.strictEqual(yield* seats.hold(27, later(10)), "held")
      // A holder keeps the promo price when they come back.
      assert.isTrue((yield* seats.reserve(24, later(1000), later(1150))).promo)
      assert.strictEqual(database.query("select count(*) from promo_seats where held"), "4")
    }))
})
