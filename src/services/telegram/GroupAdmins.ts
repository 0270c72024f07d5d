import { Clock, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import { Telegram, type TelegramError } from "./Telegram.ts"

/** How long a member's status is trusted (ms): a demoted admin loses the right within a minute. */
const statusTtl = 60_000
/** Statuses remembered at most; past it the memory starts afresh (a flood of askers cannot grow it). */
const maxRemembered = 10_000

/** Operators first, then the group's admins by getChatMember, remembered for `statusTtl`. */
const groupAdminCheck = <E>(isOperator: (userId: number) => Effect.Effect<boolean, E>) =>
  Effect.gen(function*() {
    const telegram = yield* Telegram
    const remembered = new Map<string, { readonly admin: boolean; readonly at: number }>()
    return Effect.fn("GroupAdmins.mayManage")(function*(chatId: number, userId: number) {
      if (yield* isOperator(userId)) return true
      const key = `${chatId}:${userId}`
      const now = yield* Clock.currentTimeMillis
      const known = remembered.get(key)
      if (known !== undefined && now - known.at < statusTtl) return known.admin
      const status = yield* telegram.getChatMember(chatId, userId)
      const admin = status === "creator" || status === "administrator"
      if (remembered.size >= maxRemembered) remembered.clear()
      remembered.set(key, { admin, at: now })
      return admin
    })
  })

/**
 * Who may manage the bot in a group (issue 9: `/new` wipes the group's shared context): the
 * group's creator and administrators (getChatMember, remembered for a minute) and the bot's
 * operators (users.role = 'admin').
 */
export class GroupAdmins extends Context.Service<GroupAdmins, {
  /** Whether `userId` may manage the bot in group `chatId`; fails with the Telegram or storage error. */
  readonly mayManage: (chatId: number, userId: number) => Effect.Effect<boolean, TelegramError | StorageOutage>
}>()("bot/GroupAdmins") {
  static readonly layer = Layer.effect(
    GroupAdmins,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const isOperator = (userId: number) =>
        sql<{ operator: boolean }>`select exists (select 1 from users where id = ${userId} and role = 'admin') as operator`.pipe(
          Effect.map((rows) => rows[0]?.operator === true),
          Effect.mapError(storageOutage)
        )
      return GroupAdmins.of({ mayManage: yield* groupAdminCheck(isOperator) })
    })
  )

  /** Telegram's word alone (no operators): for tests of the turn without a database. */
  static readonly layerTest = Layer.effect(
    GroupAdmins,
    Effect.map(groupAdminCheck(() => Effect.succeed(false)), (mayManage) => GroupAdmins.of({ mayManage }))
  )
}
