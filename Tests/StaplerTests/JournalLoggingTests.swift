import Foundation
import TestSupport
import XCTest
@testable import Stapler

/// Under systemd, standard output goes to the journal, which stores a line without a `<N>`
/// prefix at priority info: `journalctl -p warning -u stapler` would hide a revoked
/// certificate. Stapler prefixes its lines with their syslog priority, and leaves out its
/// own timestamp, only when `$JOURNAL_STREAM` names its standard output.
final class JournalLoggingTests: XCTestCase {
    // MARK: - $JOURNAL_STREAM

    func testJournalStreamReadsTheDeviceAndInodeSystemdWrites() {
        XCTAssertEqual(JournalStream("2049:1234567"), JournalStream(device: 2049, inode: 1_234_567))
        XCTAssertEqual(JournalStream("0:18446744073709551615"), JournalStream(device: 0, inode: UInt64.max))
        for bad in ["", ":", "1:", ":1", "1", "1:2:3", "+1:2", "-1:2", "1:-2", " 1:2", "1:2 ", "1:2\n", "1 :2",
                    "0x10:2", "18446744073709551616:1", "1:99999999999999999999", "\u{FF11}:2", "1;2"] {
            XCTAssertNil(JournalStream(bad), "\"\(bad)\" is not what systemd writes")
        }
    }

    func testOnlyTheStreamStandardOutputIsOpenOnCounts() throws {
        var output = stat()
        XCTAssertEqual(fstat(STDOUT_FILENO, &output), 0)
        let matching = "\(output.st_dev):\(output.st_ino)"
        XCTAssertTrue(JournalStream.isStandardOutput(environment: ["JOURNAL_STREAM": matching]))
        XCTAssertFalse(JournalStream.isStandardOutput(environment: ["JOURNAL_STREAM": "\(output.st_dev):\(output.st_ino &+ 1)"]))
        XCTAssertFalse(JournalStream.isStandardOutput(environment: ["JOURNAL_STREAM": "\(output.st_dev &+ 1):\(output.st_ino)"]))
        XCTAssertFalse(JournalStream.isStandardOutput(environment: ["JOURNAL_STREAM": matching + "x"]))
        XCTAssertFalse(JournalStream.isStandardOutput(environment: [:]))
    }

    // MARK: - The daemon's output, end to end

    /// One pass over a revoked, an unreachable, an expired, an OCSP-less and a good
    /// certificate at debug verbosity: every level appears once at least. With its standard
    /// output as the journal every line carries the priority journald files it under; with
    /// `$JOURNAL_STREAM` naming another file (a child whose output was redirected) the
    /// lines are as before.
    func testLinesCarryTheirSyslogPriorityOnlyWhenStandardOutputIsTheJournal() throws {
        let work = try TemporaryDirectory(prefix: "stapler-journal")
        let pki = try TestPKI(directory: work.file("pki"))
        let port = freeLoopbackPort()
        let live = "http://127.0.0.1:\(port)/"
        let dead = "http://127.0.0.1:\(freeLoopbackPort())/"
        let revoked = try pki.issueLeaf(commonName: "revoked.test", ocspURLs: [live])
        let leaves = [("revoked", revoked),
                      ("good", try pki.issueLeaf(commonName: "good.test", ocspURLs: [live])),
                      ("unreachable", try pki.issueLeaf(commonName: "unreachable.test", ocspURLs: [dead])),
                      ("expired", try pki.issueLeaf(commonName: "expired.test", ocspURLs: [live], expired: true)),
                      ("no-ocsp", try pki.issueLeaf(commonName: "no-ocsp.test", ocspURLs: []))]
        try pki.revoke(revoked)
        // openssl ocsp reads the CA's index once: started after every issue and revocation.
        let responder = try OCSPResponderProcess(pki: pki, port: port)
        defer { responder.stop() }
        func pass(_ name: String, journal: Bool, environment: [String: String]? = nil) throws -> [String] {
            let certs = work.file(name)
            try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
            for (file, leaf) in leaves { try pki.writeBundle(leaf, to: "\(certs)/\(file).pem") }
            let stapler = try StaplerProcess(["--one-off", "-vv", "--no-haproxy-sockets", certs],
                                             logPath: work.file("\(name).log"), environment: environment,
                                             standardOutputIsJournal: journal)
            XCTAssertEqual(stapler.waitForExit(), 1, "the unreachable certificate fails the pass:\n\(stapler.log)")
            return stapler.log.split(separator: "\n").map(String.init)
        }

        let journal = try pass("journal", journal: true)
        let records = journal.map(Self.journaldRecord)
        XCTAssertGreaterThan(records.count, 5, journal.joined(separator: "\n"))
        for (line, record) in zip(journal, records) {
            XCTAssertTrue(line.hasPrefix("<"), "no priority prefix: \(line)")
            XCTAssertNil(record.message.range(of: "^" + Self.timestamp, options: .regularExpression),
                         "a second timestamp under journald: \(line)")
            XCTAssertTrue(record.message.hasPrefix(Self.labels[record.priority]! + " "),
                          "priority \(record.priority) on: \(line)")
        }
        func priorities(of certificate: String, saying text: String) -> Set<Int> {
            Set(records.filter { $0.message.contains("/\(certificate).pem: ") && $0.message.contains(text) && $0.priority < 7 }
                .map(\.priority))
        }
        XCTAssertEqual(priorities(of: "revoked", saying: "REVOKED"), [2], journal.joined(separator: "\n"))
        XCTAssertEqual(priorities(of: "unreachable", saying: "OCSP fetch failed"), [3], journal.joined(separator: "\n"))
        XCTAssertEqual(priorities(of: "expired", saying: "expired at"), [4], journal.joined(separator: "\n"))
        XCTAssertEqual(priorities(of: "no-ocsp", saying: "no OCSP responder URL"), [6], journal.joined(separator: "\n"))
        XCTAssertTrue(records.contains { $0.priority == 7 }, "no debug line at -vv:\n\(journal.joined(separator: "\n"))")
        // What `journalctl -p warning` shows: the three certificates that need an operator.
        let warningOrWorse = records.filter { $0.priority <= 4 }.map(\.message).joined(separator: "\n")
        for certificate in ["revoked", "unreachable", "expired"] {
            XCTAssertTrue(warningOrWorse.contains("/\(certificate).pem"), warningOrWorse)
        }

        // JOURNAL_STREAM inherited, but standard output is another file: today's format.
        let other = work.file("elsewhere")
        XCTAssertTrue(FileManager.default.createFile(atPath: other, contents: Data()))
        var status = stat()
        XCTAssertEqual(stat(other, &status), 0)
        var environment = ProcessInfo.processInfo.environment
        environment["JOURNAL_STREAM"] = "\(status.st_dev):\(status.st_ino)"
        let plain = try pass("plain", journal: false, environment: environment)
        XCTAssertGreaterThan(plain.count, 5, plain.joined(separator: "\n"))
        for line in plain {
            XCTAssertNotNil(line.range(of: "^" + Self.timestamp + " (CRITICAL|ERROR|WARNING|INFO|DEBUG) ",
                                       options: .regularExpression), "not today's format: \(line)")
        }
        XCTAssertTrue(plain.contains { $0.contains(" CRITICAL ") && $0.contains("/revoked.pem") },
                      plain.joined(separator: "\n"))
    }

    // MARK: - Helpers

    private static let timestamp = #"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC"#
    private static let labels = [2: "CRITICAL", 3: "ERROR", 4: "WARNING", 6: "INFO", 7: "DEBUG"]

    /// How journald files a line from a stream (sd-daemon(3)): `<N>` with one digit 0-7
    /// sets the priority and is removed; any other line is stored at info (6) as it is.
    private static func journaldRecord(_ line: String) -> (priority: Int, message: String) {
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0] == UInt8(ascii: "<"), bytes[2] == UInt8(ascii: ">"),
              (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(bytes[1]) else { return (6, line) }
        return (Int(bytes[1] - UInt8(ascii: "0")), String(decoding: bytes[3...], as: UTF8.self))
    }
}
