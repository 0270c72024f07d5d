import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { afterAll } from "vitest"
import { Quota } from "../../../src/services/billing/Quota.ts"
import { Subscriptions } from "../../../src/services/billing/Subscriptions.ts"
import { Admission } from "../../../src/services/chat/Admission.ts"
import { Mailbox } from "../../../src/services/chat/Mailbox.ts"
import { Spend } from "../../../src/services/llm/Spend.ts"
import { RateLimits } from "../../../src/services/platform/RateLimits.ts"
import { RedisOutage } from "../../../src/services/platform/Redis.ts"
import { testDatabase } from "../../support/Database.ts"

const database = testDatabase(
  { FREE_DAILY_MESSAGES: "5", RATE_LIMIT_LLM_PER_MINUTE: "5" },
  `insert into users (id, first_name) values (1, 'a');
   insert into chats (id, type) values (1, 'private');
   insert into telegram_updates (update_id, kind) values (1, 'Text'), (2, 'Text');
   insert into messages (update_id, chat_id, user_id, telegram_message_id, text) values (1, 1, 1, 1, 'first'), (2, 1, 1, 2, 'second')`
)
afterAll(() => database.drop())

/** The LLM rate limit, in memory: allows everything, fails with RedisOutage when told to, counts calls. */
const limiter = { calls: 0, failNext: false }
const rateLimits = Layer.succeed(
  RateLimits,
  RateLimits.of({
    consume: (_name, subjects) =>
      Effect.suspend(() => {
        limiter.calls++
        if (limiter.failNext) {
          limiter.failNext = false
          return Effect.fail(new RedisOutage({ message: "Redis: connection lost" }))
        }
        return Effect.succeed(subjects.map(() => ({ allowed: true, count: 1, retryAfterMillis: 0, limit: 5 })))
      })
  })
)

const testLayer = Admission.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(Mailbox.layer, Quota.layer, Subscriptions.layer, Spend.layer, rateLimits)),
  Layer.provideMerge(database.layer)
)

const used = () => database.query("select coalesce(sum(messages), 0) from usage_daily where user_id = 1")
const claim = Mailbox.use((mailbox) => mailbox.claimNext(1)).pipe(Effect.map(Option.getOrThrow))

layer(testLayer, { excludeTestServices: true })("Admission (real Postgres)", (it) => {
  it.effect("charges the quota once for a message, however often its turn is redone", () =>
    Effect.gen(function*() {
      const admission = yield* Admission
      const mailbox = yield* Mailbox
      // First attempt: the quota is charged (with the decision), then Redis fails.
      limiter.failNext = true
      const first = yield* claim
      assert.strictEqual((yield* Effect.flip(admission.admit(first)))._tag, "RedisOutage")
      assert.strictEqual(used(), "1")
      assert.strictEqual(database.query("select gate from messages where update_id = 1"), "quota_ok")
      // The redo asks the limit again, not the quota.
      yield* mailbox.release(first, { countAttempt: true })
      const second = yield* claim
      assert.deepStrictEqual(yield* admission.admit(second), { _tag: "Llm" })
      assert.strictEqual(used(), "1")
      // A later redo (the turn crashed after deciding) asks nothing at all.
      yield* mailbox.release(second, { countAttempt: true })
      const calls = limiter.calls
      assert.deepStrictEqual(yield* admission.admit(yield* claim), { _tag: "Llm" })
      assert.strictEqual(limiter.calls, calls)
      assert.strictEqual(used(), "1")
    }))

  it.effect("takes the quota charge back when the decision cannot be stored (another turn took the message)", () =>
    Effect.gen(function*() {
      const admission = yield* Admission
      const mailbox = yield* Mailbox
      const done = yield* claim
      yield* mailbox.complete(done, { answer: "ok", conversationId: null, model: null, tokensIn: 0, tokensOut: 0, latencyMs: 0, ttftMs: null })
      const mail = yield* claim // update 2
      database.query("update messages set attempts = attempts + 1 where update_id = 2") // claimed again elsewhere
      assert.strictEqual((yield* Effect.flip(admission.admit(mail)))._tag, "MailTakenOver")
      assert.strictEqual(used(), "1")
    }))
})
