import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The `--on-update` hook on a real loop with real commands (sh, cat, sleep): one run per
/// burst, batching while a run is on, what the command receives, and a hung command killed.
final class UpdateHookTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var runs: String!

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-hook")
        runs = temp.file("runs")
        try FileManager.default.createDirectory(atPath: runs, withIntermediateDirectories: true)
    }

    override func tearDown() { temp = nil }

    /// Records each run: its standard input, its two variables, in files named by its pid.
    private var recordingCommand: String {
        "sh -c 'cat > \"$0/stdin-$$\"; printf %s \"$STAPLER_UPDATED_STAPLES\" > \"$0/env-$$\"; "
            + "printf %s \"$STAPLER_UPDATED_COUNT\" > \"$0/count-$$\"' '\(runs!)'"
    }

    func testABurstOf500ChangedStaplesRunsTheCommandOnceWithEveryPath() throws {
        let (loop, hook) = try makeHook(recordingCommand, settling: .milliseconds(300), interval: .milliseconds(200))
        // The way a refresh burst arrives: batches of 50 writes, 20 ms apart.
        let paths = (0..<500).map { FilePath("/etc/nginx/certs/site \($0).pem.ocsp") }
        for batch in 0..<10 {
            loop.schedule(after: .milliseconds(20 * batch)) {
                for path in paths[(batch * 50)..<(batch * 50 + 50)] { hook.stapleChanged(path) }
                hook.stapleChanged(paths[0]) // a path changed twice is listed once
            }
        }
        try loop.runForTest(deadline: .seconds(20)) { hook.runs == 1 && hook.isIdle }
        XCTAssertEqual(try recorded("stdin"), [paths.map { $0.description + "\n" }.joined()])
        XCTAssertEqual(try recorded("env"), [paths.map(\.description).joined(separator: "\n")])
        XCTAssertEqual(try recorded("count"), ["500"])
        XCTAssertFalse(hook.lastRunFailed)

        // Nothing more comes of that burst: several settling delays and intervals pass. The
        // same wait sees the next change's run.
        var waited = false
        loop.schedule(after: .seconds(1)) { waited = true }
        try loop.runForTest(deadline: .seconds(5)) { waited }
        XCTAssertEqual(hook.runs, 1)
        hook.stapleChanged("/etc/nginx/certs/late.pem.ocsp")
        try loop.runForTest(deadline: .seconds(5)) { hook.runs == 2 && hook.isIdle }
        XCTAssertEqual(try recorded("count").sorted(), ["1", "500"])
        XCTAssertTrue(log.contains("on-update: running 'sh' '-c'"), log)
        XCTAssertTrue(log.contains("for 500 changed staple(s)"), log)
        XCTAssertTrue(log.contains("on-update: sh exited 0 after"), log)
    }

    func testChangesDuringARunGetExactlyOneMoreRunAfterIt() throws {
        let command = "sh -c 'cat > \"$0/stdin-$$\"; sleep 0.5' '\(runs!)'"
        let (loop, hook) = try makeHook(command, settling: .milliseconds(100), interval: .milliseconds(800))
        hook.stapleChanged("/certs/a.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { hook.isRunning }
        let firstStart = MonotonicInstant.now()
        hook.stapleChanged("/certs/b.pem.ocsp")
        hook.stapleChanged("/certs/c.pem.ocsp")
        hook.stapleChanged("/certs/b.pem.ocsp")
        XCTAssertEqual(hook.runs, 1, "never two at once")
        var secondStart: MonotonicInstant?
        try loop.runForTest(deadline: .seconds(10)) {
            if hook.runs == 2 && secondStart == nil { secondStart = .now() }
            return hook.runs == 2 && hook.isIdle
        }
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(secondStart).duration(since: firstStart), .milliseconds(700),
                                    "the second run waited for the interval")
        XCTAssertEqual(try recorded("stdin").sorted(), ["/certs/a.pem.ocsp\n", "/certs/b.pem.ocsp\n/certs/c.pem.ocsp\n"])

        // And no third: the same wait sees a run when there is a change.
        var waited = false
        loop.schedule(after: .seconds(1)) { waited = true }
        try loop.runForTest(deadline: .seconds(5)) { waited }
        XCTAssertEqual(hook.runs, 2)
        hook.stapleChanged("/certs/d.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { hook.runs == 3 && hook.isIdle }
    }

    func testAHungCommandIsKilledWhileStaplingGoesOn() throws {
        let (loop, hook) = try makeHook("sh -c 'echo reloading; sleep 60'", settling: .milliseconds(50),
                                        interval: .zero, timeout: .milliseconds(500))
        var ticks = 0
        func tick() {
            ticks += 1
            loop.schedule(after: .milliseconds(50)) { tick() }
        }
        tick()
        hook.stapleChanged("/certs/a.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { hook.runs == 1 && hook.isIdle }
        XCTAssertTrue(hook.lastRunFailed)
        XCTAssertTrue(log.contains("on-update: sh did not finish within 0.5 s, killed by signal 15 (Terminated) after 0.5"),
                      log)
        XCTAssertTrue(log.contains(": reloading"), "its output is logged: \(log)")
        XCTAssertGreaterThan(ticks, 8, "the loop kept running while the command hung")

        // The next change runs the (now working) command again.
        hook.update(UpdateHook.Settings(command: try CommandWords.split(Array("true".utf8)), minimumInterval: .zero,
                                        settlingDelay: .milliseconds(50), timeout: .seconds(10)))
        hook.stapleChanged("/certs/a.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { hook.runs == 2 && hook.isIdle }
        XCTAssertFalse(hook.lastRunFailed)
    }

    func testAFailingOrMissingCommandIsLoggedWithItsOutput() throws {
        let (loop, hook) = try makeHook("sh -c 'echo \"nginx: [emerg] bad\" >&2; exit 1'", settling: .milliseconds(10),
                                        interval: .zero)
        hook.stapleChanged("/certs/a.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { hook.runs == 1 && hook.isIdle }
        XCTAssertTrue(hook.lastRunFailed)
        XCTAssertTrue(log.contains("ERROR on-update: sh exited 1 after "), log)
        XCTAssertTrue(log.contains(": nginx: [emerg] bad\n"), log)

        hook.update(UpdateHook.Settings(command: [Array("no-such-reloader".utf8)], minimumInterval: .zero,
                                        settlingDelay: .milliseconds(10), timeout: .seconds(10)))
        hook.stapleChanged("/certs/b.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { hook.runs == 2 && hook.isIdle }
        XCTAssertTrue(hook.lastRunFailed)
        XCTAssertTrue(log.contains("on-update: cannot run \"no-such-reloader\": No such file or directory; "
                                   + "1 changed staple(s) not announced"), log)
    }

    func testOnePassCollectsUntilTheFlushThenRunsAtOnce() throws {
        let (loop, hook) = try makeHook(recordingCommand, settling: .milliseconds(10), interval: .seconds(30),
                                        waitsForFlush: true)
        var idle = false
        hook.onIdle = { idle = true }
        hook.stapleChanged("/certs/a.pem.ocsp")
        // Many settling delays pass without a run; the flush runs it at once.
        var waited = false
        loop.schedule(after: .milliseconds(300)) { waited = true }
        try loop.runForTest(deadline: .seconds(5)) { waited }
        XCTAssertEqual(hook.runs, 0)
        let started = MonotonicInstant.now()
        hook.flush()
        try loop.runForTest(deadline: .seconds(10)) { idle }
        XCTAssertEqual(hook.runs, 1)
        XCTAssertLessThan(MonotonicInstant.now().duration(since: started), .seconds(5))
        XCTAssertEqual(try recorded("stdin"), ["/certs/a.pem.ocsp\n"])
    }

    func testAPathWithALineFeedIsLeftOutOfTheList() throws {
        let (loop, hook) = try makeHook(recordingCommand, settling: .milliseconds(10), interval: .zero)
        hook.stapleChanged(FilePath("/certs/evil\n/etc/shadow.ocsp"))
        hook.stapleChanged("/certs/a.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { hook.runs == 1 && hook.isIdle }
        XCTAssertEqual(try recorded("stdin"), ["/certs/a.pem.ocsp\n"])
        XCTAssertTrue(log.contains("on-update: not listed for the command: the path contains a line feed"), log)
    }

    func testConfinedWithoutACommandAtStartNoneCanBeAddedBySIGHUP() throws {
        let (loop, direct) = try makeHook(recordingCommand, settling: .milliseconds(10), interval: .zero)
        let settings = direct.settings
        let confined = UpdateHook(loop: loop, logger: loggers[0], settings: .init(command: nil, minimumInterval: .zero,
                                                                                 settlingDelay: .milliseconds(10),
                                                                                 timeout: .seconds(10)),
                                  launch: .none)
        confined.update(settings)
        XCTAssertNil(confined.settings.command)
        XCTAssertTrue(log.contains("WARNING SIGHUP: restart Stapler to change --on-update: the command is fixed when the "
                                   + "sandbox is set at start"), log)
        confined.update(UpdateHook.Settings(command: nil, minimumInterval: .zero, timeout: .seconds(3)))
        XCTAssertEqual(confined.settings.timeout, .seconds(3), "the rest of the settings apply")

        // Told of the same change, the direct hook runs and the confined one does not.
        confined.stapleChanged("/certs/a.pem.ocsp")
        direct.stapleChanged("/certs/a.pem.ocsp")
        try loop.runForTest(deadline: .seconds(10)) { direct.runs == 1 && direct.isIdle }
        XCTAssertEqual(confined.runs, 0)
        XCTAssertEqual(try recorded("count"), ["1"])
        XCTAssertEqual(log.components(separatedBy: "restart Stapler to change --on-update").count - 1, 1)
    }

    // MARK: Helpers

    private var loggers: [Logger] = []

    private func makeHook(_ command: String, settling: Duration, interval: Duration, timeout: Duration = .seconds(10),
                          waitsForFlush: Bool = false) throws -> (EventLoop, UpdateHook) {
        let loop = try EventLoop()
        let logger = try Logger(verbosity: .debug, toStandardOutput: false, directory: FilePath(temp.path), syslog: false)
        loggers.append(logger)
        let settings = UpdateHook.Settings(command: try CommandWords.split(Array(command.utf8)), minimumInterval: interval,
                                           settlingDelay: settling, timeout: timeout, killGrace: .milliseconds(500),
                                           waitsForFlush: waitsForFlush)
        return (loop, UpdateHook(loop: loop, logger: logger, settings: settings))
    }

    private var log: String { (try? String(contentsOfFile: temp.file("stapler.log"), encoding: .utf8)) ?? "" }

    /// The contents of every `<kind>-<pid>` file the recording command wrote.
    private func recorded(_ kind: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: runs).filter { $0.hasPrefix(kind + "-") }.map {
            try String(contentsOfFile: "\(runs!)/\($0)", encoding: .utf8)
        }
    }
}
