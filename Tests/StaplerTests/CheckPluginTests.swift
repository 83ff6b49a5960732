import Foundation
import TestSupport
import XCTest

/// `stapler check` as Nagios, Icinga, Zabbix agents and Sensu call it: the built binary run
/// as a process on staples made by a real OpenSSL CA, its standard output and exit status
/// read the way the monitoring-plugins guidelines define them.
final class CheckPluginTests: XCTestCase {
    // MARK: Shared fixture

    /// One PKI, made once for the class: a good, a revoked and a no-OCSP leaf, and staples
    /// of several lifetimes.
    private final class Fixture {
        let temp: TemporaryDirectory
        let pki: TestPKI
        let good: [TestPKI.Leaf]
        let revoked: TestPKI.Leaf
        let noOCSP: TestPKI.Leaf
        /// Staples for good[0] (a day), good[1] (30 minutes), revoked (a day).
        let dayStaple: Data
        let halfHourStaple: Data
        let revokedStaple: Data

        init() throws {
            temp = try TemporaryDirectory(prefix: "stapler-check")
            pki = try TestPKI(directory: temp.file("pki"))
            // Nothing listens there; only --fetch would ask.
            let nowhere = "http://127.0.0.1:\(freeLoopbackPort())/"
            good = try pki.issueLeaves(count: 3, commonName: "good.test", ocspURLs: [nowhere])
            revoked = try pki.issueLeaf(commonName: "revoked.test", ocspURLs: [nowhere])
            noOCSP = try pki.issueLeaf(commonName: "no-ocsp.test", ocspURLs: [])
            try pki.revoke(revoked)
            dayStaple = try pki.ocspResponse(for: good[0])
            halfHourStaple = try pki.ocspResponse(for: good[1], validForMinutes: 30)
            revokedStaple = try pki.ocspResponse(for: revoked)
        }
    }

    private static let shared = SharedFixture(make: { try Fixture() }, release: { _ in })

    override class func tearDown() {
        shared.tearDown()
        super.tearDown()
    }

    private var fixture: Fixture!
    private var work: TemporaryDirectory!
    /// Certificate files of this test, by role.
    private var fresh = "", expiring = "", missing = "", revoked = "", plain = ""

    override func setUpWithError() throws {
        fixture = try Self.shared.value()
        work = try TemporaryDirectory(prefix: "stapler-check-test")
        let pki = fixture.pki
        fresh = work.file("fresh.pem")
        try pki.writeBundle(fixture.good[0], to: fresh)
        try fixture.dayStaple.write(to: URL(fileURLWithPath: fresh + ".ocsp"))
        expiring = work.file("expiring.pem")
        try pki.writeBundle(fixture.good[1], to: expiring)
        try fixture.halfHourStaple.write(to: URL(fileURLWithPath: expiring + ".ocsp"))
        missing = work.file("missing.pem")
        try pki.writeBundle(fixture.good[2], to: missing)
        revoked = work.file("revoked.pem")
        try pki.writeBundle(fixture.revoked, to: revoked)
        try fixture.revokedStaple.write(to: URL(fileURLWithPath: revoked + ".ocsp"))
        plain = work.file("plain.pem")
        try pki.writeBundle(fixture.noOCSP, to: plain)
    }

    override func tearDown() {
        work = nil
        fixture = nil
    }

    // MARK: Statuses and exit codes

    func testEachStatusHasItsExitCodeAndFirstLine() throws {
        let cases: [(arguments: [String], status: Int32, firstLine: String)] = [
            ([fresh], 0, "STAPLER OK - 1 certificate: \(fresh): staple good, valid for "),
            ([plain], 0, "STAPLER OK - 1 certificate: \(plain): "),
            ([expiring], 1, "STAPLER WARNING - 1 certificate: \(expiring): staple valid for "),
            ([missing], 2, "STAPLER CRITICAL - 1 certificate: \(missing): staple missing"),
            ([revoked], 2, "STAPLER CRITICAL - 1 certificate: \(revoked): certificate REVOKED"),
            // The thresholds move the verdict: 30 minutes left is fine under -w 600 and
            // critical under -c 3600.
            (["-w", "600", expiring], 0, "STAPLER OK - 1 certificate: \(expiring): staple good"),
            (["--minimum-validity", "600", expiring], 0, "STAPLER OK - "),
            (["-c", "3600", expiring], 2, "STAPLER CRITICAL - 1 certificate: \(expiring): staple valid for "),
            (["--critical=3600", "--warning", "7200", fresh], 0, "STAPLER OK - "),
            // Usage errors and an unreadable config file are UNKNOWN, not CRITICAL.
            (["--recursive", fresh], 3, "STAPLER UNKNOWN - unknown option \"--recursive\""),
            (["-c", fresh], 3, "STAPLER UNKNOWN - --critical: "),
            (["-w", "soon", fresh], 3, "STAPLER UNKNOWN - --warning: \"soon\" is not a whole number"),
            (["-t", "0", "--fetch", fresh], 3, "STAPLER UNKNOWN - --timeout: \"0\" is out of range"),
            (["--config", work.file("absent.conf"), fresh], 3, "STAPLER UNKNOWN - "),
            ([], 3, "STAPLER UNKNOWN - check: give at least one certificate file"),
        ]
        for (arguments, status, firstLine) in cases {
            let run = try check(arguments)
            XCTAssertEqual(run.status, status, "\(arguments): \(run.stdout)")
            XCTAssertTrue(run.stdout.hasPrefix(firstLine), "\(arguments): \(run.stdout)")
            XCTAssertEqual(run.stderr, "", "\(arguments): nothing on standard error")
        }
        // An unreadable config file names itself.
        XCTAssertTrue(try check(["--config", work.file("absent.conf"), fresh]).stdout.contains(work.file("absent.conf")))
        // -h and -V are the reserved help and version, exit 0.
        let help = try check(["-h"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("-w, --warning SECONDS"), help.stdout)
        XCTAssertEqual(try check(["-V"]).status, 0)
        XCTAssertTrue(try check(["-V"]).stdout.hasPrefix("stapler "))
    }

    /// Several certificates: the worst status wins the first line and the exit code, and
    /// every certificate still gets its own line.
    func testWithMixedCertificatesTheWorstStatusWinsAndEachCertificateGetsALine() throws {
        let warning = try check([fresh, expiring, plain])
        XCTAssertEqual(warning.status, 1, warning.stdout)
        XCTAssertTrue(warning.stdout.hasPrefix("STAPLER WARNING - 3 certificates: \(expiring): "), warning.stdout)

        let critical = try check([fresh, expiring, revoked, missing, plain])
        XCTAssertEqual(critical.status, 2, critical.stdout)
        let lines = critical.stdout.split(separator: "\n").map(String.init)
        // Of the two CRITICAL ones, the one without any staple is the most urgent.
        XCTAssertTrue(lines[0].hasPrefix("STAPLER CRITICAL - 5 certificates: \(missing): staple missing"), lines[0])
        XCTAssertTrue(lines[0].contains("(and 1 more CRITICAL) | "), lines[0])
        XCTAssertTrue(lines[0].hasSuffix(" ok=2;;;0 warning=1;;;0 critical=2;;;0"), lines[0])
        XCTAssertEqual(lines.count, 6, "line 1 and one line per certificate: \(critical.stdout)")
        for (index, (path, status)) in [(fresh, "OK"), (expiring, "WARNING"), (revoked, "CRITICAL"),
                                         (missing, "CRITICAL"), (plain, "OK")].enumerated() {
            XCTAssertTrue(lines[index + 1].hasPrefix("\(status): \(path): "), lines[index + 1])
        }

        // -v adds every detail under each certificate.
        let verbose = try check(["-v", fresh, missing])
        XCTAssertEqual(verbose.status, 2)
        XCTAssertTrue(verbose.stdout.contains("\n    CertID: "), verbose.stdout)
        XCTAssertTrue(verbose.stdout.contains("\n    staple: \(fresh).ocsp verifies: good"), verbose.stdout)
        XCTAssertFalse(try check([fresh, missing]).stdout.contains("CertID"), "without -v, one line each")
    }

    // MARK: Performance data

    /// Line 1's performance data read with the monitoring-plugins grammar:
    /// `'label'=value[UOM];[warn];[crit];[min];[max]`, labels quoted when they hold spaces,
    /// a quote in a label doubled, no `=` in a label, thresholds in range format.
    func testPerformanceDataFollowsTheMonitoringPluginsGrammar() throws {
        // A file name with a space, a quote, an equals sign and a bar: none may break the line.
        let odd = work.file("odd name's=x|y.pem")
        try fixture.pki.writeBundle(fixture.good[0], to: odd)
        try fixture.dayStaple.write(to: URL(fileURLWithPath: odd + ".ocsp"))

        let run = try check(["-w", "3600", "-c", "60", fresh, expiring, missing, plain, odd])
        XCTAssertEqual(run.status, 2)
        let firstLine = try XCTUnwrap(run.stdout.split(separator: "\n").first.map(String.init))
        let parts = firstLine.components(separatedBy: " | ")
        XCTAssertEqual(parts.count, 2, "exactly one '|' on line 1: \(firstLine)")
        XCTAssertFalse(run.stdout.split(separator: "\n").dropFirst().contains { $0.contains("|") },
                       "a '|' on a later line would start more performance data")

        let items = try Self.performanceData(parts[1])
        let byLabel = Dictionary(items.map { ($0.label, $0) }, uniquingKeysWith: { first, _ in first })
        XCTAssertEqual(items.count, 4 + 3, "one per certificate with an OCSP URL, three counts: \(parts[1])")
        let day = try XCTUnwrap(byLabel[fresh])
        XCTAssertEqual(day.unit, "s")
        XCTAssertEqual(day.value, 86_400, accuracy: 300)
        XCTAssertEqual(day.warn, "3600:")
        XCTAssertEqual(day.crit, "60:")
        XCTAssertEqual(day.min, "0")
        XCTAssertEqual(try XCTUnwrap(byLabel[expiring]).value, 1800, accuracy: 300)
        XCTAssertEqual(try XCTUnwrap(byLabel[missing]).value, 0, "no staple, no validity left")
        XCTAssertNil(byLabel[plain], "no OCSP URL, nothing to measure")
        XCTAssertEqual(try XCTUnwrap(byLabel[work.file("odd name's_x\\x7cy.pem")]).value, 86_400, accuracy: 300)
        XCTAssertEqual(byLabel["ok"]?.value, 3)
        XCTAssertEqual(byLabel["warning"]?.value, 1)
        XCTAssertEqual(byLabel["critical"]?.value, 1)
    }

    // MARK: Timeout

    /// `-t` bounds `--fetch` as a whole: a responder that never answers costs the timeout,
    /// not the exchange's own 15 s, and the report still comes.
    func testTimeoutBoundsTheFetchOfAResponderThatNeverAnswers() throws {
        let hostile = try HostileResponder()
        defer { hostile.stop() }
        hostile.set(.hang, for: "hang")
        let leaf = try fixture.pki.issueLeaf(commonName: "hang.test", ocspURLs: [hostile.url(route: "hang")])
        let bundle = work.file("hang.pem")
        try fixture.pki.writeBundle(leaf, to: bundle)

        let started = Date()
        let run = try check(["--fetch", "-t", "2", bundle])
        let took = Date().timeIntervalSince(started)

        XCTAssertEqual(run.status, 2, "no staple on disk: \(run.stdout)")
        XCTAssertEqual(hostile.requestCount(route: "hang"), 1, "the fetch was really tried")
        XCTAssertTrue(run.stdout.contains("    fetch: "), run.stdout)
        XCTAssertGreaterThanOrEqual(took, 2, "the timeout was waited for")
        XCTAssertLessThan(took, 10, "the timeout, not the exchange's 15 s: \(run.stdout)")
    }

    // MARK: Helpers

    /// One item of performance data, as the grammar splits it.
    private struct PerformanceItem {
        var label: String
        var value: Double
        var unit: String
        var warn: String
        var crit: String
        var min: String
        var max: String
    }

    /// Splits performance data by the monitoring-plugins grammar, failing on anything else.
    private static func performanceData(_ text: String) throws -> [PerformanceItem] {
        let range = #"(?:@?(?:~|-?[0-9.]+)?:?(?:-?[0-9.]+)?)"#
        // Trailing empty fields may be left out with their semicolons.
        let item = #"('(?:[^'=]|'')+'|[^' =]+)=(-?[0-9.]+|U)([a-zA-Z%]*)(?:;(\#(range))?(?:;(\#(range))?(?:;(-?[0-9.]*)(?:;(-?[0-9.]*))?)?)?)?"#
        let pattern = try NSRegularExpression(pattern: #"^\#(item)(?: \#(item))*$"#)
        let whole = NSRange(text.startIndex..., in: text)
        XCTAssertNotNil(pattern.firstMatch(in: text, range: whole), "not monitoring-plugins performance data: \(text)")
        let single = try NSRegularExpression(pattern: item)
        return single.matches(in: text, range: whole).map { match in
            func group(_ index: Int) -> String {
                Range(match.range(at: index), in: text).map { String(text[$0]) } ?? ""
            }
            var label = group(1)
            if label.hasPrefix("'") {
                label = String(label.dropFirst().dropLast()).replacingOccurrences(of: "''", with: "'")
            }
            return PerformanceItem(label: label, value: Double(group(2)) ?? .nan, unit: group(3), warn: group(4),
                                   crit: group(5), min: group(6), max: group(7))
        }
    }

    /// Runs `stapler check ARGUMENTS`, standard output and standard error apart.
    private func check(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: StaplerProcess.binary)
        process.arguments = ["check"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: work.path)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = "/nonexistent"
        process.environment = environment
        let stdout = Pipe()
        let stderrPath = work.file("stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: stderrPath, contents: Data())
        process.standardOutput = stdout
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let err = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), err)
    }
}
