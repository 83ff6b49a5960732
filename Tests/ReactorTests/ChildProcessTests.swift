import Glibc
import TestSupport
import XCTest
@testable import Reactor

/// Real programs (sh, cat, sleep, head) started from a real loop: what they are given, what
/// comes back, and that a hung one is killed without the loop ever waiting on it.
final class ChildProcessTests: XCTestCase {
    func testExitStatusAndOutputOfBothStreamsInOrder() throws {
        let result = try run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        XCTAssertEqual(result.termination, .exited(3))
        XCTAssertFalse(result.succeeded)
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self), "out\nerr\n")
        XCTAssertEqual(result.outputDropped, 0)
        XCTAssertFalse(result.timedOut)
    }

    func testDeathBySignalIsReportedAsSuch() throws {
        // The loop's process ignores SIGPIPE and blocks signals for its signalfd; the child
        // gets default dispositions back, so its own SIGUSR1 kills it.
        SignalSource.ignore([SIGPIPE])
        let result = try run(["sh", "-c", "kill -USR1 $$; sleep 5"])
        XCTAssertEqual(result.termination, .signalled(SIGUSR1))
        XCTAssertEqual(result.termination.description, "killed by signal \(SIGUSR1) (User defined signal 1)")
    }

    func testOutputBeyondTheLimitIsReadAndDroppedSoTheChildNeverBlocks() throws {
        // 1 MB is sixteen times what a pipe holds: a child blocked on a full pipe would time out.
        let result = try run(["head", "-c", "1000000", "/dev/zero"], outputLimit: 4096, timeout: .seconds(10))
        XCTAssertEqual(result.termination, .exited(0))
        XCTAssertEqual(result.output.count, 4096)
        XCTAssertEqual(result.outputDropped, 1_000_000 - 4096)
    }

    func testInputIsDeliveredWholeEvenBeyondAPipeful() throws {
        var input: [UInt8] = []
        for line in 0..<20_000 { input += Array("/etc/certs/site \(line).pem.ocsp\n".utf8) }
        XCTAssertGreaterThan(input.count, 65_536 * 4)
        let result = try run(["cat"], input: input, outputLimit: input.count + 1)
        XCTAssertEqual(result.termination, .exited(0))
        XCTAssertEqual(result.output, input)
        XCTAssertEqual(result.inputUnread, 0)
    }

    func testAParentStartedWithoutStandardInputStillWiresTheChild() throws {
        // With descriptor 0 free, pipe2 hands it out; the spawn's dup2 onto 0 must not eat it.
        let saved = dup(0)
        close(0)
        defer {
            dup2(saved, 0)
            close(saved)
        }
        let result = try run(["sh", "-c", "cat; echo ' and out'"], input: Array("in".utf8))
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self), "in and out\n")
    }

    func testAChildThatNeverReadsItsInputDoesNotHoldUsUp() throws {
        let input = [UInt8](repeating: 0x41, count: 1_000_000)
        let result = try run(["sh", "-c", "exec 0<&-; echo done"], input: input)
        XCTAssertEqual(result.termination, .exited(0))
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self), "done\n")
        XCTAssertGreaterThan(result.inputUnread, 0, "the pipe cannot have taken 1 MB")
    }

    func testEnvironmentAddsToAndReplacesOurOwn() throws {
        setenv("STAPLER_TEST_REPLACED", "old", 1)
        defer { unsetenv("STAPLER_TEST_REPLACED") }
        let result = try run(["sh", "-c", "printf '%s|%s|%s' \"$STAPLER_TEST_ADDED\" \"$STAPLER_TEST_REPLACED\" \"$HOME\""],
                             environment: ["STAPLER_TEST_ADDED=a b\nc", "STAPLER_TEST_REPLACED=new"])
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self),
                       "a b\nc|new|\(ProcessInfo.processInfo.environment["HOME"] ?? "")")
    }

    func testOnlyTheStandardStreamsReachTheChild() throws {
        // Descriptors without close-on-exec, as libcurl's sockets are: the spawn closes them.
        let leaked = open("/dev/null", O_RDONLY)
        XCTAssertGreaterThan(leaked, 2)
        defer { close(leaked) }
        // The same listing from a shell started the usual way shows what would leak.
        let control = try Shell.run(["sh", "-c", "ls /proc/$$/fd"]).output
        let result = try run(["sh", "-c", "ls /proc/$$/fd"])
        XCTAssertEqual(result.termination, .exited(0))
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self), "0\n1\n2\n")
        XCTAssertNotEqual(control, "0\n1\n2\n", "the control listing shows inherited descriptors: \(control)")
    }

    func testAHungChildAndWhatItStartedAreKilledAfterTheTimeout() throws {
        // Blocked here as the daemon blocks it for its signalfd: the child must not inherit that.
        var term = sigset_t()
        sigemptyset(&term)
        sigaddset(&term, SIGTERM)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &term, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        // An unusual duration names this test's grandchild among the machine's processes.
        let grandchild = "sleep\u{0}97.5\u{0}"
        var grandchildSeen = false
        let started = MonotonicInstant.now()
        // The grandchild `sleep` holds the output pipe too; the completion must not wait for it.
        let result = try run(["sh", "-c", "echo started; sleep 97.5 & wait"], timeout: .seconds(1)) { loop in
            func look() {
                grandchildSeen = (try? self.processExists(commandLine: grandchild)) ?? false
                if !grandchildSeen { loop.schedule(after: .milliseconds(10)) { look() } }
            }
            look()
        }
        let elapsed = MonotonicInstant.now().duration(since: started)
        XCTAssertTrue(grandchildSeen, "the grandchild ran")
        XCTAssertTrue(result.timedOut)
        XCTAssertEqual(result.termination, .signalled(SIGTERM))
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self), "started\n")
        XCTAssertLessThan(elapsed, .seconds(4), "killed at the timeout, not after the sleep")
        XCTAssertGreaterThanOrEqual(elapsed, .seconds(1))
        XCTAssertTrue(try waitUntil(timeout: 5) { try !self.processExists(commandLine: grandchild) },
                      "the grandchild was killed with its group")
    }

    func testAChildIgnoringSIGTERMGetsSIGKILLAfterTheGrace() throws {
        let result = try run(["sh", "-c", "trap '' TERM; echo ready; sleep 100"], timeout: .milliseconds(200),
                             killGrace: .milliseconds(300))
        XCTAssertTrue(result.timedOut)
        XCTAssertEqual(result.termination, .signalled(SIGKILL))
        XCTAssertGreaterThanOrEqual(result.duration, .milliseconds(500))
        XCTAssertLessThan(result.duration, .seconds(3))
    }

    func testAMissingProgramIsATypedErrorNamingIt() throws {
        let loop = try EventLoop()
        for program in ["no-such-program-stapler-test", "/nonexistent/dir/program"] {
            XCTAssertThrowsError(try ChildProcess(loop: loop, settings: .init(arguments: [Array(program.utf8)],
                                                                               timeout: .seconds(5))) { _ in }) { error in
                let spawnError = error as? ChildProcess.SpawnError
                XCTAssertEqual(spawnError?.errno, ENOENT)
                XCTAssertEqual(spawnError?.description, "cannot run \"\(program)\": No such file or directory")
            }
        }
        // A file that is no program: refused by exec (which errno depends on its mode).
        XCTAssertThrowsError(try ChildProcess(loop: loop, settings: .init(arguments: [Array("/etc/hostname".utf8)],
                                                                           timeout: .seconds(5))) { _ in }) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot run \"/etc/hostname\": "), "\(error)")
        }
    }

    func testTheLoopKeepsServingTimersWhileAChildRuns() throws {
        let loop = try EventLoop()
        var ticks = 0
        var completion: ChildProcess.Completion?
        let child = try ChildProcess(loop: loop, settings: .init(arguments: [Array("sleep".utf8), Array("0.5".utf8)],
                                                                  timeout: .seconds(10))) {
            completion = $0
            loop.stop()
        }
        func tick() {
            ticks += 1
            loop.schedule(after: .milliseconds(20)) { tick() }
        }
        tick()
        try loop.runForTest(deadline: .seconds(10))
        XCTAssertEqual(completion?.termination, .exited(0))
        XCTAssertGreaterThan(ticks, 10, "timers fired while the child ran")
        XCTAssertFalse(child.isRunning)
    }

    // MARK: Helpers

    private func run(_ arguments: [String], input: [UInt8] = [], environment: [String] = [],
                     outputLimit: Int = ChildProcess.defaultOutputLimit, timeout: Duration = .seconds(10),
                     killGrace: Duration = .seconds(5), meanwhile: ((EventLoop) -> Void)? = nil,
                     file: StaticString = #filePath, line: UInt = #line) throws -> ChildProcess.Completion {
        let loop = try EventLoop()
        var completion: ChildProcess.Completion?
        let settings = ChildProcess.Settings(arguments: arguments.map { Array($0.utf8) },
                                             environment: environment.map { Array($0.utf8) }, input: input,
                                             outputLimit: outputLimit, timeout: timeout, killGrace: killGrace)
        let child = try ChildProcess(loop: loop, settings: settings) {
            completion = $0
            loop.stop()
        }
        meanwhile?(loop)
        try loop.runForTest(deadline: .seconds(20), file: file, line: line)
        XCTAssertFalse(child.isRunning, file: file, line: line)
        return try XCTUnwrap(completion, file: file, line: line)
    }

    /// Whether any process runs with exactly this command line (NUL-separated, as in /proc).
    private func processExists(commandLine: String) throws -> Bool {
        let ours = getpid()
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let pid = Int32(entry), pid != ours,
                  let bytes = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            if String(decoding: bytes, as: UTF8.self) == commandLine { return true }
        }
        return false
    }
}
