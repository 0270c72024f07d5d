import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { storable, storableOrNull } from "../platform/Storable.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import type { UrlButton } from "../telegram/Telegram.ts"

/**
 * What a turn decided for a user message, once (a redo keeps it): counted in the quota with the
 * rate limit still to ask (quota_ok), sent to the LLM, answered with the paywall, the fair-use
 * notice, the LLM rate limit's notice or a spend cap's (token_cap: the user's daily tokens;
 * spend_cap: the day's total cost), the "slow down" reply, or nothing (silenced past the
 * updates limit), or "I can only read text" (a message without text, told once per chat per 10
 * minutes).
 */
export type Gate =
  | "quota_ok"
  | "llm"
  | "paywall"
  | "fair_use"
  | "rate_limited"
  | "token_cap"
  | "spend_cap"
  | "slow_down"
  | "silenced"
  | "text_only"

/** How far back a notice counts as given: the last `seconds`, or since the quota `day` (YYYY-MM-DD) began in `timeZone` (IANA). */
export type NoticeWindow = { readonly seconds: number } | { readonly day: string; readonly timeZone: string }

/**
 * An entry taken from its chat's mailbox for a turn (a `messages` row being processed): a user's
 * message, or a notice the bot tells the user on its own.
 */
export interface Mail {
  readonly id: number
  readonly kind: "user" | "notice"
  /** The Telegram update that brought it; null for notices. */
  readonly updateId: number | null
  readonly chatId: number
  readonly chatType: string
  /** The forum topic it came from and is answered in; null: General, or a chat without topics. */
  readonly threadId: number | null
  readonly userId: number | null
  /**
   * The user's text (a caption for an attachment, "" for an attachment alone), followed by the
   * texts of the messages merged into it (a burst); or the notice's (Markdown).
   */
  readonly text: string
  /** What the message carried besides text ("photo", "voice"...), or null. */
  readonly attachment: string | null
  readonly mediaGroupId: string | null
  /** The Telegram message the answer replies to (in groups): the burst's last. Null for notices. */
  readonly replyTo: number | null
  /**
   * The burst's last message (this one, or the last merged into it): its id, when the user sent
   * it (Telegram's date, whole seconds) and when it was stored (epoch ms).
   */
  readonly lastId: number
  readonly lastSentAt: number
  readonly lastReceivedAt: number
  /** A notice's buttons. */
  readonly buttons: ReadonlyArray<UrlButton>
  /** Sent past the sender's updates-per-minute limit. */
  readonly overLimit: boolean
  readonly gate: Gate | null
  /** Turns started on this message, this one included: above 1 means a redo after a crash. */
  readonly attempts: number
  /** Telegram ids of the reply messages an earlier attempt already sent, in order. */
  readonly replyMessageIds: ReadonlyArray<number>
  /** The answer an earlier attempt got from the LLM but could not deliver (Telegram away). */
  readonly pendingAnswer: string | null
  readonly conversationId: string | null
  /** The W3C traceparent of the request or poll that brought it: its turn joins that trace. */
  readonly trace: string | null
  /**
   * When it was claimed, later mail of the chat was waiting too: without any, a burst has
   * nothing to merge yet and the chat's mailbox is empty after this turn, unless mail comes in
   * meanwhile (seen after the lock's release: ChatWorker).
   */
  readonly laterPending: boolean
}

/** What a turn produced: stored with the message, and as a `usage` row when an LLM was called. */
export interface TurnRecord {
  readonly answer: string
  readonly conversationId: string | null
  readonly model: string | null
  readonly tokensIn: number
  readonly tokensOut: number
  /** From the turn's start to the end of the answer (ms). */
  readonly latencyMs: number
  /** From the turn's start to the first streamed token (ms); null without an LLM call. */
  readonly ttftMs: number | null
  /** The user stopped the answer while it streamed: its usage is recorded as "stopped". */
  readonly stopped?: boolean
  /** What the LLM call cost, micro-cents (1e-8 USD; Spend.costOf); absent: 0. */
  readonly costMicroCents?: number
}

/**
 * The message was claimed again since this turn took it (this holder's lock lease ran out and
 * another worker redid it): this turn must stop writing.
 */
export class MailTakenOver extends Schema.TaggedError<MailTakenOver>()("MailTakenOver", {
  messageId: Schema.Number,
  message: Schema.String
}) {}

export type MailboxError = StorageOutage | MailTakenOver

/**
 * The condition every write of a turn is fenced with: the message is still this turn's claim,
 * and nobody's since (see MailTakenOver).
 */
export const ownedBy = (sql: SqlClient.SqlClient, mail: Mail) =>
  sql`id = ${mail.id} and status = 'processing' and attempts = ${mail.attempts}`

/** A fenced write found the message claimed again. */
export const takenOver = (mail: Mail) =>
  new MailTakenOver({ messageId: mail.id, message: `message ${mail.id} was claimed again by another turn` })

interface MailRow {
  id: bigint
  kind: "user" | "notice"
  update_id: bigint | null
  chat_id: bigint
  chat_type: string
  thread_id: bigint
  user_id: bigint | null
  text: string
  attachment: string | null
  media_group_id: string | null
  telegram_message_id: bigint | null
  buttons: Array<UrlButton>
  over_limit: boolean
  gate: Gate | null
  attempts: number
  reply_message_ids: Array<number>
  answer: string | null
  conversation_id: string | null
  trace_context: string | null
  sent_at_ms: number
  received_at_ms: number
  later_pending: boolean
  /** The messages merged into this one, in order. */
  merged: Array<{ id: number; text: string; message_id: number | null; sent_at_ms: number; received_at_ms: number }>
}

const toMail = (row: MailRow): Mail => {
  const last = row.merged.at(-1)
  const messageId = row.telegram_message_id === null ? null : Number(row.telegram_message_id)
  return {
    id: Number(row.id),
    kind: row.kind,
    updateId: row.update_id === null ? null : Number(row.update_id),
    chatId: Number(row.chat_id),
    chatType: row.chat_type,
    threadId: Number(row.thread_id) === 0 ? null : Number(row.thread_id),
    userId: row.user_id === null ? null : Number(row.user_id),
    text: [row.text, ...row.merged.map((m) => m.text)].join("\n\n"),
    attachment: row.attachment,
    mediaGroupId: row.media_group_id,
    replyTo: last === undefined ? messageId : last.message_id,
    lastId: last === undefined ? Number(row.id) : Number(last.id),
    lastSentAt: last === undefined ? row.sent_at_ms : Number(last.sent_at_ms),
    lastReceivedAt: last === undefined ? row.received_at_ms : Number(last.received_at_ms),
    buttons: row.buttons,
    overLimit: row.over_limit,
    gate: row.gate,
    attempts: row.attempts,
    replyMessageIds: row.reply_message_ids.map(Number),
    pendingAnswer: row.answer,
    conversationId: row.conversation_id,
    trace: row.trace_context,
    laterPending: row.later_pending
  }
}

/**
 * The worker's side of each chat's mailbox in Postgres. Callers hold the chat's lock, so the
 * oldest unfinished message is theirs to take, whether queued or left mid-turn by a crash.
 */
export class Mailbox extends Context.Service<Mailbox, {
  /** Marks the chat's oldest unfinished message `processing` (one more attempt) and returns it. */
  readonly claimNext: (chatId: number) => Effect.Effect<Option.Option<Mail>, StorageOutage>
  /**
   * The message after the burst `head` ends (BURST_MERGE_MS), claimed like claimNext, when it is
   * one to merge: the same sender and topic, text alone, not past the updates limit, sent at most
   * `withinMillis` ms after the burst's last (Telegram's dates, whole seconds). None otherwise.
   */
  readonly claimFollower: (head: Mail, withinMillis: number) => Effect.Effect<Option.Option<Mail>, StorageOutage>
  /**
   * Merges the claimed `follower` into `head`: recorded once as `merged` into it, answered by its
   * answer. Returns the head with the follower's text appended, replying to the follower.
   */
  readonly merge: (head: Mail, follower: Mail) => Effect.Effect<Mail, MailboxError>
  /**
   * Whether the chat was told "text only" in the last `seconds` (by another message), or the
   * message's album has a message with text, which is answered instead.
   */
  readonly toldTextOnly: (mail: Mail, seconds: number) => Effect.Effect<boolean, StorageOutage>
  // The writes below are fenced by the claim's attempt number: see MailTakenOver.
  /** Stores the Telegram ids of the reply's messages (the moment each exists). */
  readonly recordReplyIds: (mail: Mail, ids: ReadonlyArray<number>) => Effect.Effect<void, MailboxError>
  /** Marks the message answered with the record's answer, and its LLM usage when an LLM was called. */
  readonly complete: (mail: Mail, record: TurnRecord) => Effect.Effect<void, MailboxError>
  /** Marks the message failed with `error`, and the LLM usage of the record, if any. */
  readonly fail: (mail: Mail, error: string, record: Option.Option<TurnRecord>) => Effect.Effect<void, MailboxError>
  /**
   * Hands the message back to the mailbox for the next holder: after a shutdown the attempt is
   * not counted; after a failure that may pass (Telegram away) it is, so retries stay bounded.
   * An answer the LLM already gave is kept (with its usage), for the next turn to deliver.
   */
  readonly release: (
    mail: Mail,
    options: { readonly countAttempt: boolean; readonly answered?: TurnRecord }
  ) => Effect.Effect<void, MailboxError>
  /** Whether the chat has queued or unfinished mail (checked after releasing its lock). */
  readonly hasPending: (chatId: number) => Effect.Effect<boolean, StorageOutage>
  /** Stores the turn's decision for the message (see Gate). */
  readonly decide: (mail: Mail, gate: Gate) => Effect.Effect<void, MailboxError>
  /** Marks the message skipped, with why: no reply at all. */
  readonly skip: (mail: Mail, reason: string) => Effect.Effect<void, MailboxError>
  /**
   * Whether the sender already got one of these notices (an earlier message of theirs, in any
   * chat, decided with one of `gates`) within `window`: so a limit answers once per window and
   * is silent after, rather than turning a flood into as many notices (issue 9). False for mail
   * without a sender.
   */
  readonly toldAlready: (mail: Mail, gates: ReadonlyArray<Gate>, window: NoticeWindow) => Effect.Effect<boolean, StorageOutage>
  /** Chats (at most 1000) with mail older than the given age: their wake-up was lost or their worker died. */
  readonly stalledChats: (olderThanSeconds: number) => Effect.Effect<ReadonlyArray<number>, StorageOutage>
  /** Telegram says the chat is gone (blocked, not found): skip its mail, stop writing to it. */
  readonly markUnreachable: (chatId: number, reason: string) => Effect.Effect<void, StorageOutage>
}>()("bot/Mailbox") {
  static readonly layer = Layer.effect(
    Mailbox,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const owned = (mail: Mail) => ownedBy(sql, mail)
      const expectOwned = (mail: Mail) => (rows: ReadonlyArray<unknown>) => rows.length > 0 ? Effect.void : Effect.fail(takenOver(mail))

      /**
       * Runs the fenced update and, when an LLM was called, records its usage in the same
       * statement: one round trip, atomic without a transaction block.
       */
      const updateWithUsage = (
        mail: Mail,
        update: Statement.Statement<unknown>,
        record: TurnRecord | null | undefined,
        outcome: "answered" | "failed"
      ) => {
        const statement = record === null || record === undefined || record.model === null ? update : sql`
          with done as (${update})
          insert into usage (message_id, user_id, chat_id, model, tokens_in, tokens_out, cost_micro_cents, latency_ms, ttft_ms, outcome)
          select id, ${mail.userId}, ${mail.chatId}, ${record.model}, ${record.tokensIn}, ${record.tokensOut},
            ${record.costMicroCents ?? 0}, ${record.latencyMs}, ${record.ttftMs}, ${record.stopped === true ? "stopped" : outcome}
          from done
          returning message_id`
        return statement.pipe(Effect.mapError(storageOutage), Effect.flatMap(expectOwned(mail)))
      }

      const finishTurn = (mail: Mail, outcome: "answered" | "failed", error: string | null, record: TurnRecord | null) =>
        updateWithUsage(
          mail,
          outcome === "answered"
            ? sql`update messages set status = 'answered', answer = ${storable(record?.answer ?? "")},
                conversation_id = ${record?.conversationId ?? null}, error = null, answered_at = now()
                where ${owned(mail)} returning id`
            : sql`update messages set status = 'failed', error = ${storableOrNull(error)} where ${owned(mail)} returning id`,
          record,
          outcome
        )

      /** Marks the message `which` selects `processing` (one more attempt) and returns it as Mail. */
      const claim = (which: Statement.Statement<unknown>) =>
        sql<MailRow>`
          update messages set status = 'processing', attempts = attempts + 1
          where id = (${which})
          returning id, kind, update_id, chat_id, thread_id, user_id, text, attachment, media_group_id, telegram_message_id,
            buttons, over_limit, gate, attempts, reply_message_ids, answer, conversation_id, trace_context,
            (extract(epoch from sent_at) * 1000)::float8 as sent_at_ms,
            (extract(epoch from received_at) * 1000)::float8 as received_at_ms,
            (select type from chats where chats.id = messages.chat_id) as chat_type,
            exists (
              select 1 from messages l
              where l.chat_id = messages.chat_id and l.id > messages.id and l.status in ('queued', 'processing')
            ) as later_pending,
            (select coalesce(jsonb_agg(jsonb_build_object(
                'id', f.id, 'text', f.text, 'message_id', f.telegram_message_id,
                'sent_at_ms', extract(epoch from f.sent_at) * 1000,
                'received_at_ms', extract(epoch from f.received_at) * 1000) order by f.id), '[]')
              from messages f where f.merged_into = messages.id) as merged`.pipe(
          Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), toMail)),
          Effect.mapError(storageOutage)
        )

      return Mailbox.of({
        claimNext: Effect.fn("Mailbox.claimNext")(function*(chatId: number) {
          return yield* claim(sql`
            select id from messages
            where chat_id = ${chatId} and status in ('queued', 'processing')
            order by id limit 1`)
        }),
        claimFollower: Effect.fn("Mailbox.claimFollower")(function*(head: Mail, withinMillis: number) {
          // Only the very next message, and only one like the head: the same sender and topic,
          // text alone, within the limits, sent soon after the burst's last (by Telegram's date:
          // messages held back by an outage arrive together, but were not sent together).
          return yield* claim(sql`
            select id from (
              select * from messages
              where chat_id = ${head.chatId} and id > ${head.lastId} and status in ('queued', 'processing')
              order by id limit 1
            ) next
            where kind = 'user' and user_id = ${head.userId} and thread_id = ${head.threadId ?? 0}
              and attachment is null and not over_limit
              and sent_at <= to_timestamp(${head.lastSentAt + withinMillis} / 1000.0)`)
        }),
        merge: Effect.fn("Mailbox.merge")(function*(head: Mail, follower: Mail) {
          // Both claims must still be this turn's: a head taken over meanwhile keeps its follower.
          yield* sql`
            update messages set status = 'merged', merged_into = ${head.id}, conversation_id = ${head.conversationId}
            where ${owned(follower)}
              and exists (select 1 from messages h where h.id = ${head.id} and h.status = 'processing' and h.attempts = ${head.attempts})
            returning id`
            .pipe(Effect.mapError(storageOutage), Effect.flatMap(expectOwned(follower)))
          return {
            ...head,
            text: `${head.text}\n\n${follower.text}`,
            replyTo: follower.replyTo,
            lastId: follower.id,
            lastSentAt: follower.lastSentAt,
            lastReceivedAt: follower.lastReceivedAt
          }
        }),
        toldTextOnly: Effect.fn("Mailbox.toldTextOnly")(function*(mail: Mail, seconds: number) {
          const rows = yield* sql<{ told: boolean }>`
            select exists (
              select 1 from messages where chat_id = ${mail.chatId} and gate = 'text_only' and id <> ${mail.id}
                and received_at > now() - make_interval(secs => ${seconds})
            ) or exists (
              select 1 from messages where chat_id = ${mail.chatId} and id <> ${mail.id}
                and media_group_id = ${mail.mediaGroupId} and text <> ''
            ) as told`.pipe(Effect.mapError(storageOutage))
          return rows[0]?.told === true
        }),
        decide: Effect.fn("Mailbox.decide")(function*(mail: Mail, gate: Gate) {
          yield* sql`update messages set gate = ${gate} where ${owned(mail)} returning id`
            .pipe(Effect.mapError(storageOutage), Effect.flatMap(expectOwned(mail)))
        }),
        skip: Effect.fn("Mailbox.skip")(function*(mail: Mail, reason: string) {
          yield* sql`update messages set status = 'skipped', error = ${storable(reason)} where ${owned(mail)} returning id`
            .pipe(Effect.mapError(storageOutage), Effect.flatMap(expectOwned(mail)))
        }),
        toldAlready: Effect.fn("Mailbox.toldAlready")(function*(mail: Mail, gates: ReadonlyArray<Gate>, window: NoticeWindow) {
          if (mail.userId === null) return false
          const since = "seconds" in window
            ? sql`now() - make_interval(secs => ${window.seconds})`
            : sql`(${window.day}::date::timestamp at time zone ${window.timeZone})`
          const rows = yield* sql<{ told: boolean }>`
            select exists (
              select 1 from messages where user_id = ${mail.userId} and id < ${mail.id}
                and gate in ${sql.in(gates)} and status <> 'skipped' and received_at >= ${since}
            ) as told`.pipe(Effect.mapError(storageOutage))
          return rows[0]?.told === true
        }),
        recordReplyIds: Effect.fn("Mailbox.recordReplyIds")(function*(mail: Mail, ids: ReadonlyArray<number>) {
          yield* sql`update messages set reply_message_ids = ${JSON.stringify(ids)}::jsonb where ${owned(mail)} returning id`
            .pipe(Effect.mapError(storageOutage), Effect.flatMap(expectOwned(mail)))
        }),
        complete: Effect.fn("Mailbox.complete")(function*(mail: Mail, record: TurnRecord) {
          yield* finishTurn(mail, "answered", null, record)
        }),
        fail: Effect.fn("Mailbox.fail")(function*(mail: Mail, error: string, record: Option.Option<TurnRecord>) {
          yield* finishTurn(mail, "failed", error, Option.getOrNull(record))
        }),
        release: Effect.fn("Mailbox.release")(
          function*(mail: Mail, options: { readonly countAttempt: boolean; readonly answered?: TurnRecord }) {
            const answered = options.answered
            yield* updateWithUsage(
              mail,
              sql`
                update messages set status = 'queued', attempts = attempts - ${options.countAttempt ? 0 : 1},
                  answer = coalesce(${storableOrNull(answered?.answer)}, answer),
                  conversation_id = coalesce(${answered?.conversationId ?? null}, conversation_id)
                where ${owned(mail)} returning id`,
              answered,
              "answered"
            )
          }
        ),
        hasPending: Effect.fn("Mailbox.hasPending")(function*(chatId: number) {
          const rows = yield* sql<{ pending: boolean }>`
            select exists (
              select 1 from messages where chat_id = ${chatId} and status in ('queued', 'processing')
            ) as pending`.pipe(Effect.mapError(storageOutage))
          return rows[0]?.pending === true
        }),
        stalledChats: Effect.fn("Mailbox.stalledChats")(function*(olderThanSeconds: number) {
          const rows = yield* sql<{ chat_id: bigint }>`
            select distinct chat_id from messages
            where status in ('queued', 'processing')
              and received_at < now() - make_interval(secs => ${olderThanSeconds})
            limit 1000`.pipe(Effect.mapError(storageOutage))
          return rows.map((row) => Number(row.chat_id))
        }),
        markUnreachable: Effect.fn("Mailbox.markUnreachable")(function*(chatId: number, reason: string) {
          yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`update chats set unreachable_at = now() where id = ${chatId}`
            // In a private chat the chat id is the user's id.
            yield* sql`update users set unreachable_at = now() where id = ${chatId}`
            yield* sql`
              update messages set status = 'skipped', error = ${storable(reason)}
              where chat_id = ${chatId} and status in ('queued', 'processing')`
          })).pipe(Effect.mapError(storageOutage))
        })
      })
    })
  )
}
