import Foundation
import TestSupport
import XCTest

/// The confined daemon as an operator meets it: `stapler sandbox-check` showing what this
/// kernel (Landlock ABI 7) enforces, a confined daemon stapling, a kernel that refuses Landlock
/// or seccomp (a seccomp filter set by contrib/sandbox/kernel-refuses.py makes
/// landlock_create_ruleset, or seccomp(2) and prctl(PR_SET_SECCOMP), fail as such a kernel
/// does), and SIGHUP asking for paths and ports outside the ruleset set at start.
final class SandboxEndToEndTests: XCTestCase {
    private final class Fixture {
        let directory: TemporaryDirectory
        let pki: TestPKI
        let port: UInt16
        let responder: OCSPResponderProcess
        private var pool: [TestPKI.Leaf]

        init() throws {
            directory = try TemporaryDirectory(prefix: "stapler-sandbox-pki")
            pki = try TestPKI(directory: directory.file("ca"))
            port = freeLoopbackPort()
            pool = try pki.issueLeaves(count: 12, ocspURLs: ["http://127.0.0.1:\(port)/"])
            responder = try OCSPResponderProcess(pki: pki, port: port)
        }

        func leaf() throws -> TestPKI.Leaf {
            // An exhausted pool is a fixture bug: fail, never skip.
            guard !pool.isEmpty else { throw FixtureError.leafPoolExhausted }
            return pool.removeFirst()
        }
    }

    private enum FixtureError: Error, CustomStringConvertible {
        case leafPoolExhausted
        var description: String { "the leaf pool is too small: issue more in Fixture.init" }
    }

    private static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    private static let shared = SharedFixture(make: { try Fixture() }, release: { $0.responder.stop() })
    private var fixture: Fixture!
    private var temp: TemporaryDirectory!
    private var stapler: StaplerProcess?

    override func setUpWithError() throws {
        fixture = try Self.shared.value()
        temp = try TemporaryDirectory(prefix: "stapler-sandbox")
    }

    override func tearDown() {
        if let stapler, (testRun?.totalFailureCount ?? 0) > 0 {
            print("---- stapler log ----\n\(stapler.log.suffix(6000))\n---- end ----")
        }
        stapler = nil
        temp = nil
        fixture = nil
    }

    override class func tearDown() {
        shared.tearDown()
        super.tearDown()
    }

    private func directory(_ name: String) throws -> String { try temp.directory(name) }

    /// A certificate bundle the shared responder answers for, written into `directory`.
    @discardableResult
    private func site(in directory: String, name: String = "site") throws -> String {
        let path = "\(directory)/\(name).pem"
        try fixture.pki.writeBundle(try fixture.leaf(), to: path)
        return path
    }

    private func start(_ arguments: [String], environment: [String: String]? = nil) throws -> StaplerProcess {
        let process = try StaplerProcess(["--no-daemon", "-v", "-v", "-r", "3600"] + arguments,
                                         logPath: temp.file("stapler-\(UUID().uuidString).log"), environment: environment)
        stapler = process
        return process
    }

    private func linesOf(_ output: String, containing text: String) -> [Substring] {
        output.split(separator: "\n").filter { $0.contains(text) }
    }

    // MARK: sandbox-check

    func testSandboxCheckWithADaemonsOptionsRefusesEveryForbiddenActionAndDoesEveryAllowedOne() throws {
        let certs = try directory("certs")
        let logs = try directory("logs")
        let run = try directory("run")
        let etc = try directory("etc")
        let config = "\(etc)/stapler.conf"
        try "cert-paths = [\(certs)]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let metricsPort = freeLoopbackPort()
        let options = ["-c", config, "--metrics", "127.0.0.1:\(metricsPort)", "--logdir", logs,
                       "--pidfile", "\(run)/stapler.pid"]

        let confined = try StaplerProcess.run(["sandbox-check"] + options, in: temp.path)
        XCTAssertEqual(confined.status, 0, confined.output)
        XCTAssertTrue(confined.output.hasPrefix("sandbox: Landlock ABI "), confined.output)
        let results = confined.output.split(separator: "\n").filter { $0.hasPrefix("ok   ") || $0.hasPrefix("FAIL ") }
        let forbidden = results.filter { $0.dropFirst(5).hasPrefix("forbidden ") }
        XCTAssertGreaterThanOrEqual(forbidden.count, 15, confined.output)
        for line in forbidden {
            XCTAssertTrue(line.hasPrefix("ok   forbidden ") && (line.contains(": EACCES (") || line.contains(": EPERM (")),
                          "every forbidden action fails with EACCES or EPERM: \(line)")
        }
        for expected in ["create a file in /tmp: EACCES", "read /etc/shadow: EACCES",
                         "open the config file \(config) for writing: EACCES", "connect to 127.0.0.1:9: EACCES",
                         "bind 127.0.0.1:\(metricsPort &+ 1): EACCES", "execve /bin/sh: EPERM",
                         "start a process (clone without CLONE_THREAD): EPERM", "ptrace(PTRACE_ATTACH): EPERM",
                         "mount(2): EPERM", "kexec_load(2): EPERM", "bpf(2): EPERM", "init_module(2): EPERM",
                         "finit_module(2): EPERM", "delete_module(2): EPERM", "execveat(2): EPERM"] {
            XCTAssertEqual(linesOf(confined.output, containing: "ok   forbidden \(expected)").count, 1,
                           "\(expected):\n\(confined.output)")
        }
        let allowed = results.filter { !$0.dropFirst(5).hasPrefix("forbidden ") }
        XCTAssertTrue(allowed.allSatisfy { $0.hasPrefix("ok   allowed ") }, confined.output)
        for expected in ["create, write and remove a file in \(certs): succeeded",
                         "create, write and remove a file in \(logs): succeeded",
                         "create, write and remove a file in \(run): succeeded", "read \(etc): succeeded",
                         "connect to 127.0.0.1:80: ", "bind 127.0.0.1:\(metricsPort) (--metrics): succeeded",
                         "start a thread (curl's resolver): succeeded"] {
            XCTAssertEqual(linesOf(confined.output, containing: "ok   allowed   \(expected)").count, 1,
                           "\(expected):\n\(confined.output)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: certs), [], "the probe file is removed")

        // The same check unconfined: it does see the forbidden actions succeed.
        let open = try StaplerProcess.run(["sandbox-check", "--no-sandbox"] + options, in: temp.path)
        XCTAssertEqual(open.status, 1, open.output)
        XCTAssertTrue(open.output.contains("FAIL forbidden create a file in /tmp: succeeded"), open.output)
        XCTAssertTrue(open.output.contains("FAIL forbidden start a process (clone without CLONE_THREAD): succeeded"),
                      open.output)
    }

    func testWithAStapleDirectoryTheCertificatesCannotBeWritten() throws {
        let certs = try directory("certs")
        let staples = temp.file("staples")
        let check = try StaplerProcess.run(["sandbox-check", "--staple-dir", staples, certs], in: temp.path)
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.output.contains("ok   forbidden create a file beside the certificates in \(certs) "
                                            + "(--staple-dir): EACCES"), check.output)
        XCTAssertTrue(check.output.contains("ok   allowed   create, write and remove a file in \(staples): succeeded"),
                      check.output)
        XCTAssertTrue(check.output.contains("ok   allowed   read \(certs): succeeded"), check.output)
    }

    // MARK: The confined daemon

    func testTheConfinedDaemonSaysWhatItAppliedAndStaples() throws {
        let certs = try directory("certs")
        let bundle = try site(in: certs)
        let daemon = try start([certs])
        daemon.expectLog("\(bundle): staple written")
        let log = daemon.log
        XCTAssertEqual(linesOf(log, containing: "INFO sandbox: Landlock ABI ").count, 1, log)
        XCTAssertTrue(log.contains("seccomp: "), log)
        XCTAssertTrue(log.contains("INFO sandbox: TCP connect only to port(s) 53, 80, 443, \(fixture.port); bind only none"),
                      log)
        XCTAssertFalse(log.contains("WARNING"), log)
        daemon.stopCleanly()
    }

    func testTheDaemonStartsAndStaplesWithOneWarningWhenTheKernelRefusesLandlockOrSeccomp() throws {
        let refuse = "\(Self.repository)/contrib/sandbox/kernel-refuses.py"
        let config = temp.file("empty.conf")
        try "".write(toFile: config, atomically: true, encoding: .utf8)
        for (mechanism, refusal) in [("landlock", "Landlock refused by the kernel (landlock_create_ruleset: "
                                      + "Function not implemented): file access NOT confined; seccomp: "),
                                     ("seccomp", "; seccomp refused by the kernel (seccomp_load: Invalid argument): "
                                      + "system calls NOT confined")] {
            let certs = try directory("certs-\(mechanism)")
            let bundle = try site(in: certs)
            let run = try Shell.run([refuse, mechanism, "--", StaplerProcess.binary, "--one-off", "-v", "-v",
                                     "-c", config, certs], allowFailure: true)
            XCTAssertEqual(run.status, 0, run.output)
            XCTAssertTrue(FileManager.default.fileExists(atPath: bundle + ".ocsp"), "stapled anyway:\n\(run.output)")
            let warnings = linesOf(run.output, containing: "WARNING")
            XCTAssertEqual(warnings.count, 1, run.output)
            XCTAssertTrue(warnings.first?.contains(refusal) ?? false, run.output)
        }
    }

    // MARK: SIGHUP and later certificates

    func testSIGHUPRefusesAPathOutsideTheSandboxAndAppliesTheRest() throws {
        let certs = try directory("certs")
        let inside = try directory("certs/inside")
        let outside = try directory("outside")
        let etc = try directory("etc")
        try site(in: certs)
        let insideBundle = try site(in: inside)
        let outsideBundle = try site(in: outside)
        let config = "\(etc)/stapler.conf"
        try "cert-paths = [\(certs)]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try start(["-c", config])
        daemon.expectLog("staple written")

        try "cert-paths = [\(certs), \(inside), \(outside)]\n".write(toFile: config, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        daemon.expectLog("configuration reloaded")
        daemon.expectLog("\(insideBundle): staple written")
        let log = daemon.log
        XCTAssertEqual(linesOf(log, containing: "restart Stapler to watch \(outside): outside the sandbox set at start").count,
                       1, log)
        XCTAssertFalse(log.contains(outsideBundle), log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: outsideBundle + ".ocsp"))
        daemon.stopCleanly()
    }

    func testSIGHUPKeepsTheMetricsPortTheSandboxAllows() throws {
        let certs = try directory("certs")
        try site(in: certs)  // its responder's port closes the network to all others
        let etc = try directory("etc")
        let config = "\(etc)/stapler.conf"
        let first = freeLoopbackPort()
        var second = freeLoopbackPort()
        while second == first { second = freeLoopbackPort() }
        try "cert-paths = [\(certs)]\nmetrics = 127.0.0.1:\(first)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try start(["-c", config])
        daemon.expectLog("sandbox: TCP connect only to port(s)")
        XCTAssertEqual(try scrape(first), "200")

        try "cert-paths = [\(certs)]\nmetrics = 127.0.0.1:\(second)\nverbosity = 4\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        daemon.expectLog("configuration reloaded")
        daemon.expectLog("restart Stapler to serve metrics on port \(second): outside the sandbox set at start")
        XCTAssertEqual(try scrape(first), "200", "the endpoint stays where the sandbox allows it")
        XCTAssertNotEqual(try scrape(second), "200")
        daemon.stopCleanly()
    }

    func testACertificateNamingANewPortLaterGetsOneLine() throws {
        let certs = try directory("certs")
        try site(in: certs)
        let daemon = try start([certs])
        daemon.expectLog("staple written")

        let newPort = freeLoopbackPort()
        let elsewhere = try fixture.pki.issueLeaf(commonName: "elsewhere.test", ocspURLs: ["http://127.0.0.1:\(newPort)/"])
        try fixture.pki.writeBundle(elsewhere, to: "\(certs)/elsewhere.pem")
        let known = try site(in: certs, name: "known")
        daemon.expectLog("\(known): staple written")
        daemon.expectLog("restart Stapler to reach port \(newPort) (http://127.0.0.1:\(newPort)/): "
                         + "outside the sandbox set at start")
        try Shell.run(["touch", "\(certs)/elsewhere.pem"])
        daemon.expectLog("\(certs)/elsewhere.pem", count: 3)
        XCTAssertEqual(linesOf(daemon.log, containing: "restart Stapler to reach port \(newPort)").count, 1,
                       "said once:\n\(daemon.log)")
        daemon.stopCleanly()
    }

    /// Certificates are read a slice per pass of the loop: the TCP layer must wait for the
    /// last slice of the first scan, or a responder port named only there would be shut out.
    func testAResponderPortNamedOnlyBeyondTheFirstSliceOfTheScanIsAllowed() throws {
        let pki = try TestPKI(directory: temp.file("many-ca"))
        let (firstPort, lastPort) = (freeLoopbackPort(), freeLoopbackPort())
        let many = try pki.issueLeaves(count: 260, commonName: "many.test", ocspURLs: ["http://127.0.0.1:\(firstPort)/"])
        let last = try pki.issueLeaf(commonName: "last.test", ocspURLs: ["http://127.0.0.1:\(lastPort)/"])
        let first = try OCSPResponderProcess(pki: pki, port: firstPort)
        defer { first.stop() }
        let second = try OCSPResponderProcess(pki: pki, port: lastPort)
        defer { second.stop() }
        // Locations are scanned in order: the 260 of the first fill more than one slice.
        let early = try directory("early")
        for (index, leaf) in many.enumerated() { try pki.writeBundle(leaf, to: "\(early)/site\(index).pem") }
        let late = try directory("late")
        try pki.writeBundle(last, to: "\(late)/last.pem")

        let daemon = try start([early, late])
        daemon.expectLog("\(late)/last.pem: staple written")
        daemon.expectLog("sandbox: TCP connect only to port(s)")
        let log = daemon.log
        XCTAssertTrue(log.contains("\(firstPort)") && linesOf(log, containing: "TCP connect only to port(s)")
            .first?.contains("\(lastPort)") == true, log)
        XCTAssertFalse(log.contains("restart Stapler to reach port \(lastPort)"), log)
        daemon.stopCleanly()
    }

    /// The HTTP status of a scrape, or curl's failure.
    private func scrape(_ port: UInt16) throws -> String {
        let result = try Shell.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                    "http://127.0.0.1:\(port)/metrics"], allowFailure: true)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
