import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// `stapler --on-update` as an operator runs it: a real nginx reloaded after a refresh (what
/// `openssl s_client -status` is stapled is what counts), a burst of 500 new staples
/// announced once, a hung command killed while stapling goes on, and `--one-off`. Then the
/// launcher that starts the command for the confined daemon: the command is its child, never
/// the daemon's; it dies with the daemon however the daemon ends; a SIGHUP cannot change the
/// command while the rest of the reload applies.
final class OnUpdateEndToEndTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!
    private var responderPort: UInt16 = 0
    private var responderURL: String { "http://127.0.0.1:\(responderPort)/" }
    private var responder: OCSPResponderProcess?

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-onupdate")
        pki = try TestPKI(directory: temp.file("pki"))
        responderPort = freeLoopbackPort()
    }

    override func tearDown() {
        responder = nil
        pki = nil
        temp = nil
    }

    func testNginxServesTheRevokedStapleAfterTheReloadCommandRuns() throws {
        let certs = try directory("certs")
        // nginx refuses to start without a staple file it can parse: a good one to begin with.
        let site = try pki.haproxySite("nginx", in: certs, ocspURL: responderURL, stapleAtStart: true)
        let nginx = try NginxProcess(directory: temp.file("nginx"), certificate: site.bundle, serverName: site.serverName)
        XCTAssertEqual(try nginx.stapleSeen(serverName: site.serverName), .good())
        let master = nginx.masterProcessIdentifier
        try startResponder()

        let reload = nginx.reloadArguments.map { "'\($0)'" }.joined(separator: " ")
        let stapler = try startStapler(["-p", certs, "--no-recycle", "--on-update", reload, "--on-update-interval", "1"])
        // --no-recycle: a fresh (good) staple is fetched and written at start, and announced.
        stapler.expectLog("on-update: nginx exited 0", count: 1)
        XCTAssertTrue(waitUntil(timeout: 10) { nginx.reloadCount == 1 }, nginx.errorLog)
        XCTAssertEqual(try nginx.stapleSeen(serverName: site.serverName), .good())

        try responder!.revoke(site.leaf, in: pki)
        let touched = Date()
        try Shell.run(["touch", site.bundle])
        stapler.expectLog("on-update: nginx exited 0", count: 2)
        expectStaple(.revoked(), from: nginx, serverName: site.serverName)
        print("touch to a revoked staple served by nginx: \(String(format: "%.2f", Date().timeIntervalSince(touched))) s")
        XCTAssertTrue(waitUntil(timeout: 10) { nginx.reloadCount == 2 }, nginx.errorLog)
        XCTAssertEqual(nginx.masterProcessIdentifier, master, "reloaded, not restarted")
        XCTAssertTrue(stapler.log.contains("on-update: running 'nginx' '-s' 'reload'"), stapler.log)
        stapler.stopCleanly()
    }

    func testABurstOf500NewStaplesRunsTheCommandOnce() throws {
        let certs = try directory("certs")
        let leaves = try pki.issueLeaves(count: 500, commonName: "burst.test", ocspURLs: [responderURL])
        let ca = try Data(contentsOf: URL(fileURLWithPath: pki.certificate))
        var staples: [String] = []
        for (index, leaf) in leaves.enumerated() {
            let bundle = "\(certs)/site \(index).pem"
            try (try Data(contentsOf: URL(fileURLWithPath: leaf.certificate)) + ca).write(to: URL(fileURLWithPath: bundle))
            staples.append(bundle + ".ocsp")
        }
        try startResponder()
        let runs = try directory("runs")
        let record = "sh -c 'cat > \"$0/stdin-$$\"; printf %s \"$STAPLER_UPDATED_COUNT\" > \"$0/count-$$\"' '\(runs)'"
        let started = Date()
        let stapler = try startStapler(["-p", certs, "--on-update", record, "--on-update-interval", "1"])
        stapler.expectLog("on-update: sh exited 0", count: 1, timeout: 60)
        print("500 new staples, start to the command's end: \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        XCTAssertEqual(try recorded("count", in: runs), ["500"])
        XCTAssertEqual(try recorded("stdin", in: runs).first?.split(separator: "\n").map(String.init).sorted(),
                       staples.sorted())

        // No second run for the same burst, over several settling delays and intervals; the
        // same wait sees the run one more change brings.
        XCTAssertFalse(stapler.waitForLog("on-update: sh exited 0", count: 2, timeout: 3), stapler.log)
        try Shell.run(["touch", "\(certs)/site 7.pem"])
        stapler.expectLog("on-update: sh exited 0", count: 2)
        XCTAssertEqual(try recorded("count", in: runs).sorted(), ["1", "500"])
        stapler.stopCleanly()
    }

    func testAHungCommandIsKilledAndStaplingGoesOnMeanwhile() throws {
        let certs = try directory("certs")
        let first = try pki.haproxySite("first", in: certs, ocspURL: responderURL, stapleAtStart: false)
        // Issued now, so the responder knows it; its file appears while the command hangs.
        let secondLeaf = try pki.issueLeaf(commonName: "second.test", ocspURLs: [responderURL])
        let secondBundle = "\(certs)/second.pem"
        try startResponder()
        let stapler = try startStapler(["-p", certs, "--on-update", "sh -c 'echo reloading; sleep 300'",
                                        "--on-update-timeout", "5", "--on-update-interval", "1"])
        stapler.expectLog("on-update: running")
        // While the command hangs, a new certificate is stapled all the same.
        try pki.writeBundle(secondLeaf, to: secondBundle)
        XCTAssertTrue(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: secondBundle + ".ocsp") },
                      stapler.log)
        XCTAssertFalse(stapler.log.contains("did not finish"), "stapled while the command still ran:\n\(stapler.log)")
        stapler.expectLog("ERROR on-update: sh did not finish within 5 s, killed by signal 15 (Terminated) after 5",
                  timeout: 15)
        XCTAssertTrue(stapler.log.contains(": reloading"), stapler.log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: first.bundle + ".ocsp"))
        // The second staple, written during the run, gets a run of its own.
        stapler.expectLog("on-update: running 'sh' '-c' 'echo reloading; sleep 300' for 1 changed staple(s)", count: 2)
        stapler.stopCleanly()
    }

    func testOneOffRunsTheCommandOnceBeforeExitingAndReportsItsFailure() throws {
        let certs = try directory("certs")
        _ = try pki.haproxySite("a", in: certs, ocspURL: responderURL, stapleAtStart: false)
        _ = try pki.haproxySite("b", in: certs, ocspURL: responderURL, stapleAtStart: false)
        try startResponder()
        let runs = try directory("runs")
        let record = "sh -c 'cat > \"$0/stdin-$$\"' '\(runs)'"
        let ok = try StaplerProcess.run(["-v", "-v", "--one-off", "-p", certs, "--on-update", record,
                                         "--on-update-interval", "600"], in: temp.path)
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertEqual(try recorded("stdin", in: runs).map { $0.split(separator: "\n").count }, [2], ok.output)
        XCTAssertTrue(ok.output.contains("one pass done: 2 stapled, 0 failed"), ok.output)

        // Nothing changed on a second pass (the staples are recycled): no run. A failing
        // command turns a pass whose staples changed into exit status 1.
        let again = try StaplerProcess.run(["-v", "-v", "--one-off", "-p", certs, "--on-update", "false"], in: temp.path)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertFalse(again.output.contains("on-update: running"), again.output)
        let failing = try StaplerProcess.run(["-v", "-v", "--one-off", "--no-recycle", "-p", certs, "--on-update", "false"],
                                             in: temp.path)
        XCTAssertEqual(failing.status, 1, failing.output)
        XCTAssertTrue(failing.output.contains("ERROR on-update: false exited 1"), failing.output)
        XCTAssertTrue(failing.output.contains("one pass done: 2 stapled, 0 failed, the on-update command failed"),
                      failing.output)
    }

    func testWithAStapleDirectoryTheCommandGetsThePathsThere() throws {
        let certs = try directory("certs")
        let site = try pki.haproxySite("mirrored", in: certs, ocspURL: responderURL, stapleAtStart: false)
        let staples = try directory("staples")
        try startResponder()
        let runs = try directory("runs")
        let result = try StaplerProcess.run(["--one-off", "-p", certs, "--staple-dir", staples, "--on-update",
                                             "sh -c 'cat > \"$0/stdin-$$\"' '\(runs)'"], in: temp.path)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(try recorded("stdin", in: runs), ["\(staples)\(site.bundle).ocsp\n"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(staples)\(site.bundle).ocsp"))
    }

    // MARK: The launcher

    func testTheCommandIsTheLaunchersChildAndTheDaemonStaysOneThreadThatNeverExecs() throws {
        let (stapler, runs, _) = try startWithOneNewStaple("sh -c 'echo $PPID > $0/parent-$$; cat /proc/$PPID/comm > $0/comm-$$'")
        stapler.expectLog("on-update: sh exited 0")

        let parent = try XCTUnwrap(Int32(try recorded("parent", in: runs).first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        XCTAssertNotEqual(parent, stapler.pid, "the daemon started the command itself")
        XCTAssertEqual(Self.parent(of: parent), stapler.pid, "the command's parent is the daemon's child")
        XCTAssertEqual(try recorded("comm", in: runs), ["stapler-hook\n"])
        XCTAssertEqual(Self.children(of: stapler.pid), [parent], "the launcher is the daemon's only child")
        XCTAssertTrue(stapler.log.contains("on-update: commands start from the launcher, pid \(parent), forked before confinement"),
                      stapler.log)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(stapler.pid)/exe"),
                       StaplerProcess.binary, "the daemon still runs stapler")
        XCTAssertEqual(stapler.threadCount, 1)
        stapler.stopCleanly()
    }

    func testTheLauncherEndsWhenTheDaemonIsKilled() throws {
        let certs = try directory("certs")
        let stapler = try startStapler(["-p", certs, "--on-update", "true"])
        stapler.expectLog("on-update: commands start from the launcher")
        let launcher = try XCTUnwrap(Self.children(of: stapler.pid).first, stapler.log)
        // The wait that must see it go sees it alive first.
        XCTAssertFalse(waitUntil(timeout: 1) { Self.hasEnded(launcher) }, "the launcher ended by itself")

        stapler.signal(SIGKILL)
        XCTAssertNotNil(stapler.waitForExit(timeout: 10))
        XCTAssertTrue(waitUntil(timeout: 5) { Self.hasEnded(launcher) }, "the launcher outlived the daemon")
    }

    func testStoppingTheDaemonStopsARunningCommandAndTheLauncher() throws {
        let (stapler, runs, _) = try startWithOneNewStaple(Self.hangingCommand)
        let command = try waitForCommandPID(in: runs, of: stapler)
        let launcher = try XCTUnwrap(Self.children(of: stapler.pid).first, stapler.log)
        XCTAssertFalse(waitUntil(timeout: 1) { Self.hasEnded(command) }, "the command ended by itself")

        stapler.stopCleanly()
        XCTAssertTrue(stapler.log.contains("on-update: stopping; sh (pid \(command)) sent SIGTERM"), stapler.log)
        XCTAssertTrue(waitUntil(timeout: 5) { Self.hasEnded(command) }, "the command outlived the daemon")
        XCTAssertTrue(waitUntil(timeout: 5) { Self.hasEnded(launcher) }, "the launcher outlived the daemon")
    }

    func testSIGHUPCannotChangeTheCommandButTheRestOfTheReloadApplies() throws {
        let certs = try directory("certs")
        let site = try pki.haproxySite("a", in: certs, ocspURL: responderURL, stapleAtStart: false)
        try startResponder()
        let runs = try directory("runs")
        func command(_ name: String) -> String {
            "sh -c 'echo \(name) >> $0/ran; test -e $0/hang && sleep 30; true' '\(runs)'"
        }
        let config = temp.file("stapler.conf")
        func writeConfig(command: String, timeout: Int) throws {
            try "cert-paths = [\(certs)]\non-update = \"\(command)\"\non-update-interval = 0\non-update-timeout = \(timeout)\n"
                .write(toFile: config, atomically: true, encoding: .utf8)
        }
        try writeConfig(command: command("A"), timeout: 60)
        let stapler = try startStapler(["-c", config])
        stapler.expectLog("on-update: sh exited 0")

        // B instead of A, and a timeout of 1 s instead of 60; A will hang from now on.
        try writeConfig(command: command("B"), timeout: 1)
        _ = FileManager.default.createFile(atPath: "\(runs)/hang", contents: Data())
        stapler.signal(SIGHUP)
        stapler.expectLog("configuration reloaded")
        XCTAssertTrue(stapler.log.contains(
            "WARNING SIGHUP: restart Stapler to change --on-update: the command is fixed when the sandbox is set at start"),
                      stapler.log)

        try responder!.revoke(site.leaf, in: pki)
        try Shell.run(["touch", site.bundle])
        stapler.expectLog("ERROR on-update: sh did not finish within 1 s, killed by signal 15 (Terminated)")
        XCTAssertEqual(try String(contentsOfFile: "\(runs)/ran", encoding: .utf8), "A\nA\n", "A ran again, B never")
        XCTAssertEqual(stapler.log.components(separatedBy: "restart Stapler to change --on-update").count - 1, 1)
        stapler.stopCleanly()
    }

    func testTheLauncherKillsAHungCommandOnTimeEvenWhileTheDaemonIsStopped() throws {
        let (stapler, runs, _) = try startWithOneNewStaple(Self.hangingCommand, ["--on-update-timeout", "1"])
        let command = try waitForCommandPID(in: runs, of: stapler)
        stapler.signal(SIGSTOP)
        defer { stapler.signal(SIGCONT) }
        XCTAssertTrue(waitUntil(timeout: 8) { Self.hasEnded(command) }, "the command outlived its timeout")
        stapler.signal(SIGCONT)
        stapler.expectLog("ERROR on-update: sh did not finish within 1 s, killed by signal 15 (Terminated)")
        stapler.stopCleanly()
    }

    func testTheLauncherRefusesAForgedRequestAndNeverRunsTheCommandWithIt() throws {
        let (stapler, runs, _) = try startWithOneNewStaple("sh -c 'cat > $0/stdin-$$'")
        stapler.expectLog("on-update: sh exited 0")
        XCTAssertEqual(try recorded("stdin", in: runs).count, 1, "the command records the runs it gets")
        let launcher = try XCTUnwrap(Self.children(of: stapler.pid).first, stapler.log)

        // What a daemon taken over could send: a run for a file that is no staple.
        let forged = LauncherRequest(staples: Array("/etc/shadow\n".utf8), timeout: .seconds(60), killGrace: .seconds(5))
        try SocketPairIntruder.send(FrameDecoder.frame(forged.encoded()), from: stapler.pid, toItsHelper: launcher)
        XCTAssertTrue(waitUntil(timeout: 5) { Self.hasEnded(launcher) }, "the launcher took the forged request")
        stapler.expectLog("ERROR on-update: the launcher (pid \(launcher)) is gone (it refused the daemon's request: "
                          + "staple list line 1: does not end in .ocsp): restart Stapler to run the command again")
        XCTAssertEqual(try recorded("stdin", in: runs).count, 1, "the command ran for the forged request")
        stapler.stopCleanly()
    }

    func testALauncherKilledByHandIsReportedAndLaterRunsSayToRestart() throws {
        let (stapler, _, site) = try startWithOneNewStaple("sh -c true")
        stapler.expectLog("on-update: sh exited 0")
        let launcher = try XCTUnwrap(Self.children(of: stapler.pid).first, stapler.log)
        kill(launcher, SIGKILL)
        let gone = "on-update: the launcher (pid \(launcher)) is gone (it was killed by signal 9 (Killed)): "
            + "restart Stapler to run the command again"
        stapler.expectLog("ERROR " + gone)

        try responder!.revoke(site.leaf, in: pki)
        try Shell.run(["touch", site.bundle])
        stapler.expectLog("ERROR " + gone + "; 1 changed staple(s) not announced")
        XCTAssertEqual(stapler.threadCount, 1)
        stapler.stopCleanly()
    }

    // MARK: Helpers

    /// Writes its pid into the directory it is given, then hangs.
    private static let hangingCommand = "sh -c 'echo $$ > $0/pid-$$; exec sleep 300'"

    /// Stapler with one certificate that has no staple yet (so one is written at start and
    /// announced), its responder, and `command` (a `sh -c '...'` that gets a directory for
    /// its records as `$0`) run with `--on-update-interval 0`.
    private func startWithOneNewStaple(_ command: String, _ more: [String] = []) throws
        -> (stapler: StaplerProcess, runs: String, site: HAProxySite) {
        let certs = try directory("certs")
        let site = try pki.haproxySite("a", in: certs, ocspURL: responderURL, stapleAtStart: false)
        try startResponder()
        let runs = try directory("runs")
        let stapler = try startStapler(["-p", certs, "--on-update", "\(command) '\(runs)'", "--on-update-interval", "0"] + more)
        return (stapler, runs, site)
    }

    /// The pid `hangingCommand` wrote, once it has.
    private func waitForCommandPID(in runs: String, of stapler: StaplerProcess,
                                   file: StaticString = #filePath, line: UInt = #line) throws -> Int32 {
        var pid: Int32?
        _ = waitUntil(timeout: 15) {
            pid = (try? self.recorded("pid", in: runs))?.first.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return pid != nil
        }
        return try XCTUnwrap(pid, "the command never wrote its pid:\n\(stapler.log)", file: file, line: line)
    }

    private func directory(_ name: String) throws -> String {
        let path = temp.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Started once the leaves exist: `openssl ocsp` reads its index when it starts.
    private func startResponder() throws {
        if responder == nil { responder = try OCSPResponderProcess(pki: pki, port: responderPort) }
    }

    private var staplerCount = 0

    private func startStapler(_ arguments: [String]) throws -> StaplerProcess {
        staplerCount += 1
        return try StaplerProcess(["-v", "-v", "-v"] + arguments, logPath: temp.file("stapler-\(staplerCount).log"))
    }

    /// nginx's new workers take a moment after `nginx -s reload` returns.
    private func expectStaple(_ expected: StapleSeenByClient, from nginx: NginxProcess, serverName: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        var seen: StapleSeenByClient?
        _ = waitUntil(timeout: 10, interval: 0.1) {
            seen = try? nginx.stapleSeen(serverName: serverName)
            return seen == expected
        }
        XCTAssertEqual(seen, expected, "TLS client asking nginx for \(serverName)", file: file, line: line)
    }

    /// The contents of every `<kind>-<pid>` file a recording command wrote into `directory`.
    private func recorded(_ kind: String, in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(kind + "-") }.map {
            try String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8)
        }
    }

    /// /proc/PID/stat after the command name (which may hold spaces and parentheses): the
    /// state, then the parent's pid.
    private static func stat(_ pid: Int32) -> (state: String, parent: Int32)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.range(of: ")", options: .backwards) else { return nil }
        let fields = text[close.upperBound...].split(separator: " ")
        guard fields.count > 1, let parent = Int32(fields[1]) else { return nil }
        return (String(fields[0]), parent)
    }

    private static func parent(of pid: Int32) -> Int32? { stat(pid)?.parent }

    private static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { parent(of: $0) == pid && !hasEnded($0) }.sorted()
    }

    /// Gone from /proc, or a zombie waiting for whoever reaps orphans.
    private static func hasEnded(_ pid: Int32) -> Bool {
        guard let status = stat(pid) else { return true }
        return status.state == "Z" || status.state == "X"
    }
}
