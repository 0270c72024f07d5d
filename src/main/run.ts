import { NodeRuntime } from "@effect/platform-node"
import { Cause, Exit, Layer, Runtime } from "effect"

/**
 * Runs a program until SIGTERM/SIGINT. A stop by signal (finalizers done: in-flight turns
 * finished or handed back) exits 0 so supervisors see a clean stop; a failure exits 1.
 */
export const runProgram = <E>(program: Layer.Layer<never, E>) =>
  Layer.launch(program).pipe(
    NodeRuntime.runMain({
      teardown: (exit, onExit) =>
        Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
    })
  )
