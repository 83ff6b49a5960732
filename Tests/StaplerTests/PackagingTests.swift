import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The files under contrib/ that operators copy into place (man page, example config,
/// haproxy.cfg, systemd unit, Dockerfile, logrotate) must agree with the binary: an option
/// the man page forgets, or an example config that no longer loads, is a bug a user meets.
final class PackagingTests: XCTestCase {
    /// The repository root: this file is Tests/StaplerTests/PackagingTests.swift.
    private static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    private func contrib(_ name: String) throws -> String {
        try String(contentsOfFile: "\(Self.repository)/contrib/\(name)", encoding: .utf8)
    }

    // MARK: - Man page

    func testManPageDocumentsExactlyTheOptionsOfTheHelp() throws {
        let directory = try TemporaryDirectory()
        let run = try StaplerProcess.run(["--help"], in: directory.path)
        let check = try StaplerProcess.run(["check", "--help"], in: directory.path)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(check.status, 0, check.output)
        let help = run.output + check.output
        let manPage = ManPageText.plain(try contrib("man/stapler.8"))

        let helpOptions = Self.longOptions(in: help)
        let manOptions = Self.longOptions(in: manPage)
        XCTAssertGreaterThan(helpOptions.count, 20, "could not read the options from --help:\n\(help)")
        XCTAssertEqual(helpOptions.subtracting(manOptions).sorted(), [], "in stapler --help, missing from stapler.8")
        XCTAssertEqual(manOptions.subtracting(helpOptions).sorted(), [], "in stapler.8, unknown to stapler --help")

        // The option table is what the parser accepts; the man page must cover all of it.
        let tableOptions = Set((OptionTable.run + OptionTable.check).flatMap(\.longNames).map { "--" + $0 })
        XCTAssertEqual(tableOptions.subtracting(manOptions).sorted(), [], "accepted by stapler, missing from stapler.8")

        // Short spellings, as pairs where --help gives them ("-p, --cert-paths").
        let pairs = Self.matches(of: #"(?<![\w-])(-[A-Za-z]), (--[a-z][a-z0-9-]*)"#, in: help).map { "\($0[1]), \($0[2])" }
        XCTAssertGreaterThan(pairs.count, 10)
        for pair in Set(pairs) {
            XCTAssertTrue(manPage.contains(pair), "stapler.8 does not give \"\(pair)\" as --help does")
        }
        for short in (OptionTable.run + OptionTable.check).compactMap(\.shortName) {
            XCTAssertFalse(Self.matches(of: #"(?<![\w-])-\#(short)(?![\w-])"#, in: manPage).isEmpty,
                           "stapler.8 never mentions -\(short)")
        }
    }

    func testManPageHasTheUsualSections() throws {
        let source = try contrib("man/stapler.8")
        let sections = Self.matches(of: #"(?m)^\.SH (.+)$"#, in: source).map { $0[1].replacingOccurrences(of: "\"", with: "") }
        for wanted in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CHECK COMMAND", "SIGNALS", "FILES",
                       "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            XCTAssertTrue(sections.contains(wanted), "stapler.8 has no \(wanted) section: \(sections)")
        }
        // The sections man-pages(7) names come in its order; our own (CHECK COMMAND, ...) may sit between.
        let conventional = ["NAME", "SYNOPSIS", "CONFIGURATION", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                            "RETURN VALUE", "ERRORS", "ENVIRONMENT", "FILES", "ATTRIBUTES", "VERSIONS", "STANDARDS",
                            "HISTORY", "NOTES", "CAVEATS", "BUGS", "EXAMPLES", "AUTHORS", "REPORTING BUGS",
                            "COPYRIGHT", "SEE ALSO"]
        let present = sections.filter(conventional.contains)
        XCTAssertEqual(present, conventional.filter(present.contains), "stapler.8 is not in man-pages(7) order")
        XCTAssertTrue(source.contains(".TH STAPLER 8 "), "the title line names another page or section")
        XCTAssertTrue(source.contains("\"stapler \(Usage.programVersion)\""), "the title line names another version")
    }

    /// The Debian package takes its version from the binary and refuses to build without a
    /// changelog entry for it: a version bump must come with one.
    func testDebianChangelogNamesTheProgramVersion() throws {
        let newest = try XCTUnwrap(try contrib("debian/changelog").split(separator: "\n").first)
        XCTAssertTrue(newest.hasPrefix("stapler (\(Usage.programVersion)) "),
                      "contrib/debian/changelog starts \"\(newest)\", the program is \(Usage.programVersion)")
    }

    // MARK: - Example configuration

    func testExampleConfigurationLoadsAndShowsTheDefaults() throws {
        let path = "\(Self.repository)/contrib/stapler.conf"
        let options = try Self.load(["-c", path])
        XCTAssertEqual(options.warnings, [])
        // Every value in the file is the built-in default, except what to watch and where to push.
        var expected = Options()
        expected.certificateLocations = [CertificateLocation(path: "/etc/haproxy/certs",
                                                             haproxySockets: ["/run/haproxy/admin.sock"])]
        expected.configFile = FilePath(path)
        XCTAssertEqual(options, expected)
    }

    /// Lines written "#key = value" are alternatives the reader may switch on; each must load.
    func testEveryAlternativeInTheExampleConfigurationLoads() throws {
        let directory = try TemporaryDirectory()
        let haproxyConfig = directory.file("haproxy.cfg")
        try contrib("haproxy/haproxy.cfg").write(toFile: haproxyConfig, atomically: false, encoding: .utf8)
        let lines = try contrib("stapler.conf").components(separatedBy: "\n")
        let alternatives = lines.indices.filter { lines[$0].range(of: #"^#[a-z]"#, options: .regularExpression) != nil }
        XCTAssertGreaterThanOrEqual(alternatives.count, 8)
        for index in alternatives {
            var edited = lines
            edited[index] = String(lines[index].dropFirst())
                .replacingOccurrences(of: "/etc/haproxy/haproxy.cfg", with: haproxyConfig)
            let file = directory.file("stapler-\(index).conf")
            try edited.joined(separator: "\n").write(toFile: file, atomically: false, encoding: .utf8)
            do {
                let options = try Self.load(["-c", file])
                let expectedWarnings = edited[index].hasPrefix("directories") ? 1 : 0
                XCTAssertEqual(options.warnings.count, expectedWarnings, "\(edited[index]): \(options.warnings)")
            } catch {
                XCTFail("stapler.conf line \(index + 1) \"\(edited[index])\" does not load: \(error)")
            }
        }
    }

    /// The real binary starts with the example file (paths pointed at a temporary directory)
    /// and finishes a pass.
    func testStaplerRunsWithTheExampleConfiguration() throws {
        let directory = try TemporaryDirectory()
        let certificates = directory.file("certs")
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        let config = directory.file("stapler.conf")
        try contrib("stapler.conf")
            .replacingOccurrences(of: "/etc/haproxy/certs", with: certificates)
            .replacingOccurrences(of: "/run/haproxy/admin.sock", with: directory.file("admin.sock"))
            .write(toFile: config, atomically: false, encoding: .utf8)
        let result = try StaplerProcess.run(["-c", config, "--one-off", "-v"], in: directory.path)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("one pass done"), result.output)
    }

    // MARK: - Example haproxy.cfg

    func testExampleHAProxyConfigIsReadAsStaplerExpects() throws {
        let shipped = try HAProxyConfigReader.read(FilePath("\(Self.repository)/contrib/haproxy/haproxy.cfg"),
                                                   workingDirectory: "/")
        XCTAssertEqual(shipped.certificatePaths, ["/etc/haproxy/certs"])
        XCTAssertEqual(shipped.statsSockets.map(\.path), ["/run/haproxy/admin.sock"])
        XCTAssertEqual(shipped.statsSockets.map(\.hasAdminLevel), [true])
        XCTAssertEqual(shipped.notices, [])

        // The stapler.conf example and the haproxy.cfg example describe the same set-up.
        let fromConfig = try Self.load(["-c", "\(Self.repository)/contrib/stapler.conf"])
        XCTAssertEqual(fromConfig.certificateLocations.map(\.path), shipped.certificatePaths)
        XCTAssertEqual(fromConfig.allHAProxySockets, shipped.statsSockets.map(\.path))
    }

    func testRealHAProxyAcceptsTheExampleConfig() throws {
        let haproxy: String
        do { haproxy = try Shell.resolve("haproxy") } catch { throw XCTSkip("haproxy is not installed") }
        let directory = try TemporaryDirectory()
        let certificates = directory.file("certs")
        let run = directory.file("run")
        for path in [certificates, run] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        let pki = try TestPKI(directory: directory.file("pki"))
        let leaf = try pki.issueLeaf(commonName: "www.example.test", ocspURLs: ["http://127.0.0.1:1/"])
        try pki.writeBundle(leaf, to: certificates + "/www.example.test.pem")
        var text = try contrib("haproxy/haproxy.cfg")
            .replacingOccurrences(of: "/etc/haproxy/certs", with: certificates)
            .replacingOccurrences(of: "/run/haproxy", with: run)
        if (try? Shell.run(["id", "haproxy"])) == nil {
            // Only a system with HAProxy's own user can switch to it; the rest still counts.
            text = text.replacingOccurrences(of: #"(?m)^\s*(user|group) haproxy\s*$"#, with: "",
                                             options: .regularExpression)
                .replacingOccurrences(of: " group haproxy", with: "")
        }
        let config = directory.file("haproxy.cfg")
        try text.write(toFile: config, atomically: false, encoding: .utf8)

        let check = try Shell.run([haproxy, "-c", "-f", config], allowFailure: true)
        XCTAssertEqual(check.status, 0, check.output)

        let options = try Self.load(["--haproxy-config", config])
        XCTAssertEqual(options.warnings, [], "a stats socket without level admin, or a skipped line")
        XCTAssertEqual(options.certificateLocations,
                       [CertificateLocation(path: FilePath(certificates), haproxySockets: [FilePath(run + "/admin.sock")])])
    }

    // MARK: - systemd unit, Dockerfile, logrotate

    /// The command lines the unit and the image start with must parse, and stay in the
    /// foreground whatever the config file says.
    func testServiceAndImageCommandLinesAreAccepted() throws {
        let directory = try TemporaryDirectory()
        let config = directory.file("stapler.conf")
        // A config that asks to detach: the unit and the image must override it.
        try (contrib("stapler.conf").replacingOccurrences(of: "daemon = false", with: "daemon = true"))
            .write(toFile: config, atomically: false, encoding: .utf8)

        let unit = try contrib("systemd/stapler.service")
        let execStart = try XCTUnwrap(Self.matches(of: #"(?m)^ExecStart=(.+)$"#, in: unit).first?[1])
        var words = execStart.split(separator: " ").map(String.init)
        XCTAssertEqual(words.first, "/usr/local/bin/stapler")
        words = words.dropFirst().filter { $0 != "$STAPLER_OPTS" }
            .map { $0 == "/etc/stapler/stapler.conf" ? config : $0 }
        XCTAssertTrue(words.contains(config), "ExecStart does not read /etc/stapler/stapler.conf")
        let service = try Self.load(words)
        XCTAssertFalse(service.daemonize, "the unit would let stapler detach from systemd")

        // The unit may write where the example config keeps certificates.
        let writable = Self.matches(of: #"(?m)^ReadWritePaths=(.+)$"#, in: unit).flatMap { $0[1].split(separator: " ") }
        for location in service.certificateLocations {
            XCTAssertTrue(writable.contains(Substring(location.path.description)),
                          "ReadWritePaths= lacks \(location.path), where staples are written")
        }
        XCTAssertTrue(unit.contains("Type=notify"))
        XCTAssertTrue(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))

        let dockerfile = try contrib("docker/Dockerfile")
        let entrypoint = try Self.jsonWords(after: "ENTRYPOINT", in: dockerfile)
        let command = try Self.jsonWords(after: "CMD", in: dockerfile)
        XCTAssertEqual(entrypoint.first, "/usr/local/bin/stapler")
        let image = try Self.load(Array(entrypoint.dropFirst()) + command + ["-c", config])
        XCTAssertFalse(image.daemonize, "the image would let stapler detach from PID 1")
        XCTAssertEqual(image.certificateLocations,
                       [CertificateLocation(path: "/etc/haproxy/certs", haproxySockets: ["/run/haproxy/admin.sock"])])
        for volume in ["/etc/haproxy/certs", "/run/haproxy"] {
            XCTAssertTrue(dockerfile.contains("\"\(volume)\""), "the image declares no volume \(volume)")
        }

        // logrotate rotates the file -l writes.
        let logrotate = try contrib("logrotate/stapler")
        let logFile = SettingsLayer.defaultLogDirectory.appending(FilePath(Logger.fileName))
        XCTAssertTrue(logrotate.contains("\(logFile) {"), "logrotate does not rotate \(logFile)")
    }

    // MARK: - Helpers

    /// Loads a configuration as the daemon does, without this machine's default config files.
    private static func load(_ arguments: [String]) throws -> Options {
        let command = try ConfigurationLoader.load(arguments: arguments, environment: [:], workingDirectory: "/",
                                                   defaultConfigFiles: [])
        guard case .run(let options) = command else { throw ConfigurationError.invalidSettings("not a run: \(command)") }
        return options
    }

    private static func longOptions(in text: String) -> Set<String> {
        Set(matches(of: #"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*"#, in: text).map { $0[0] })
    }

    /// Each match with its capture groups (index 0: the whole match).
    private static func matches(of pattern: String, in text: String) -> [[String]] {
        guard let regex = try? NSRegularExpression(pattern: pattern) else {
            XCTFail("bad pattern \(pattern)")
            return []
        }
        let whole = NSRange(text.startIndex..., in: text)
        return regex.matches(in: text, range: whole).map { match in
            (0..<match.numberOfRanges).map { group in
                Range(match.range(at: group), in: text).map { String(text[$0]) } ?? ""
            }
        }
    }

    /// The exec-form words of a Dockerfile instruction: `CMD ["a", "b"]`.
    private static func jsonWords(after instruction: String, in dockerfile: String) throws -> [String] {
        let line = try XCTUnwrap(matches(of: #"(?m)^\#(instruction) (\[.*\])\s*$"#, in: dockerfile).last?[1],
                                 "no exec-form \(instruction)")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String])
    }
}

/// A man page's source reduced to the words a reader sees, without a roff formatter: font
/// macros join their arguments as roff does (`.BR \-p ", " \-\-cert\-paths` reads
/// "-p, --cert-paths"), escapes become the characters they print.
enum ManPageText {
    static func plain(_ source: String) -> String {
        source.components(separatedBy: "\n").compactMap(line).joined(separator: "\n")
    }

    private static let alternatingFonts: Set<String> = ["BR", "RB", "BI", "IB", "IR", "RI"]

    private static func line(_ text: String) -> String? {
        if text.hasPrefix(".\\\"") || text.hasPrefix("'\\\"") { return nil }
        guard text.hasPrefix(".") else { return unescape(text) }
        let parts = text.dropFirst().split(separator: " ", maxSplits: 1)
        guard let macro = parts.first.map(String.init) else { return nil }
        let arguments = parts.count > 1 ? words(String(parts[1])) : []
        if alternatingFonts.contains(macro) { return unescape(arguments.joined()) }
        return unescape(arguments.joined(separator: " "))
    }

    /// roff's argument splitting: blanks separate, double quotes group, `""` inside quotes is
    /// a quote, and an escaped blank (`\ `) stays in its argument.
    private static func words(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        var quoted = false
        var started = false
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            if character == "\\", let next = characters.first {
                current.append(character)
                current.append(next)
                characters = characters.dropFirst()
                started = true
            } else if character == "\"" {
                if quoted, characters.first == "\"" {
                    current.append("\"")
                    characters = characters.dropFirst()
                } else {
                    quoted.toggle()
                    started = true
                }
            } else if character == " " && !quoted {
                if started { result.append(current) }
                current = ""
                started = false
            } else {
                current.append(character)
                started = true
            }
        }
        if started { result.append(current) }
        return result
    }

    private static func unescape(_ text: String) -> String {
        var result = text
        for (escape, replacement) in [("\\-", "-"), ("\\fB", ""), ("\\fI", ""), ("\\fR", ""), ("\\fP", ""),
                                      ("\\|", ""), ("\\&", ""), ("\\ ", " "), ("\\(lq", "\""), ("\\(rq", "\""),
                                      ("\\(dq", "\""), ("\\(em", "-"), ("\\e", "\\")] {
            result = result.replacingOccurrences(of: escape, with: replacement)
        }
        return result
    }
}
