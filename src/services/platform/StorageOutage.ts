import { Effect, Schema } from "effect"
import { type SqlClient, SqlError } from "effect/sql"

/**
 * Postgres could not do what was asked (unreachable, timed out, refused the statement): the one
 * storage failure every service reports, whatever the statement. The driver's error is the cause.
 */
export class StorageOutage extends Schema.TaggedError<StorageOutage>()("StorageOutage", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** SqlError -> StorageOutage, keeping the SqlError (and its reason) as the cause. */
export const storageOutage = (error: SqlError.SqlError): StorageOutage =>
  new StorageOutage({ message: `database: ${error.message}`, cause: error })

/** Runs `effect` in a transaction of `sql` (rolled back when it fails); BEGIN or COMMIT failing is a StorageOutage. */
export const inTransaction = (sql: SqlClient.SqlClient) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  sql.withTransaction(effect).pipe(
    Effect.mapError((error) => (SqlError.isSqlError(error) ? storageOutage(error) : error as Exclude<E, SqlError.SqlError>))
  )
