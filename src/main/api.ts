import { ApiProgram } from "../layers/Programs.ts"
import { runProgram } from "./run.ts"

runProgram(ApiProgram)
