import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { DatabaseLive } from "../layers/Database.ts"
import { LoggingLive } from "../layers/Logging.ts"
import { AppConfig } from "../services/AppConfig.ts"

// Building the database layer applies the pending migrations; then the process exits.
Effect.logInfo("migrations applied").pipe(
  Effect.provide(Layer.mergeAll(DatabaseLive, LoggingLive).pipe(Layer.provide(AppConfig.layer))),
  NodeRuntime.runMain
)
