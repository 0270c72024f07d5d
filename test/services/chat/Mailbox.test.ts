import { Effect, Exit, Layer, Option, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as DatabasePostgres from "../../../src/layers/platform/DatabasePostgres.ts"
import { Mailbox } from "../../../src/services/chat/Mailbox.ts"
import { createDatabase } from "../../support/Stack.ts"

describe("Mailbox fencing (real Postgres)", () => {
  const database = createDatabase()
  const url = Redacted.make(`postgres://postgres@127.0.0.1:${process.env.PGPORT ?? 5432}/${database.name}`)
  const layer = Mailbox.layer.pipe(Layer.provideMerge(DatabasePostgres.layer(url)))
  const run = <A, E>(effect: Effect.Effect<A, E, Mailbox>) => Effect.runPromise(Effect.provide(effect, layer))

  const psql = (sql: string) =>
    execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", database.name, "-qAtc", sql], { encoding: "utf8" }).trim()

  beforeAll(() => run(Effect.void)) // applies the migrations
  afterAll(() => database.drop())

  it("lets only the latest claim of a message write, so a stale holder cannot answer it twice", async () => {
    psql(`
      insert into telegram_updates (update_id, kind) values (1, 'Text');
      insert into chats (id, type) values (10, 'private');
      insert into users (id, first_name) values (10, 'Ada');
      insert into messages (update_id, chat_id, user_id, telegram_message_id, text) values (1, 10, 10, 1, 'hi')`)
    const record = { answer: "a", conversationId: null, model: "m", tokensIn: 1, tokensOut: 1, latencyMs: 1, ttftMs: 1 }
    const outcome = await run(Effect.gen(function*() {
      const mailbox = yield* Mailbox
      const stale = Option.getOrThrow(yield* mailbox.claimNext(10)) // worker A
      const current = Option.getOrThrow(yield* mailbox.claimNext(10)) // worker B, after A's lease ran out
      const staleWrites = yield* Effect.all([
        Effect.exit(mailbox.recordReplyIds(stale, [5])),
        Effect.exit(mailbox.complete(stale, record)),
        Effect.exit(mailbox.fail(stale, "x", Option.none())),
        Effect.exit(mailbox.release(stale, { countAttempt: false }))
      ])
      yield* mailbox.recordReplyIds(current, [6])
      yield* mailbox.complete(current, record)
      return { stale, current, staleWrites }
    }))
    expect([outcome.stale.attempts, outcome.current.attempts]).toEqual([1, 2])
    expect(outcome.current.laterPending).toBe(false)
    for (const exit of outcome.staleWrites) {
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("MailTakenOver")
    }
    expect(psql("select status, answer, reply_message_ids::text, attempts from messages")).toBe("answered|a|[6]|2")
    expect(psql("select count(*) from usage")).toBe("1")
  })

  it("says at the claim whether later mail of the chat waits too", async () => {
    psql(`
      insert into telegram_updates (update_id, kind) values (11, 'Text'), (12, 'Text'), (13, 'Text');
      insert into chats (id, type) values (20, 'private'), (21, 'private');
      insert into messages (update_id, chat_id, telegram_message_id, text) values (11, 20, 1, 'a'), (12, 20, 2, 'b'), (13, 21, 1, 'c')`)
    const claims = await run(Effect.gen(function*() {
      const mailbox = yield* Mailbox
      const first = Option.getOrThrow(yield* mailbox.claimNext(20))
      yield* mailbox.skip(first, "test")
      const second = Option.getOrThrow(yield* mailbox.claimNext(20))
      const other = Option.getOrThrow(yield* mailbox.claimNext(21)) // another chat's mail is not later mail
      return [first.laterPending, second.laterPending, other.laterPending]
    }))
    expect(claims).toEqual([true, false, false])
  })
})
