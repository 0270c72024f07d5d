import { Effect, Layer } from "effect"
import { MigrateProgram } from "../layers/Programs.ts"
import { runTask } from "./run.ts"

// Building the program applies the pending migrations; closing its scope stops the database.
runTask(Effect.scoped(Layer.build(MigrateProgram)))
