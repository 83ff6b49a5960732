import Glibc
import Reactor

// Entry point: parse the configuration, detach if asked, run the daemon on one event loop.
// Exit codes: 0 success, 1 some certificates failed (--one-off) or a fatal runtime error,
// 2 usage or configuration error (`check`: 0 to 3 as a monitoring plugin).

let arguments = Array(CommandLine.arguments.dropFirst())
let environment = ProcessEnvironment.current()

// `stapler sandbox-check [options]` takes the daemon's options.
let checksSandbox = arguments.first == "sandbox-check"
let command: Command
do {
    command = try ConfigurationLoader.load(arguments: checksSandbox ? Array(arguments.dropFirst()) : arguments,
                                           environment: environment)
} catch {
    // `check` is a monitoring plugin: its usage errors are UNKNOWN (3), on standard output.
    if arguments.first == "check" { exit(CheckCommand.usageFailure(error)) }
    standardError(error.description)
    exit(error.exitCode)
}

switch command {
case .help(let text), .version(let text):
    standardOutput(text)
    exit(0)
case .check(let checkOptions):
    exit(CheckCommand.run(checkOptions))
case .run(let options) where checksSandbox:
    exit(SandboxCheck.run(options: options, environment: environment))
case .run(let options):
    exit(DaemonRunner.run(options: options, arguments: arguments, environment: environment))
}
