import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The config file: the predecessor's files must load unchanged, and every mistake in one
/// must be reported with its file, line and key.
final class ConfigurationFileTests: XCTestCase {
    typealias H = ConfigurationHarness

    /// Shaped like the stapled.conf that stapled's Debian package installed in
    /// /etc/stapled/ (sections, ";;" comments, commented-out flags, a bare `daemon`, a
    /// bracketed socket list), written afresh for this test.
    static let predecessorConfig = """
        [about]

        ;; Defaults for a Debian host running HAProxy. The command line overrides this
        ;; file; keys are the long option names, e.g. `renewal-threads = 5`.

        [certfiles]

        ;; A single path or a list of paths:
        ;;  - cert-paths=/path/to/certs
        ;;  - cert-paths=[/path/to/certs, other/path/to/certs]
        cert-paths=/etc/ssl/private/

        file-extensions=crt,pem,cer

        ;; ignore=[no-ocsp/*.crt, /etc/ssl/private/not_a_real_crt.pem]
        ; ignore=ssl-cert-snakeoil.key

        [validity]

        ; no-recycle

        minimum-validity=7200

        [deamon]

        daemon

        renewal-threads=5

        refresh-interval=30

        [logging]
        ; syslog

        ;; 0: CRITICAL, 1: ERROR, 2: WARN, 3: INFO, 4: DEBUG
        verbosity=2

        logdir=/var/log/stapled/

        [haproxy]

        haproxy-sockets=[/var/run/haproxy/admin.sock]

        ; quiet

        ; no-recycle

        """

    /// The older ocspd.conf shape: `directories` instead of `cert-paths`, a stray
    /// "default=" in file-extensions, a single ignore pattern without brackets.
    static let ocspdConfig = """
        [certfiles]
        ; directories=[testdata/dir1, testdata/dir2]
        directories=/etc/ssl/private/
        file-extensions=default=crt,pem,cer
        ignore=ssl-cert-snakeoil.key

        [validity]
        minimum-validity=7200

        [deamon]
        daemon
        renewal-threads=5
        refresh-interval=30

        [logging]
        verbosity=2
        logdir=/var/log/ocspd/

        [haproxy]
        haproxy-sockets=[/var/run/haproxy/admin.sock]

        """

    // MARK: - The predecessor's files

    func testPredecessorConfigLoadsUnchanged() throws {
        let directory = try TemporaryDirectory()
        let config = try writeFile(Self.predecessorConfig, named: "stapled.conf", in: directory)
        let options = try H.options([], configFiles: [config])
        XCTAssertEqual(options.configFile, config)
        XCTAssertEqual(options.certificateLocations,
                       [CertificateLocation(path: "/etc/ssl/private", haproxySockets: ["/var/run/haproxy/admin.sock"])])
        XCTAssertEqual(options.fileExtensions, ["crt", "pem", "cer"])
        XCTAssertEqual(options.minimumValidity, .seconds(7200))
        XCTAssertTrue(options.daemonize)
        XCTAssertEqual(options.renewalThreads, 5)
        XCTAssertEqual(options.refreshInterval, .seconds(30))
        XCTAssertEqual(options.verbosity, .warning)
        XCTAssertEqual(options.logDirectory, "/var/log/stapled")
        XCTAssertTrue(options.recycleStaples)
        XCTAssertFalse(options.syslog)
        XCTAssertFalse(options.quiet)
        XCTAssertEqual(options.ignorePatterns, [])
        XCTAssertEqual(options.warnings, [])
    }

    func testOlderOcspdConfigLoadsWithWarnings() throws {
        let directory = try TemporaryDirectory()
        let config = try writeFile(Self.ocspdConfig, named: "ocspd.conf", in: directory)
        let options = try H.options([], configFiles: [config])
        XCTAssertEqual(options.certificateLocations,
                       [CertificateLocation(path: "/etc/ssl/private", haproxySockets: ["/var/run/haproxy/admin.sock"])])
        XCTAssertEqual(options.fileExtensions, ["crt", "pem", "cer"])
        XCTAssertEqual(options.ignorePatterns, [IgnorePattern("ssl-cert-snakeoil.key")])
        XCTAssertEqual(options.logDirectory, "/var/log/ocspd")
        XCTAssertEqual(options.warnings.count, 2, "\(options.warnings)")
        XCTAssertTrue(options.warnings.contains { $0.contains("default=") && $0.contains("ocspd.conf:4") }, "\(options.warnings)")
        XCTAssertTrue(options.warnings.contains { $0.contains("\"directories\" is deprecated") }, "\(options.warnings)")
    }

    // MARK: - Precedence

    func testCommandLineBeatsConfigFileBeatsDefaults() throws {
        let directory = try TemporaryDirectory()
        let config = try writeFile(Self.predecessorConfig, named: "stapled.conf", in: directory)
        let options = try H.options(["/cli/certs", "-t", "2", "--interactive", "--no-haproxy-sockets", "--logdir=/cli/logs"],
                                    configFiles: [config])
        XCTAssertEqual(options.certificateLocations, [CertificateLocation(path: "/cli/certs")])
        XCTAssertEqual(options.renewalThreads, 2)   // command line
        XCTAssertEqual(options.refreshInterval, .seconds(30))   // config file
        XCTAssertEqual(options.haproxySocketKeepalive, .seconds(10))   // default
        XCTAssertFalse(options.daemonize)
        XCTAssertEqual(options.logDirectory, "/cli/logs")
    }

    func testCommandLineCertPathsReuseTheConfigFilesSingleSocket() throws {
        let directory = try TemporaryDirectory()
        let config = try writeFile(Self.predecessorConfig, named: "stapled.conf", in: directory)
        let options = try H.options(["/a", "/b"], configFiles: [config])
        XCTAssertEqual(H.sockets(options), [["/var/run/haproxy/admin.sock"], ["/var/run/haproxy/admin.sock"]])
    }

    func testExplicitConfigFileReplacesTheDefaultLocations() throws {
        let directory = try TemporaryDirectory()
        let defaults = try writeFile("minimum-validity = 100\ncert-paths = /d\n", named: "default.conf", in: directory)
        let explicit = try writeFile("refresh-interval = 5\ncert-paths = /e\n", named: "explicit.conf", in: directory)
        let options = try H.options(["-c", explicit.description], configFiles: [defaults])
        XCTAssertEqual(options.configFile, explicit)
        XCTAssertEqual(options.refreshInterval, .seconds(5))
        XCTAssertEqual(options.minimumValidity, .seconds(7200))
        XCTAssertEqual(H.paths(options), ["/e"])
    }

    func testTheFirstExistingDefaultLocationIsRead() throws {
        let directory = try TemporaryDirectory()
        let second = try writeFile("cert-paths = /second\n", named: "second.conf", in: directory)
        let third = try writeFile("cert-paths = /third\n", named: "third.conf", in: directory)
        let missing = FilePath(directory.file("missing.conf"))
        let underAFile = FilePath(directory.file("second.conf/nested.conf"))
        let options = try H.options([], configFiles: [missing, underAFile, second, third])
        XCTAssertEqual(options.configFile, second)
        XCTAssertEqual(H.paths(options), ["/second"])
    }

    func testDefaultLocationsIncludeThePredecessors() {
        XCTAssertEqual(ConfigurationLoader.defaultConfigFiles(environment: ["HOME": "/home/ops"]),
                       ["/etc/stapler/stapler.conf", "/home/ops/.stapler.conf",
                        "/etc/stapled/stapled.conf", "/home/ops/.stapled.conf"])
        XCTAssertEqual(ConfigurationLoader.defaultConfigFiles(environment: [:]),
                       ["/etc/stapler/stapler.conf", "/etc/stapled/stapled.conf"])
    }

    func testAMissingExplicitConfigFileIsAnError() {
        XCTAssertEqual(H.error(["-c", "/nonexistent/stapler.conf", "/c"])?.description,
                       "stapler: cannot read config file /nonexistent/stapler.conf: No such file or directory")
        XCTAssertEqual(H.error(["-c", "/", "/c"])?.description, "stapler: cannot read config file /: not a regular file")
    }

    func testAnOversizedConfigFileIsRefused() throws {
        let directory = try TemporaryDirectory()
        let big = try writeFile("; " + String(repeating: "x", count: ConfigFile.sizeLimit) + "\n", named: "big.conf", in: directory)
        XCTAssertEqual(H.error(["-c", big.description, "/c"])?.description,
                       "stapler: cannot read config file \(big): larger than the 1048576-byte limit")
    }

    // MARK: - Syntax

    private func layer(_ text: String) throws(ConfigurationError) -> SettingsLayer {
        let path: FilePath = "/etc/stapler/stapler.conf"
        return try ConfigFile.settings(from: try ConfigFile.parse(Array(text.utf8), file: path), file: path,
                                       options: OptionTable.run)
    }

    private func configError(_ text: String) -> String? {
        do {
            _ = try layer(text)
            XCTFail("expected an error for \(text)")
            return nil
        } catch {
            XCTAssertFalse(error.description.contains("\n"))
            return error.description
        }
    }

    func testSeparatorsQuotesAndComments() throws {
        let parsed = try layer("""
            minimum-validity = 100
            refresh-interval: 20
            renewal-threads 3
            pidfile="/run/with space/stapler.pid"   ; a comment
            logdir = '/var/log/x'  # another comment
            file-extensions = pem;crt
            --syslog
            no_recycle = yes
            metrics=9100 ;trailing
            \r
            """.replacingOccurrences(of: "\n", with: "\r\n"))
        XCTAssertEqual(parsed.minimumValidity, .seconds(100))
        XCTAssertEqual(parsed.refreshInterval, .seconds(20))
        XCTAssertEqual(parsed.renewalThreads, 3)
        XCTAssertEqual(parsed.pidFile, .enabled("/run/with space/stapler.pid"))
        XCTAssertEqual(parsed.logDirectory, .enabled("/var/log/x"))
        // No blank before ";": part of the value, as configargparse read it.
        XCTAssertEqual(parsed.fileExtensions, ["pem;crt"])
        XCTAssertEqual(parsed.syslog, true)
        XCTAssertEqual(parsed.noRecycle, true)
        XCTAssertEqual(parsed.metrics, .enabled(MetricsAddress(host: "127.0.0.1", port: 9100)))
    }

    func testSectionsCommentsAndYamlMarkersAreSkipped() throws {
        let parsed = try layer("""
            ---
            [anything goes here = 1]
            # minimum-validity = 1
            ; minimum-validity = 2
               ; indented comment
            minimum-validity = 3
            """)
        XCTAssertEqual(parsed.minimumValidity, .seconds(3))
    }

    func testListsInBothSpellings() throws {
        let parsed = try layer("""
            cert-paths = [/a, /b ,/c]
            haproxy-sockets = ["/s 1", "/s,2"]
            ignore = []
            haproxy-config = [/etc/haproxy/haproxy.cfg, ]
            """)
        XCTAssertEqual(parsed.certPaths, ["/a", "/b", "/c"])
        XCTAssertEqual(parsed.haproxySockets, .enabled(["/s 1", "/s,2"]))
        XCTAssertEqual(parsed.ignorePatterns, [])
        XCTAssertEqual(parsed.haproxyConfigs, ["/etc/haproxy/haproxy.cfg"])
    }

    func testASingleValueForAListOptionIsOneItem() throws {
        // configargparse passed "--cert-paths=/a /b": one path with a space in it.
        XCTAssertEqual(try layer("cert-paths = /a /b").certPaths, ["/a /b"])
    }

    func testFlagsTakeTrueOrFalse() throws {
        XCTAssertEqual(try layer("daemon").daemon, true)
        XCTAssertEqual(try layer("daemon = true").daemon, true)
        XCTAssertEqual(try layer("daemon = False").daemon, false)
        XCTAssertEqual(try layer("daemon = 0").daemon, false)
        XCTAssertEqual(try layer("daemon\nno-daemon").daemon, false)
        XCTAssertEqual(try layer("daemon\ninteractive = false").daemon, true)
        XCTAssertEqual(try layer("haproxy-sockets = /s\nno-haproxy-sockets").haproxySockets, .disabled)
    }

    func testEmptyValuesSwitchOptionalSettingsOff() throws {
        XCTAssertEqual(try layer("logdir =").logDirectory, .disabled)
        XCTAssertEqual(try layer("logdir").logDirectory, .enabled("/var/log/stapler/"))
        XCTAssertEqual(try layer("pidfile:").pidFile, .disabled)
        XCTAssertEqual(try layer("cert-paths =").certPaths, [])
    }

    func testRepeatedListKeysAddUp() throws {
        XCTAssertEqual(try layer("ignore = a\nignore = [b, c]").ignorePatterns?.map(\.description), ["a", "b", "c"])
    }

    func testUnknownAndMisspelledKeys() {
        XCTAssertEqual(configError("\n\n\nfoo = 1"), "/etc/stapler/stapler.conf:4: unknown key \"foo\"")
        XCTAssertEqual(configError("minimum-validty = 1"),
                       "/etc/stapler/stapler.conf:1: unknown key \"minimum-validty\" (did you mean \"minimum-validity\"?)")
        XCTAssertEqual(configError("cert = /x"),
                       "/etc/stapler/stapler.conf:1: unknown key \"cert\" (did you mean \"cert-paths\"?)")
        XCTAssertEqual(configError("help"), "/etc/stapler/stapler.conf:1: \"help\" cannot be set in a config file")
        XCTAssertEqual(configError("v = 3"), "/etc/stapler/stapler.conf:1: unknown key \"v\" (did you mean \"verbosity\"?)")
    }

    func testBadValuesNameFileLineAndKey() {
        let cases: [(String, String)] = [
            ("minimum-validity = soon", "/etc/stapler/stapler.conf:1: minimum-validity: \"soon\" is not a whole number of seconds"),
            ("minimum-validity =", "/etc/stapler/stapler.conf:1: minimum-validity: \"\" is not a whole number of seconds"),
            ("minimum-validity", "/etc/stapler/stapler.conf:1: minimum-validity: needs a value"),
            ("minimum-validity = [1, 2]", "/etc/stapler/stapler.conf:1: minimum-validity: takes one value, not a list"),
            ("daemon = maybe", "/etc/stapler/stapler.conf:1: daemon: \"maybe\" is not true or false"),
            ("daemon = [true]", "/etc/stapler/stapler.conf:1: daemon: takes true or false, not a list"),
            ("daemon ; comment", "/etc/stapler/stapler.conf:1: daemon: \"; comment\" is not true or false"),
            ("renewal_threads = -2", "/etc/stapler/stapler.conf:1: renewal_threads: \"-2\" is out of range (1 to 1024)"),
            ("metrics = nowhere", "/etc/stapler/stapler.conf:1: metrics: \"nowhere\" is not an address (HOST:PORT, [IPV6]:PORT or PORT)"),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(configError(text), expected, text)
        }
    }

    func testGarbageLinesAreReportedNotCrashedOn() {
        XCTAssertEqual(configError("daemon\n= 5"), "/etc/stapler/stapler.conf:2: expected \"key = value\", found \"= 5\"")
        XCTAssertEqual(configError("daemon;x"), "/etc/stapler/stapler.conf:1: expected \"=\" after \"daemon\", found \";x\"")
        XCTAssertEqual(configError("daemon\n\u{0}"), "/etc/stapler/stapler.conf:2: contains a NUL byte")
        XCTAssertEqual(configError("\u{1b}[31m = 1"), "/etc/stapler/stapler.conf:1: unknown key \"\\x1b[31m\"")
        // Random bytes: an error (or, by chance, comments) but never a crash.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let bytes = (0..<Int.random(in: 1...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let path: FilePath = "/fuzz.conf"
            _ = try? ConfigFile.settings(from: try ConfigFile.parse(bytes, file: path), file: path, options: OptionTable.run)
        }
    }

    func testConfigKeyIsAcceptedAndIgnored() throws {
        let parsed = try layer("config = /elsewhere.conf")
        XCTAssertNil(parsed.configFile)
        XCTAssertEqual(parsed.warnings, ["/etc/stapler/stapler.conf:1: \"config\" in a config file has no effect"])
    }

    func testNonUTF8PathsSurvive() throws {
        var bytes = Array("cert-paths = /certs/caf".utf8)
        bytes.append(0xe9)  // Latin-1 "é"
        let path: FilePath = "/x.conf"
        let parsed = try ConfigFile.settings(from: try ConfigFile.parse(bytes, file: path), file: path, options: OptionTable.run)
        XCTAssertEqual(parsed.certPaths, [FilePath(bytes: Array("/certs/caf".utf8) + [0xe9])])
    }

    // MARK: - check reads the config file too

    func testCheckTakesMinimumValidityFromTheConfigFile() throws {
        let directory = try TemporaryDirectory()
        let config = try writeFile("minimum-validity = 600\nnonce\ndaemon\n", named: "c.conf", in: directory)
        guard case .check(let check) = try H.command(["check", "/a.pem"], configFiles: [config]) else { return XCTFail() }
        XCTAssertEqual(check.minimumValidity, .seconds(600))
        XCTAssertEqual(check.warning, .seconds(600), "the margin is the default warning threshold")
        XCTAssertTrue(check.nonce)
        XCTAssertEqual(check.configFile, config)
        guard case .check(let overridden) = try H.command(["check", "--minimum-validity=5", "/a.pem"],
                                                          configFiles: [config]) else { return XCTFail() }
        XCTAssertEqual(overridden.minimumValidity, .seconds(5))
        guard case .check(let thresholds) = try H.command(["check", "-w", "60", "/a.pem"],
                                                          configFiles: [config]) else { return XCTFail() }
        XCTAssertEqual(thresholds.warning, .seconds(60), "-w beats the config file's margin")
    }

    func testMetricsPerCertificateKey() throws {
        let directory = try TemporaryDirectory()
        for (text, expected) in [("metrics-per-certificate = false\n", false), ("metrics_per_certificate = off\n", false),
                                 ("metrics-per-certificate\n", true), ("", true)] {
            let config = try writeFile("cert-paths = /a\n" + text, named: "c.conf", in: directory)
            let options = try H.options(["-c", config.description])
            XCTAssertEqual(options.metricsPerCertificate, expected, text)
        }
        let config = try writeFile("cert-paths = /a\nmetrics-per-certificate = false\n", named: "c.conf", in: directory)
        XCTAssertTrue(try H.options(["-c", config.description, "--metrics-per-certificate=true"]).metricsPerCertificate,
                      "the command line beats the file")
    }
}
