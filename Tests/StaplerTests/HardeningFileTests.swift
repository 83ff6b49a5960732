import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Certificate directories and configuration files as they are found in the wild: cut short,
/// binary, huge, unreadable, vanishing, looping, crowded, oddly named. Each problem is one
/// clear line (said once, not at every rescan), and the daemon staples the rest.
final class HardeningFileTests: XCTestCase {
    private final class Fixture {
        let temp: TemporaryDirectory
        let pki: TestPKI
        let responder: OCSPResponderProcess
        let leaves: [TestPKI.Leaf]

        init() throws {
            temp = try TemporaryDirectory(prefix: "stapler-hardening-files")
            pki = try TestPKI(directory: temp.file("pki"))
            let port = freeLoopbackPort()
            leaves = try pki.issueLeaves(count: 16, commonName: "files.test", ocspURLs: ["http://127.0.0.1:\(port)/"])
            responder = try OCSPResponderProcess(pki: pki, port: port)
        }
    }

    private static let shared = SharedFixture(make: { try Fixture() }, release: { $0.responder.stop() })

    override class func tearDown() {
        shared.tearDown()
        super.tearDown()
    }

    private var fixture: Fixture!
    private var pki: TestPKI { fixture.pki }
    private var work: TemporaryDirectory!

    override func setUpWithError() throws {
        fixture = try Self.shared.value()
        work = try TemporaryDirectory(prefix: "stapler-hardening-files-test")
    }

    override func tearDown() {
        work = nil
        fixture = nil
    }

    // MARK: A directory of bad files

    func testEachBadFileGetsOneLineOnceAndTheRestIsStapled() throws {
        let certs = try Hardening.makeDirectory(work.file("certs"))
        let sub = try Hardening.makeDirectory(work.file("certs/sub"))
        let leaves = fixture.leaves

        let good = try place(leaves[0], as: "good.pem", in: certs)
        let deep = try place(leaves[1], as: "deep.pem", in: sub)
        let spaced = try place(leaves[2], as: "my site.pem", in: certs)
        // Latin-1 "café.pem": not UTF-8, as an old tar or a Windows share may leave it.
        let latin1 = FilePath(certs).appending(FilePath(bytes: Array("caf".utf8) + [0xE9] + Array(".pem".utf8)))
        try pki.writeBundle(leaves[3], to: work.file("latin1-source.pem"))
        try copy(work.file("latin1-source.pem"), to: latin1)

        let full = try String(contentsOfFile: good, encoding: .utf8)
        let truncated = "\(certs)/truncated.pem"
        try String(full.prefix(full.count / 3)).write(toFile: truncated, atomically: true, encoding: .utf8)
        let random = "\(certs)/random.pem"
        var generator = SeededGenerator(seed: 42)
        try Data((0..<8192).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: random))
        let noIssuer = "\(certs)/no-issuer.pem"
        try pki.writeBundle(leaves[4], to: noIssuer, includeIssuer: false)
        let keyOnly = "\(certs)/key-only.pem"
        try FileManager.default.copyItem(atPath: leaves[0].key, toPath: keyOnly)
        let caOnly = "\(certs)/ca-only.pem"
        try FileManager.default.copyItem(atPath: pki.certificate, toPath: caOnly)
        let unreadable = try place(leaves[5], as: "unreadable.pem", in: certs)
        XCTAssertEqual(chmod(unreadable, 0), 0)
        let gone = "\(certs)/gone.pem"
        try FileManager.default.createSymbolicLink(atPath: gone, withDestinationPath: "\(certs)/never-there.pem.bak")
        let loop = "\(certs)/loop.pem"
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: "loop.pem")
        try FileManager.default.createSymbolicLink(atPath: "\(sub)/up", withDestinationPath: "..")
        try FileManager.default.createSymbolicLink(atPath: "\(sub)/self", withDestinationPath: ".")
        let huge = "\(certs)/huge.pem"
        XCTAssertTrue(FileManager.default.createFile(atPath: huge, contents: Data()))
        XCTAssertEqual(truncate(huge, 200 << 20), 0, "a 200 MB sparse file")

        // Root reads a mode-000 file anyway: the daemon runs without the capabilities that
        // allow it, as an unprivileged operator would.
        let wrapper = try Self.withoutFileCapabilities()
        let daemon = try WrappedStaplerProcess(wrapper: wrapper, arguments: ["-vv", "-R", certs],
                                               logPath: work.file("daemon.log"))
        defer { daemon.signal(SIGKILL) }

        for path in [good, deep, spaced] {
            XCTAssertTrue(daemon.waitForLog("\(path): staple written"), daemon.log)
        }
        XCTAssertTrue(daemon.waitForLog("\(latin1): staple written"), daemon.log)
        let expected: [(path: String, level: String, text: String)] = [
            (truncated, "ERROR", "\(truncated): not a usable certificate file: PEM block \"CERTIFICATE\" has no END line"),
            (random, "DEBUG", "\(random): no certificate in the file, skipped"),
            // Debug only: its issuer is being fetched, and that fetch has its own lines, one per issuer.
            (noIssuer, "DEBUG", "\(noIssuer): issuer of certificate \"CN=files.test\" found neither in the file nor in"),
            (keyOnly, "DEBUG", "\(keyOnly): no certificate in the file, skipped"),
            (caOnly, "DEBUG", "\(caOnly): only CA certificates in the file, skipped"),
            (unreadable, "ERROR", "\(unreadable): cannot read \(unreadable): Permission denied"),
            (gone, "ERROR", "\(gone): stat failed: No such file or directory"),
            (loop, "ERROR", "\(loop): stat failed: Too many levels of symbolic links"),
            (huge, "ERROR", "\(huge): cannot read \(huge): larger than the 1048576-byte limit"),
        ]
        for item in expected {
            XCTAssertTrue(daemon.waitForLog(item.text), "\(item.path): \(daemon.log)")
        }
        XCTAssertTrue(daemon.waitForLog("scanned: "), daemon.log)

        // A rescan (SIGHUP) finds the same problems and says nothing new about them.
        daemon.signal(SIGHUP)
        XCTAssertTrue(waitUntil(timeout: 10) {
            daemon.log.components(separatedBy: "configuration reloaded").dropFirst().joined().contains("scanned: ")
        }, daemon.log)
        let log = daemon.log
        for item in expected {
            let mentions = Hardening.lines(log, containing: item.path + ":")
            XCTAssertEqual(mentions.count, 1, "\(item.path): \(mentions)")
            XCTAssertTrue(mentions.first?.contains(" \(item.level) ") == true, "\(item.path): \(mentions)")
        }
        // Loops are walked once: the deep certificate is found under one name only.
        XCTAssertTrue(Hardening.lines(log, containing: "/sub/up/").isEmpty, log)
        XCTAssertTrue(Hardening.lines(log, containing: "/sub/self/").isEmpty, log)
        XCTAssertTrue(daemon.isRunning)
        for (leaf, path) in zip(leaves[0...3], [FilePath(good), FilePath(deep), FilePath(spaced), latin1]) {
            let verified = try Hardening.verifiedStaple(bundle: path)
            XCTAssertEqual(verified.status, .good, "\(path) for \(leaf.serial)")
        }
        for item in expected {
            XCTAssertFalse(Hardening.exists(item.path + ".ocsp"), item.path)
        }

        // Fixed files are picked up and stapled.
        XCTAssertEqual(chmod(unreadable, 0o644), 0)
        XCTAssertTrue(daemon.waitForLog("\(unreadable): staple written"), daemon.log)
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 5), 0, daemon.log)
    }

    func testHugeSparseFileIsRefusedWithoutReadingIt() throws {
        let certs = try Hardening.makeDirectory(work.file("certs"))
        let huge = "\(certs)/huge.pem"
        XCTAssertTrue(FileManager.default.createFile(atPath: huge, contents: Data()))
        XCTAssertEqual(truncate(huge, 200 << 20), 0)
        let fine = try place(fixture.leaves[6], as: "fine.pem", in: certs)

        let started = Date()
        let run = try StaplerProcess.run(["--one-off", huge, fine], in: work.path, timeout: 30)
        let elapsed = Date().timeIntervalSince(started)

        // Named on the command line and unusable: --one-off counts it as a failure.
        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertTrue(run.output.contains("one pass done: 1 stapled, 1 failed"), run.output)
        XCTAssertLessThan(elapsed, 5, "reading 200 MB would take a while; refusing takes one fstat")
        XCTAssertEqual(Hardening.lines(run.output, containing: huge).count, 1, run.output)
        XCTAssertTrue(run.output.contains("\(huge): cannot read \(huge): larger than the 1048576-byte limit"), run.output)
        XCTAssertNotNil(try? Hardening.verifiedStaple(bundle: FilePath(fine)))
    }

    // MARK: A crowded directory

    func testHundredThousandFilesAreScannedQuickly() throws {
        let certs = try Hardening.makeDirectory(work.file("crowd"))
        var bundles: [String] = []
        for index in 0..<10 {
            bundles.append(try place(fixture.leaves[6 + index], as: "site-\(index).pem", in: certs))
        }
        // 100,000 names: most are not certificates at all (logs, keys, staples of others),
        // a few thousand are PEM files holding only a key (read, parsed, skipped quietly).
        let key = Array("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n".utf8)
        let made = Date()
        for index in 0..<99_990 {
            let name: String
            let content: [UInt8]
            switch index % 20 {
            case 0: (name, content) = ("key-\(index).pem", key)
            case 1: (name, content) = ("other-\(index).pem.ocsp", [0x30])
            default: (name, content) = ("log-\(index).txt", [])
            }
            let fd = open("\(certs)/\(name)", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0)
            if !content.isEmpty { _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            close(fd)
        }
        let creation = Date().timeIntervalSince(made)

        let started = Date()
        let run = try StaplerProcess.run(["--one-off", "-vv", certs], in: work.path, timeout: 120)
        let elapsed = Date().timeIntervalSince(started)

        XCTAssertEqual(run.status, 0, String(run.output.suffix(2000)))
        let keyFiles = (0..<99_990).filter { $0 % 20 == 0 }.count
        XCTAssertTrue(run.output.contains("scanned: \(10 + keyFiles) certificate file(s)"),
                      String(run.output.suffix(2000)))
        XCTAssertLessThan(elapsed, 30, "scan, parse 5,000 key files, staple 10 (files made in \(creation) s)")
        for bundle in bundles {
            XCTAssertNotNil(try? Hardening.verifiedStaple(bundle: FilePath(bundle)), bundle)
        }
        // Key files are no news above debug level.
        let loud = Hardening.lines(run.output, containing: "key-").filter { !$0.contains(" DEBUG ") }
        XCTAssertTrue(loud.isEmpty, loud.prefix(5).joined(separator: "\n"))
    }

    // MARK: Configuration files

    func testConfigFileWithGarbageLinesExitsTwoNamingFileAndLine() throws {
        let certs = try Hardening.makeDirectory(work.file("certs"))
        let cases: [(name: String, text: [UInt8], line: Int)] = [
            ("binary.conf", Array("[stapled]\ncert-paths = \(certs)\n".utf8) + [0x00, 0xff, 0xfe, 0x0a], 3),
            ("equals.conf", Array("[stapled]\none-off\n= value without key\n".utf8), 3),
            ("unknown.conf", Array("# comment\n[stapled]\ncert-paths = \(certs)\n\nfrobnicate = yes\n".utf8), 5),
            ("invalid-utf8.conf", Array("[stapled]\n".utf8) + [0xC3, 0x28] + Array(" = 1\n".utf8), 2),
            ("escape.conf", Array("[stapled]\nverbosity = 3\u{1b}[2J\n".utf8), 2),
        ]
        for item in cases {
            let path = work.file(item.name)
            try Data(item.text).write(to: URL(fileURLWithPath: path))
            let run = try StaplerProcess.run(["-c", path, "--one-off"], in: work.path, timeout: 10)
            XCTAssertEqual(run.status, 2, "\(item.name): \(run.output)")
            let lines = run.output.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(item.name): one line: \(run.output)")
            XCTAssertTrue(run.output.contains("\(path):\(item.line):"), "\(item.name): \(run.output)")
            XCTAssertFalse(run.output.utf8.contains(0x1b) || run.output.utf8.contains(0), "\(item.name): escaped: \(run.output)")
        }
    }

    func testHAProxyConfigWithUnbalancedQuotesExitsTwoNamingFileAndLine() throws {
        let certs = try Hardening.makeDirectory(work.file("certs"))
        for (quote, name) in [("\"", "double"), ("'", "single")] {
            let config = work.file("haproxy-\(name).cfg")
            try """
            global
                stats socket /run/haproxy-test.sock mode 600 level admin

            frontend https
                bind :443 ssl crt \(quote)\(certs)/
                bind :8443 ssl crt "\(certs)/other
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let run = try StaplerProcess.run(["--haproxy-config", config, "--one-off"], in: work.path, timeout: 10)
            XCTAssertEqual(run.status, 2, run.output)
            XCTAssertEqual(run.output.split(separator: "\n").count, 1, run.output)
            XCTAssertTrue(run.output.contains("\(config):5:"), "the first bad line: \(run.output)")
            XCTAssertTrue(run.output.contains("unbalanced"), run.output)
        }
    }

    // MARK: Helpers

    private func place(_ leaf: TestPKI.Leaf, as name: String, in directory: String) throws -> String {
        let path = "\(directory)/\(name)"
        try pki.writeBundle(leaf, to: path)
        return path
    }

    /// Copies a file to a byte path (a name Foundation cannot spell).
    private func copy(_ source: String, to target: FilePath) throws {
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: source))
        let fd = target.withCString { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// `setpriv` dropping the capabilities that let root ignore file permissions, for the
    /// daemon and anything it runs. Skips the test where that is impossible.
    static func withoutFileCapabilities() throws -> [String] {
        guard getuid() == 0 else { return ["env"] }  // permissions already apply
        guard (try? Shell.resolve("setpriv")) != nil else {
            throw XCTSkip("running as root without setpriv: a mode-000 file cannot be made unreadable")
        }
        let drop = "-dac_override,-dac_read_search"
        return ["setpriv", "--inh-caps=\(drop)", "--bounding-set=\(drop)", "--"]
    }
}
