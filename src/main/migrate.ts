import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { MigrateProgram } from "../layers/Programs.ts"

// Building the program applies the pending migrations; closing its scope stops the database.
NodeRuntime.runMain(Effect.scoped(Layer.build(MigrateProgram)))
