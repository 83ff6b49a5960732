import Reactor
import XCTest
@testable import Stapler

/// The command line as a predecessor user types it: argparse habits must keep working.
final class ConfigurationCommandLineTests: XCTestCase {
    typealias H = ConfigurationHarness

    // MARK: - Defaults and paths

    func testDefaultsMatchTheDocumentedValues() throws {
        let options = try H.options(["/etc/ssl/private"])
        XCTAssertEqual(options.certificateLocations, [CertificateLocation(path: "/etc/ssl/private")])
        XCTAssertEqual(options.fileExtensions, ["crt", "pem", "cer"])
        XCTAssertEqual(options.minimumValidity, .seconds(7200))
        XCTAssertEqual(options.renewalThreads, 8)
        XCTAssertEqual(options.refreshInterval, .seconds(60))
        XCTAssertEqual(options.haproxySocketKeepalive, .seconds(10))
        XCTAssertEqual(options.verbosity, .warning)
        XCTAssertTrue(options.recycleStaples)
        XCTAssertFalse(options.recursive)
        XCTAssertFalse(options.oneOff)
        XCTAssertFalse(options.daemonize)
        XCTAssertFalse(options.quiet)
        XCTAssertFalse(options.syslog)
        XCTAssertFalse(options.nonce)
        XCTAssertNil(options.logDirectory)
        XCTAssertNil(options.pidFile)
        XCTAssertNil(options.metricsAddress)
        XCTAssertNil(options.configFile)
        XCTAssertEqual(options.ignorePatterns, [])
        XCTAssertEqual(options.warnings, [])
    }

    func testPlainWordsAndCertPathsCombineInTheOrderGiven() throws {
        let options = try H.options(["relative", "-p", "/b", "-R", "c/"])
        XCTAssertEqual(H.paths(options), ["/srv/work/relative", "/b", "/srv/work/c"])
        XCTAssertTrue(options.recursive)
    }

    func testPathsAreMadeAbsoluteAndNormalised() throws {
        let options = try H.options(["./a/../b//c/", "/x/./y/..", "../up"])
        XCTAssertEqual(H.paths(options), ["/srv/work/b/c", "/x", "/srv/up"])
    }

    func testTheSamePathTwiceIsWatchedOnce() throws {
        let options = try H.options(["/certs", "-p", "/certs/", "/other"])
        XCTAssertEqual(H.paths(options), ["/certs", "/other"])
    }

    func testDeprecatedDirectoriesStillWorkWithAWarning() throws {
        let options = try H.options(["-d", "/old/style", "/also"])
        XCTAssertEqual(H.paths(options), ["/old/style", "/also"])
        XCTAssertEqual(options.warnings.count, 1)
        XCTAssertTrue(options.warnings[0].contains("deprecated"), options.warnings[0])
    }

    func testNothingToWatchIsAnError() {
        let error = H.error(["-R"])
        XCTAssertEqual(error?.description,
                       "stapler: no certificates to watch: give CERT_PATH, --cert-paths or --haproxy-config (see stapler --help)")
    }

    func testDoubleDashEndsOptions() throws {
        let options = try H.options(["-R", "--", "-odd-name", "--also"])
        XCTAssertEqual(H.paths(options), ["/srv/work/-odd-name", "/srv/work/--also"])
    }

    // MARK: - argparse behaviours

    func testLongOptionsMayBeAbbreviatedToAUniquePrefix() throws {
        let options = try H.options(["--min", "300", "--renew", "3", "--rec", "--no-r", "--non", "--cert", "/c"])
        XCTAssertEqual(options.minimumValidity, .seconds(300))
        XCTAssertEqual(options.renewalThreads, 3)
        XCTAssertTrue(options.recursive)
        XCTAssertFalse(options.recycleStaples)
        XCTAssertTrue(options.nonce)
        XCTAssertEqual(H.paths(options), ["/c"])
    }

    func testAnAmbiguousAbbreviationNamesTheCandidates() {
        let error = H.error(["--haproxy-socket", "/s", "/c"])
        XCTAssertEqual(error, .ambiguousOption("--haproxy-socket",
                                               candidates: ["--haproxy-sockets", "--haproxy-socket-keepalive"]))
        XCTAssertEqual(error?.description, "stapler: ambiguous option \"--haproxy-socket\": could be "
                       + "--haproxy-sockets, --haproxy-socket-keepalive")
        XCTAssertNotNil(H.error(["--no", "/c"]))
    }

    func testAliasesOfOneOptionAreNotAmbiguous() throws {
        // "--in" fits only --interactive; "--no-d" only --no-daemon: both the same option.
        XCTAssertFalse(try H.options(["-D", "--in", "/c"]).daemonize)
        XCTAssertFalse(try H.options(["-D", "--no-d", "/c"]).daemonize)
    }

    func testValuesAttachWithEqualsOrFollow() throws {
        XCTAssertEqual(try H.options(["--minimum-validity=120", "/c"]).minimumValidity, .seconds(120))
        XCTAssertEqual(try H.options(["--minimum-validity", "121", "/c"]).minimumValidity, .seconds(121))
        XCTAssertEqual(try H.options(["--min=122", "/c"]).minimumValidity, .seconds(122))
        // argparse gives "--list=value" one value; the next word is a plain path again.
        let options = try H.options(["--cert-paths=/a", "/b"])
        XCTAssertEqual(H.paths(options), ["/a", "/b"])
    }

    func testShortFlagsClusterAndShortValuesAttach() throws {
        let clustered = try H.options(["-Rvq", "/c"])
        XCTAssertTrue(clustered.recursive)
        XCTAssertTrue(clustered.quiet)
        XCTAssertEqual(clustered.verbosity, .info)
        XCTAssertEqual(try H.options(["-t4", "/c"]).renewalThreads, 4)
        XCTAssertEqual(try H.options(["-t=5", "/c"]).renewalThreads, 5)
        XCTAssertEqual(try H.options(["-t", "6", "/c"]).renewalThreads, 6)
        XCTAssertEqual(try H.options(["-Rt7", "/c"]).renewalThreads, 7)
        XCTAssertEqual(try H.options(["-r90", "/c"]).refreshInterval, .seconds(90))
        XCTAssertEqual(H.paths(try H.options(["-p/glued"])), ["/glued"])
    }

    func testListOptionsTakeWordsUntilTheNextOption() throws {
        let options = try H.options(["-i", "*.key", "snakeoil*", "-p", "/a", "/b", "-R", "/c"])
        XCTAssertEqual(options.ignorePatterns, [IgnorePattern("*.key"), IgnorePattern("snakeoil*")])
        XCTAssertEqual(H.paths(options), ["/a", "/b", "/c"])
    }

    func testRepeatingAListOptionAddsToIt() throws {
        let options = try H.options(["-i", "a", "-i", "b", "--", "/c"])
        XCTAssertEqual(options.ignorePatterns.map(\.description), ["a", "b"])
    }

    func testIgnorePatternsThatLookLikeRelativePathsAreDroppedWithAWarning() throws {
        let options = try H.options(["/c", "-i", "../certs/*.pem", "./x.pem", "keep/*.pem"])
        XCTAssertEqual(options.ignorePatterns.map(\.description), ["keep/*.pem"])
        XCTAssertEqual(options.warnings.count, 2)
        XCTAssertTrue(options.warnings.allSatisfy { $0.contains("relative path") }, "\(options.warnings)")
    }

    func testLogdirTakesAnOptionalValue() throws {
        XCTAssertEqual(try H.options(["/c", "-l"]).logDirectory, "/var/log/stapler")
        XCTAssertEqual(try H.options(["-l", "-R", "/c"]).logDirectory, "/var/log/stapler")
        XCTAssertEqual(try H.options(["--logdir", "--recursive", "/c"]).logDirectory, "/var/log/stapler")
        // As with argparse, the next plain word is the directory, not a certificate path.
        let greedy = try H.options(["-l", "logs", "/c"])
        XCTAssertEqual(greedy.logDirectory, "/srv/work/logs")
        XCTAssertEqual(H.paths(greedy), ["/c"])
        XCTAssertEqual(try H.options(["--logdir=/x", "/c"]).logDirectory, "/x")
        XCTAssertEqual(try H.options(["-l/y", "/c"]).logDirectory, "/y")
        XCTAssertNil(try H.options(["/c"]).logDirectory)
    }

    func testNegativeNumbersAreValuesNotOptions() {
        XCTAssertEqual(H.error(["--minimum-validity", "-5", "/c"])?.description,
                       "stapler: --minimum-validity: \"-5\" is out of range (0 to 31536000 seconds)")
    }

    func testHelpAndVersion() throws {
        for arguments in [["-h"], ["--help"], ["--he"], ["-vh"], ["-h", "--no-such-option"], ["/c", "--help"]] {
            guard case .help(let text) = try H.command(arguments) else { return XCTFail("\(arguments)") }
            XCTAssertTrue(text.hasPrefix("usage: stapler [options] [CERT_PATH ...]"), "\(arguments)")
        }
        for arguments in [["-V"], ["--version"], ["--vers"]] {
            XCTAssertEqual(try H.command(arguments), .version("stapler \(Usage.programVersion)\n"), "\(arguments)")
        }
        // An error before -h is still an error, as with argparse.
        XCTAssertNotNil(H.error(["--no-such-option", "-h"]))
    }

    func testHelpMentionsEveryOption() {
        for spec in OptionTable.run {
            for long in spec.longNames {
                XCTAssertTrue(Usage.run.contains("--" + long), "--\(long) missing from the help text")
            }
            if let short = spec.shortName {
                XCTAssertTrue(Usage.run.contains("-\(short)"), "-\(short) missing from the help text")
            }
        }
        for line in (Usage.run + Usage.check).split(separator: "\n") {
            XCTAssertLessThanOrEqual(line.count, 80, "help line too long: \(line)")
        }
    }

    // MARK: - Verbosity and modes

    func testVerbosityAndV() throws {
        XCTAssertEqual(try H.options(["--verbosity", "0", "/c"]).verbosity, .critical)
        XCTAssertEqual(try H.options(["--verbosity", "4", "/c"]).verbosity, .debug)
        XCTAssertEqual(try H.options(["-v", "/c"]).verbosity, .info)
        XCTAssertEqual(try H.options(["-vv", "/c"]).verbosity, .debug)
        XCTAssertEqual(try H.options(["-vvvvvv", "/c"]).verbosity, .debug)
        XCTAssertEqual(try H.options(["-v", "-v", "--verbosity", "0", "/c"]).verbosity, .warning)
    }

    func testOutOfRangeVerbosityIsClampedWithAWarning() throws {
        let options = try H.options(["--verbosity", "9", "/c"])
        XCTAssertEqual(options.verbosity, .debug)
        XCTAssertEqual(options.warnings, ["--verbosity: 9 is outside 0 to 4; using 4 (debug)"])
    }

    func testDaemonFlagsLastOneWinsAndOneOffNeverDetaches() throws {
        XCTAssertTrue(try H.options(["-D", "/c"]).daemonize)
        XCTAssertFalse(try H.options(["-D", "--interactive", "/c"]).daemonize)
        XCTAssertTrue(try H.options(["--no-daemon", "--daemon", "/c"]).daemonize)
        let oneOff = try H.options(["-D", "--one-off", "/c"])
        XCTAssertTrue(oneOff.oneOff)
        XCTAssertFalse(oneOff.daemonize)
    }

    func testNewOptions() throws {
        let options = try H.options(["--pidfile", "run/stapler.pid", "--nonce", "--metrics", "9100", "--syslog", "/c"])
        XCTAssertEqual(options.pidFile, "/srv/work/run/stapler.pid")
        XCTAssertTrue(options.nonce)
        XCTAssertTrue(options.syslog)
        XCTAssertEqual(options.metricsAddress, MetricsAddress(host: "127.0.0.1", port: 9100))
    }

    func testMetricsAddressForms() throws {
        func address(_ text: String) throws -> String? { try H.options(["--metrics", text, "/c"]).metricsAddress?.description }
        XCTAssertEqual(try address(":9100"), "127.0.0.1:9100")
        XCTAssertEqual(try address("0.0.0.0:9100"), "0.0.0.0:9100")
        XCTAssertEqual(try address("localhost:80"), "127.0.0.1:80")
        XCTAssertEqual(try address("[::1]:9100"), "[::1]:9100")
        XCTAssertEqual(try address("[::]:1"), "[::]:1")
        XCTAssertEqual(H.error(["--metrics", "example.com:80", "/c"])?.description,
                       "stapler: --metrics: \"example.com\" is not an IP address (a host name would need a DNS lookup)")
        XCTAssertEqual(H.error(["--metrics", "127.0.0.1:0", "/c"])?.description,
                       "stapler: --metrics: \"0\" is out of range (1 to 65535)")
        XCTAssertEqual(H.error(["--metrics", "::1:80", "/c"])?.description,
                       "stapler: --metrics: write an IPv6 address in brackets: [::1]:PORT")
        XCTAssertNotNil(H.error(["--metrics", "[::1]9100", "/c"]))
        XCTAssertNotNil(H.error(["--metrics", "127.0.0.1:http", "/c"]))
        XCTAssertEqual(H.error(["--metrics", "metrics.sock", "/c"])?.description,
                       "stapler: --metrics: \"metrics.sock\" is not an address (HOST:PORT, [IPV6]:PORT or PORT)")
    }

    func testMetricsUnixSocketPaths() throws {
        func address(_ text: String) throws -> MetricsAddress? { try H.options(["--metrics", text, "/c"]).metricsAddress }
        XCTAssertEqual(try address("/run/stapler/metrics.sock"), .unix("/run/stapler/metrics.sock"))
        XCTAssertEqual(try address("/run/stapler/metrics.sock")?.description, "/run/stapler/metrics.sock")
        // Anything with a slash is a path; relative ones are taken against the working directory.
        XCTAssertEqual(try address("./metrics.sock"), .unix("/srv/work/metrics.sock"))
        XCTAssertEqual(try address("run/../run/metrics.sock"), .unix("/srv/work/run/metrics.sock"))
        XCTAssertEqual(H.error(["--metrics", "/run/stapler/", "/c"])?.description,
                       "stapler: --metrics: \"/run/stapler/\" names a directory, not a socket file")
        let long = "/" + String(repeating: "s", count: 107)
        XCTAssertEqual(H.error(["--metrics", long, "/c"])?.description,
                       "stapler: --metrics: \"\(long)\" is too long for a socket path (at most 107 bytes)")
        XCTAssertNotNil(try address("/" + String(repeating: "s", count: 106)))
    }

    func testFileExtensions() throws {
        XCTAssertEqual(try H.options(["--file-extensions", "pem, .crt ,PEM2", "/c"]).fileExtensions, ["pem", "crt", "PEM2"])
        XCTAssertEqual(H.error(["--file-extensions", " , ", "/c"])?.description,
                       "stapler: --file-extensions: no file extensions given")
        XCTAssertEqual(H.error(["--file-extensions", "a/b", "/c"])?.description,
                       "stapler: --file-extensions: \"a/b\" is not a file extension")
    }

    // MARK: - Errors: one clear line each

    func testUnknownOptions() {
        XCTAssertEqual(H.error(["--frobnicate", "/c"])?.description,
                       "stapler: unknown option \"--frobnicate\" (see stapler --help)")
        XCTAssertEqual(H.error(["--recurive", "/c"])?.description,
                       "stapler: unknown option \"--recurive\" (did you mean --recursive?)")
        XCTAssertEqual(H.error(["-Rx", "/c"])?.description, "stapler: unknown option \"-x\" (see stapler --help)")
        // Without this check "-daemon" would quietly mean "-d aemon".
        XCTAssertEqual(H.error(["-daemon", "/c"])?.description,
                       "stapler: unknown option \"-daemon\" (did you mean --daemon?)")
    }

    func testBadValues() {
        let cases: [([String], String)] = [
            (["--minimum-validity", "abc", "/c"], "stapler: --minimum-validity: \"abc\" is not a whole number of seconds"),
            (["--minimum-validity", "1.5", "/c"], "stapler: --minimum-validity: \"1.5\" is not a whole number of seconds"),
            (["--minimum-validity", "99999999999999999999999", "/c"],
             "stapler: --minimum-validity: \"99999999999999999999999\" is out of range (0 to 31536000 seconds)"),
            (["/c", "--minimum-validity"], "stapler: --minimum-validity: needs a value (SECONDS)"),
            (["--minimum-validity", "--recursive", "/c"], "stapler: --minimum-validity: needs a value (SECONDS)"),
            (["-t", "0", "/c"], "stapler: --renewal-threads: \"0\" is out of range (1 to 1024)"),
            (["-t", "many", "/c"], "stapler: --renewal-threads: \"many\" is not a whole number"),
            (["-r", "0", "/c"], "stapler: --refresh-interval: \"0\" is out of range (1 to 604800 seconds)"),
            (["--verbosity", "loud", "/c"], "stapler: --verbosity: \"loud\" is not a whole number"),
            (["--haproxy-socket-keepalive", "0", "/c"],
             "stapler: --haproxy-socket-keepalive: \"0\" is out of range (1 to 86400 seconds)"),
            (["-p"], "stapler: --cert-paths: needs at least one PATH"),
            (["-p", "-R"], "stapler: --cert-paths: needs at least one PATH"),
            (["-s", "/c"], "stapler: no certificates to watch: give CERT_PATH, --cert-paths or --haproxy-config "
                + "(see stapler --help)"),
            (["--recursive=yes", "/c"], "stapler: --recursive: takes no value (got \"yes\")"),
            (["-R=yes", "/c"], "stapler: --recursive: takes no value (got \"yes\")"),
            (["--minimum-validity", "1\n2", "/c"], "stapler: --minimum-validity: \"1\\x0a2\" is not a whole number of seconds"),
        ]
        for (arguments, expected) in cases {
            XCTAssertEqual(H.error(arguments)?.description, expected, "\(arguments)")
            XCTAssertEqual(H.error(arguments)?.exitCode, 2)
        }
    }

    // MARK: - HAProxy sockets

    func testTheNthSocketServesTheNthPath() throws {
        let options = try H.options(["-p", "/a", "/b", "-s", "/run/one.sock", "two.sock"])
        XCTAssertEqual(H.paths(options), ["/a", "/b"])
        XCTAssertEqual(H.sockets(options), [["/run/one.sock"], ["/srv/work/two.sock"]])
        XCTAssertEqual(options.allHAProxySockets, ["/run/one.sock", "/srv/work/two.sock"])
    }

    func testOneSocketServesEveryPath() throws {
        let options = try H.options(["/a", "/b", "/c", "-s", "/run/admin.sock"])
        XCTAssertEqual(H.sockets(options), [["/run/admin.sock"], ["/run/admin.sock"], ["/run/admin.sock"]])
    }

    func testMismatchedSocketCountIsAnError() {
        XCTAssertEqual(H.error(["/a", "/b", "-s", "/1", "/2", "/3"])?.description,
                       "stapler: 3 HAProxy sockets for 2 certificate paths: give one socket per path, "
                       + "in the same order, or a single socket for all of them")
    }

    func testAPathNamedTwiceKeepsTheSocketsOfBoth() throws {
        let options = try H.options(["-p", "/a", "/a/", "-s", "/1", "/2"])
        XCTAssertEqual(options.certificateLocations, [CertificateLocation(path: "/a", haproxySockets: ["/1", "/2"])])
    }

    func testNoHAProxySocketsOverridesSockets() throws {
        let options = try H.options(["/a", "-s", "/1", "--no-haproxy-sockets"])
        XCTAssertEqual(H.sockets(options), [[]])
        // ...and the other way round, the last one wins.
        XCTAssertEqual(H.sockets(try H.options(["/a", "--no-haproxy-sockets", "-s", "/1"])), [["/1"]])
    }

    // MARK: - check

    func testCheckSubcommand() throws {
        let command = try H.command(["check", "site.pem", "--fetch", "--minimum-validity", "60", "/abs/other.crt", "--nonce"])
        var expected = CheckOptions()
        expected.certificates = ["/srv/work/site.pem", "/abs/other.crt"]
        expected.fetch = true
        expected.minimumValidity = .seconds(60)
        expected.warning = .seconds(60)
        expected.nonce = true
        XCTAssertEqual(command, .check(expected))
    }

    /// The monitoring-plugins letters: -w, -c, -t, -v, -V, -h; the config file is --config.
    func testCheckTakesThePluginThresholdsAndTheConfigFileOnlyByItsLongName() throws {
        guard case .check(let check) = try H.command(["check", "-w", "3600", "-c60", "-t=5", "-v", "/a.pem"]) else { return XCTFail() }
        XCTAssertEqual(check.warning, .seconds(3600))
        XCTAssertEqual(check.critical, .seconds(60))
        XCTAssertEqual(check.timeout, .seconds(5))
        XCTAssertTrue(check.verbose)
        XCTAssertEqual(check.minimumValidity, .seconds(7200), "-w is the plugin's threshold, not the daemon's margin")
        XCTAssertEqual(H.error(["check", "-c", "/etc/stapler/stapler.conf", "/a.pem"])?.description,
                       "stapler: --critical: \"/etc/stapler/stapler.conf\" is not a whole number of seconds")
        XCTAssertEqual(H.error(["check", "--timeout", "0", "/a.pem"])?.description,
                       "stapler: --timeout: \"0\" is out of range (1 to 3600 seconds)")
        XCTAssertEqual(H.error(["check", "--config", "/nonexistent/x.conf", "/a.pem"])?.description
            .contains("/nonexistent/x.conf"), true, "--config names the config file")
        guard case .version = try H.command(["check", "-V"]) else { return XCTFail("-V is the version") }
        guard case .check(let defaults) = try H.command(["check", "/a.pem"]) else { return XCTFail() }
        XCTAssertEqual(defaults.warning, .seconds(7200))
        XCTAssertEqual(defaults.critical, .zero)
        XCTAssertEqual(defaults.timeout, .seconds(10))
        XCTAssertFalse(defaults.verbose)
        // Outside check, -c still names the config file.
        XCTAssertEqual(H.error(["-c", "/nonexistent/stapler.conf", "/a"])?.description.contains("/nonexistent/stapler.conf"),
                       true)
    }

    func testMetricsPerCertificateIsOnByItselfAndTakesOnlyAGluedValue() throws {
        XCTAssertTrue(try H.options(["/a"]).metricsPerCertificate)
        XCTAssertFalse(try H.options(["--metrics-per-certificate=false", "/a"]).metricsPerCertificate)
        XCTAssertFalse(try H.options(["--metrics-per-certificate=no", "/a"]).metricsPerCertificate)
        XCTAssertTrue(try H.options(["--metrics-per-certificate", "/a"]).metricsPerCertificate)
        // The next word is a certificate path, never the switch's value.
        let options = try H.options(["--metrics-per-certificate", "false"])
        XCTAssertTrue(options.metricsPerCertificate)
        XCTAssertEqual(H.paths(options), ["/srv/work/false"])
        XCTAssertEqual(H.error(["--metrics-per-certificate=maybe", "/a"])?.description,
                       "stapler: --metrics-per-certificate: \"maybe\" is not true or false")
    }

    func testCheckDefaultsAndErrors() throws {
        guard case .check(let plain) = try H.command(["check", "/a.pem"]) else { return XCTFail() }
        XCTAssertFalse(plain.fetch)
        XCTAssertFalse(plain.nonce)
        XCTAssertEqual(plain.minimumValidity, .seconds(7200))
        XCTAssertEqual(H.error(["check"])?.description,
                       "stapler: check: give at least one certificate file (see stapler check --help)")
        XCTAssertEqual(H.error(["check", "--recursive", "/a.pem"])?.description,
                       "stapler: unknown option \"--recursive\" (see stapler --help)")
        guard case .help(let text) = try H.command(["check", "--help"]) else { return XCTFail() }
        XCTAssertTrue(text.hasPrefix("usage: stapler check"))
        // "check" is a subcommand only as the first word; elsewhere it is a path.
        XCTAssertEqual(H.paths(try H.options(["-R", "check"])), ["/srv/work/check"])
    }
}
