import { NodeRuntime } from "@effect/platform-node"
import { Cause, type Effect, Exit, Layer, Option, type Runtime } from "effect"

/**
 * What stopped the program, in one line: our own errors' message (it names the setting or
 * resource at fault), else the cause as Effect prints it.
 */
const reasonOf = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.findErrorOption(cause), {
    onSome: (error) =>
      typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" && error.message !== ""
        ? error.message
        : Cause.pretty(cause),
    onNone: () => Cause.pretty(cause)
  })

/**
 * A stop by signal (finalizers done: in-flight turns finished or handed back) exits 0 so
 * supervisors see a clean stop. A failure (a start that cannot succeed, most often) is one JSON
 * log line naming its reason, plus the same sentence on a terminal, and exits 1.
 */
const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
  const reason = reasonOf(exit.cause)
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: "FATAL", message: "the program stopped", error: reason })}\n`)
  if (process.stderr.isTTY) process.stderr.write(`Cannot run: ${reason}\n`)
  onExit(1)
}

/** Runs a task (migrate, ...) to its end. */
export const runTask = <A, E>(task: Effect.Effect<A, E>) => NodeRuntime.runMain(task, { disableErrorReporting: true, teardown })

/** Runs a program until SIGTERM/SIGINT. */
export const runProgram = <E>(program: Layer.Layer<never, E>) => runTask(Layer.launch(program))
