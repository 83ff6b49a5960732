import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Reading haproxy.cfg for certificate paths and stats sockets, with HAProxy's own quoting
/// rules; the last test asks a real HAProxy to load the same file.
final class HAProxyConfigReaderTests: XCTestCase {
    private let configPath: FilePath = "/etc/haproxy/haproxy.cfg"

    /// Parses `text` as `configPath`; crt-lists come from `files` instead of the disk.
    private func summary(_ text: String, files: [FilePath: String] = [:], environment: [String: String] = [:],
                         workingDirectory: FilePath = "/") throws(ConfigurationError) -> HAProxyConfigSummary {
        var parser = HAProxyConfigParser(environment: environment, workingDirectory: workingDirectory,
                                         load: { (path, role) throws(ConfigurationError) in
            guard let text = files[path] else {
                throw .unreadableFile(role: role, error: FileError(path: path, operation: "open", reason: .system(errno: ENOENT)))
            }
            return Array(text.utf8)
        })
        try parser.parse(Array(text.utf8), file: configPath)
        return parser.summary(for: configPath)
    }

    private func parseError(_ text: String, files: [FilePath: String] = [:]) -> String? {
        do {
            let result = try summary(text, files: files)
            XCTFail("expected an error, got \(result)")
            return nil
        } catch {
            XCTAssertFalse(error.description.contains("\n"))
            return error.description
        }
    }

    func testTypicalDebianConfig() throws {
        let result = try summary("""
            global
                log /dev/log local0
                chroot /var/lib/haproxy
                stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
                stats timeout 30s
                crt-base /etc/ssl/private
                ca-base /etc/ssl/certs

            defaults
                mode http

            frontend www
                bind :80
                bind :443 ssl crt site.pem crt /etc/other/absolute.pem alpn h2,http/1.1
                bind :::443 v6only ssl crt dir/   # a directory of certificates
                default_backend app

            backend app
                server s1 10.0.0.1:443 ssl crt client.pem verify none
                default-server ssl crt defaults.pem
            """)
        XCTAssertEqual(result.certificatePaths, [
            "/etc/ssl/private/site.pem", "/etc/other/absolute.pem", "/etc/ssl/private/dir",
            "/etc/ssl/private/client.pem", "/etc/ssl/private/defaults.pem",
        ])
        XCTAssertEqual(result.statsSockets, [
            HAProxyStatsSocket(path: "/run/haproxy/admin.sock", hasAdminLevel: true, file: configPath, line: 4),
        ])
        XCTAssertEqual(result.notices, [])
    }

    func testCrtListEntriesAreRelativeToCrtBaseButTheListItselfIsNot() throws {
        let result = try summary("""
            global
                crt-base /certs
            frontend f
                bind :443 ssl crt-list lists/sites.list crt default.pem
            """, files: ["/work/lists/sites.list": """
            # comment
            site1.pem
              
            site2.pem [alpn h2 ciphers ECDHE] www.example.com !*.example.net
            /abs/site3.pem www.example.org
            site4.pem[ocsp-update on]
               # indented comment
            @store/cert
            """], workingDirectory: "/work")
        XCTAssertEqual(result.certificatePaths, [
            "/certs/site1.pem", "/certs/site2.pem", "/abs/site3.pem", "/certs/site4.pem", "/certs/default.pem",
        ])
        XCTAssertEqual(result.notices.count, 1)
        XCTAssertTrue(result.notices[0].hasPrefix("/work/lists/sites.list:8: \"@store/cert\" refers to a crt-store"),
                      result.notices[0])
    }

    func testACrtListNamedOnSeveralBindLinesIsReadOnce() throws {
        final class Reads: @unchecked Sendable { var count = 0 }
        let reads = Reads()
        var parser = HAProxyConfigParser(environment: [:], workingDirectory: "/", load: { (_, _) throws(ConfigurationError) in
            reads.count += 1
            return Array("a.pem\nb.pem\n".utf8)
        })
        try parser.parse(Array("""
            global
                crt-base /one
            frontend f
                bind 0.0.0.0:443 ssl crt-list /sites.list
                bind :::443 ssl crt-list /sites.list
            global
                crt-base /two
            frontend g
                bind :8443 ssl crt-list /sites.list
            """.utf8), file: configPath)
        XCTAssertEqual(reads.count, 2)
        XCTAssertEqual(parser.summary(for: configPath).certificatePaths, ["/one/a.pem", "/one/b.pem", "/two/a.pem", "/two/b.pem"])
    }

    func testCrtBaseAppliesFromWhereItAppears() throws {
        let result = try summary("""
            frontend early
                bind :443 ssl crt early.pem
            global
                crt-base /later
            frontend late
                bind :8443 ssl crt late.pem
            """, workingDirectory: "/cwd")
        XCTAssertEqual(result.certificatePaths, ["/cwd/early.pem", "/later/late.pem"])
    }

    func testQuotingAndEscapingAsHAProxyDoes() throws {
        let result = try summary("""
            global
                crt-base "/etc/ssl/with space"
            frontend f
                bind :1 ssl crt "double quoted.pem"
                bind :2 ssl crt 'single quoted.pem'
                bind :3 ssl crt escaped\\ space.pem
                bind :4 ssl crt /abs/"mixed "'pieces'\\ joined.pem
                bind :5 ssl crt hash\\#sign.pem # a real comment
                bind :6 ssl crt "${CERTS}/env.pem" crt '${CERTS}/literal.pem'
                bind :7 ssl crt "${UNSET-/fallback}/default.pem"
                bind :8 ssl crt "back\\\\slash\\".pem"
                bind :9 ssl crt hex\\x41.pem
                bind :10 ssl crt "#not-a-comment.pem"
            """, environment: ["CERTS": "/from/env"])
        XCTAssertEqual(result.certificatePaths.map(\.description), [
            "/etc/ssl/with space/double quoted.pem",
            "/etc/ssl/with space/single quoted.pem",
            "/etc/ssl/with space/escaped space.pem",
            "/abs/mixed pieces joined.pem",
            "/etc/ssl/with space/hash#sign.pem",
            "/from/env/env.pem",
            "/etc/ssl/with space/${CERTS}/literal.pem",
            "/fallback/default.pem",
            "/etc/ssl/with space/back\\slash\".pem",
            "/etc/ssl/with space/hexA.pem",
            "/etc/ssl/with space/#not-a-comment.pem",
        ])
    }

    func testUnbalancedQuotesNameFileAndLine() {
        XCTAssertEqual(parseError("global\nfrontend f\n    bind :443 ssl crt \"unterminated.pem\n"),
                       "/etc/haproxy/haproxy.cfg:3: unbalanced double quote (\")")
        XCTAssertEqual(parseError("frontend f\n  bind :443 ssl crt 'oops\n"),
                       "/etc/haproxy/haproxy.cfg:2: unbalanced single quote (')")
        // A quote inside a comment does not count.
        XCTAssertNoThrow(try summary("frontend f\n  bind :443 # it's fine\n"))
    }

    func testOtherMistakes() {
        XCTAssertEqual(parseError("frontend f\n bind :443 ssl crt\n"), "/etc/haproxy/haproxy.cfg:2: crt without a path")
        XCTAssertEqual(parseError("frontend f\n bind :443 ssl crt-list\n"), "/etc/haproxy/haproxy.cfg:2: crt-list without a path")
        XCTAssertEqual(parseError("global\n crt-base\n"), "/etc/haproxy/haproxy.cfg:2: crt-base without a directory")
        XCTAssertEqual(parseError("frontend f\n bind :443 ssl crt-list /missing.list\n"),
                       "stapler: cannot read crt-list /missing.list: No such file or directory")
        XCTAssertEqual(parseError("frontend f\n bind :443 ssl crt-list /l\n", files: ["/l": "ok.pem\n[alpn h2] bad\n"]),
                       "/l:2: a crt-list line must start with a certificate")
        XCTAssertEqual(parseError("global\n\u{0}\n"), "/etc/haproxy/haproxy.cfg:2: contains a NUL byte")
    }

    func testStatsSockets() throws {
        let result = try summary("""
            global
                unix-bind prefix /var/lib/haproxy/ mode 770
                stats socket run/admin.sock level admin
                stats socket unix@/run/operator.sock level operator
                stats socket /run/plain.sock
                stats socket ipv4@127.0.0.1:9999 level admin
                stats socket 127.0.0.1:9998 level admin
                stats socket unix@/run/operator.sock level admin
                stats timeout 2m
            frontend f
                stats socket /not/global.sock level admin
                bind :443 ssl crt /c.pem
            """)
        XCTAssertEqual(result.statsSockets.map(\.path), [
            "/var/lib/haproxy/run/admin.sock", "/var/lib/haproxy/run/operator.sock", "/var/lib/haproxy/run/plain.sock",
        ])
        // Declared twice, once with admin: admin wins.
        XCTAssertEqual(result.statsSockets.map(\.hasAdminLevel), [true, true, false])
        XCTAssertEqual(result.notices.count, 2)
        XCTAssertTrue(result.notices[0].hasPrefix("/etc/haproxy/haproxy.cfg:6: stats socket \"ipv4@127.0.0.1:9999\" is not a unix socket"),
                      result.notices[0])
    }

    func testConditionalBlocksAndUnrelatedKeywordsAreHarmless() throws {
        let result = try summary("""
            .if defined(PROD)
            frontend prod
                bind :443 ssl crt /prod.pem
            .else
            frontend dev
                bind :443 ssl crt /dev.pem
            .endif
            frontend f
                http-request set-var(txn.crt) str(crt)
                bind :8443 ssl crt /dev.pem crt-ignore-err all ca-file /etc/ssl/ca.pem
            """)
        XCTAssertEqual(result.certificatePaths, ["/prod.pem", "/dev.pem"])
    }

    // MARK: - Files on disk and the loader

    func testReadsAFileOrADirectoryOfCfgFiles() throws {
        let directory = try TemporaryDirectory()
        try writeFile("global\n  crt-base /base\n  stats socket /run/a.sock level admin\n", named: "conf.d/10-global.cfg", in: directory)
        try writeFile("frontend f\n  bind :443 ssl crt site.pem\n", named: "conf.d/20-front.cfg", in: directory)
        try writeFile("frontend g\n  bind :443 ssl crt ignored.pem\n", named: "conf.d/notes.txt", in: directory)
        try writeFile("frontend h\n  bind :443 ssl crt hidden.pem\n", named: "conf.d/.hidden.cfg", in: directory)
        let fromDirectory = try HAProxyConfigReader.read(FilePath(directory.file("conf.d")), workingDirectory: "/")
        XCTAssertEqual(fromDirectory.certificatePaths, ["/base/site.pem"])
        XCTAssertEqual(fromDirectory.statsSockets.map(\.path), ["/run/a.sock"])

        let single = try HAProxyConfigReader.read(FilePath(directory.file("conf.d/20-front.cfg")), workingDirectory: "/w")
        XCTAssertEqual(single.certificatePaths, ["/w/site.pem"])

        do {
            _ = try HAProxyConfigReader.read("/nonexistent/haproxy.cfg", workingDirectory: "/")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.description, "stapler: cannot read HAProxy config /nonexistent/haproxy.cfg: No such file or directory")
        }
    }

    func testLoaderMergesHAProxyConfigWithCertPathsAndSockets() throws {
        let directory = try TemporaryDirectory()
        let config = try writeFile("""
            global
                stats socket /run/haproxy/admin.sock level admin
                stats socket /run/haproxy/operator.sock
                crt-base /etc/ssl/private
            frontend f
                bind :443 ssl crt shared.pem crt only-haproxy.pem
            """, named: "haproxy.cfg", in: directory)
        let options = try ConfigurationHarness.options(
            ["-p", "/etc/ssl/private/shared.pem", "/mine", "-s", "/run/mine.sock", "/run/other.sock",
             "--haproxy-config", config.description])
        XCTAssertEqual(options.haproxyConfigFiles, [config])
        XCTAssertEqual(options.certificateLocations, [
            CertificateLocation(path: "/etc/ssl/private/shared.pem",
                                haproxySockets: ["/run/mine.sock", "/run/haproxy/admin.sock", "/run/haproxy/operator.sock"]),
            CertificateLocation(path: "/mine", haproxySockets: ["/run/other.sock"]),
            CertificateLocation(path: "/etc/ssl/private/only-haproxy.pem",
                                haproxySockets: ["/run/haproxy/admin.sock", "/run/haproxy/operator.sock"]),
        ])
        XCTAssertEqual(options.warnings, ["\(config):3: stats socket /run/haproxy/operator.sock has no \"level admin\"; "
                                          + "HAProxy will refuse staples for certificates that had no .ocsp file when it started"])

        let quiet = try ConfigurationHarness.options(["--haproxy-config", config.description, "--no-haproxy-sockets"])
        XCTAssertEqual(ConfigurationHarness.sockets(quiet), [[], []])
        XCTAssertEqual(quiet.warnings, [])

        // One socket and no --cert-paths: the socket serves what haproxy.cfg names.
        let single = try ConfigurationHarness.options(["--haproxy-config", config.description, "-s", "/run/x.sock"])
        XCTAssertEqual(ConfigurationHarness.sockets(single).map { $0.first }, ["/run/x.sock", "/run/x.sock"])
    }

    func testAHAProxyConfigWithoutCertificatesIsNothingToWatch() throws {
        let directory = try TemporaryDirectory()
        let config = try writeFile("global\n  stats socket /run/a.sock level admin\n", named: "haproxy.cfg", in: directory)
        XCTAssertEqual(ConfigurationHarness.error(["--haproxy-config", config.description])?.description,
                       "stapler: no certificates to watch: the HAProxy config names no crt or crt-list, and no --cert-paths were given")
    }

    /// The real check of the quoting rules: HAProxy itself must find the certificates at
    /// exactly the paths the reader computed, or `haproxy -c` fails.
    func testRealHAProxyAgreesOnThePaths() throws {
        let haproxy: String
        do { haproxy = try Shell.resolve("haproxy") } catch { throw XCTSkip("haproxy is not installed") }
        let directory = try TemporaryDirectory()
        let pki = try TestPKI(directory: directory.file("pki"))
        let leaf = try pki.issueLeaf(ocspURLs: ["http://127.0.0.1:1/"])
        let base = directory.file("certs with space")
        try FileManager.default.createDirectory(atPath: base + "/sub dir", withIntermediateDirectories: true)
        let names = ["quoted one.pem", "sub dir/escaped.pem", "single's.pem", "listed.pem", "hash#name.pem"]
        for name in names { try pki.writeBundle(leaf, to: base + "/" + name) }
        try "listed.pem [alpn h2] leaf.test\n# comment\n".write(toFile: directory.file("sites.list"), atomically: false, encoding: .utf8)
        let config = try writeFile("""
            global
                crt-base "\(base)"
                stats socket \(directory.path)/admin.sock level admin
            defaults
                mode http
                timeout client 1s
                timeout server 1s
                timeout connect 1s
            frontend f
                bind 127.0.0.1:\(freeLoopbackPort()) ssl crt "quoted one.pem" crt sub\\ dir/escaped.pem crt "single's.pem"
                bind 127.0.0.1:\(freeLoopbackPort()) ssl crt-list \(directory.path)/sites.list crt hash\\#name.pem # comment

            """, named: "haproxy.cfg", in: directory)

        let result = try HAProxyConfigReader.read(config, workingDirectory: "/")
        XCTAssertEqual(Set(result.certificatePaths.map(\.description)), Set(names.map { base + "/" + $0 }))
        for path in result.certificatePaths {
            XCTAssertTrue(FileManager.default.fileExists(atPath: path.description), "\(path) does not exist")
        }
        let check = try Shell.run([haproxy, "-c", "-f", config.description], allowFailure: true)
        XCTAssertEqual(check.status, 0, check.output)
    }
}
