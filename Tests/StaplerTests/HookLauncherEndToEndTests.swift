import Foundation
import TestSupport
import XCTest

/// The `--on-update` launcher as an operator meets it: the command is started by a helper
/// forked before confinement, never by the daemon; the helper dies with the daemon, however
/// the daemon ends; a SIGHUP cannot change the command, while the rest of the reload applies.
final class HookLauncherEndToEndTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!
    private var responderPort: UInt16 = 0
    private var responderURL: String { "http://127.0.0.1:\(responderPort)/" }
    private var responder: OCSPResponderProcess?

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-launcher")
        pki = try TestPKI(directory: temp.file("pki"))
        responderPort = freeLoopbackPort()
    }

    override func tearDown() {
        responder = nil
        pki = nil
        temp = nil
    }

    func testTheCommandIsTheLaunchersChildAndTheDaemonStaysOneThreadThatNeverExecs() throws {
        let certs = try directory("certs")
        _ = try pki.haproxySite("a", in: certs, ocspURL: responderURL, stapleAtStart: false)
        try startResponder()
        let runs = try directory("runs")
        let record = "sh -c 'echo $PPID > $0/parent-$$; cat /proc/$PPID/comm > $0/comm-$$' '\(runs)'"
        let stapler = try startStapler(["-p", certs, "--on-update", record, "--on-update-interval", "0"])
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
        let certs = try directory("certs")
        _ = try pki.haproxySite("a", in: certs, ocspURL: responderURL, stapleAtStart: false)
        try startResponder()
        let runs = try directory("runs")
        let stapler = try startStapler(["-p", certs, "--on-update", "sh -c 'echo $$ > $0/pid; exec sleep 300' '\(runs)'",
                                        "--on-update-interval", "0"])
        var recordedPID: Int32?
        XCTAssertTrue(waitUntil(timeout: 15) {
            recordedPID = (try? self.recorded("pid", in: runs))?.first
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return recordedPID != nil
        }, stapler.log)
        let command = try XCTUnwrap(recordedPID)
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

    // MARK: Helpers

    private func directory(_ name: String) throws -> String {
        let path = temp.file(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func startResponder() throws {
        if responder == nil { responder = try OCSPResponderProcess(pki: pki, port: responderPort) }
    }

    private var staplerCount = 0

    private func startStapler(_ arguments: [String]) throws -> StaplerProcess {
        staplerCount += 1
        return try StaplerProcess(["-v", "-v", "-v"] + arguments, logPath: temp.file("stapler-\(staplerCount).log"))
    }

    /// The contents of every `<kind>-<pid>` (or `<kind>`) file a recording command wrote.
    private func recorded(_ kind: String, in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0 == kind || $0.hasPrefix(kind + "-") }.map {
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
