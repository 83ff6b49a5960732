import COpenSSL
import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The parsers that read hostile bytes, fed mutated versions of real inputs for a fixed time
/// with a fixed seed: a cheap, always-on companion of the libFuzzer targets in contrib/fuzz
/// (which run much longer, with AddressSanitizer). A crash here is a crash in the daemon.
/// Inputs the fuzzers once choked on are replayed first.
final class HardeningFuzzTests: XCTestCase {
    /// Per parser; the whole class stays well under ten seconds.
    private static let budget: TimeInterval = 1.0

    // MARK: Parsers

    func testPEMSplitterAndBundleParserSurviveMutatedBundles() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:1/"])
        let bundle = Array(try Data(contentsOf: URL(fileURLWithPath: try fixture.bundle(leaf, name: "seed.pem"))))
        let seeds = [bundle, Array("-----BEGIN X-----\n-----END X-----\n".utf8),
                     Array(String(repeating: "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n", count: 70).utf8)]
        let store = IssuerStore()
        let runs = fuzz(seeds: seeds, regressions: Self.pemRegressions) { input in
            _ = try? PEMParser.blocks(in: input)
            var text = input
            _ = try? CertificateBundle.parse(pem: &text, path: "/fuzz.pem", now: UTCTime.now(), issuers: store,
                                             readCompanion: { _ in nil })
            XCTAssertTrue(text.allSatisfy { $0 == 0 }, "the text is wiped whatever happens")
        }
        XCTAssertGreaterThan(runs, 100)
    }

    func testConfigFileParserSurvivesMutatedFiles() {
        let seeds = [Array("""
            # Stapled configuration
            [stapled]
            cert-paths = [/etc/a, "/etc/b c", '/etc/d']
            recursive
            verbosity: 3
            minimum-validity 3600 ; comment
            ignore = ["*.bak", /x/**]
            haproxy-sockets = /run/haproxy.sock
            daemon = false

            """.utf8)]
        let runs = fuzz(seeds: seeds, regressions: Self.configRegressions) { input in
            guard let entries = try? ConfigFile.parse(input, file: "/fuzz.conf") else { return }
            do {
                _ = try ConfigFile.settings(from: entries, file: "/fuzz.conf", options: OptionTable.run)
            } catch {
                let text = "\(error)"
                XCTAssertFalse(text.utf8.contains { $0 < 0x20 }, "one printable line: \(text)")
            }
        }
        XCTAssertGreaterThan(runs, 100)
    }

    func testHAProxyConfigReaderSurvivesMutatedFiles() {
        let seeds = [Array("""
            global
                crt-base /etc/ssl/private
                unix-bind prefix /run/
                stats socket haproxy.sock mode 600 level admin
                stats socket ipv4@127.0.0.1:9999 level admin
            defaults
                mode http
            frontend https
                bind :443 ssl crt site.pem crt "/etc/my certs/" crt-list '/etc/lists/l.txt' alpn h2
                bind :8443 ssl crt ${CERTS}/a.pem crt \\"odd\\ name.pem # comment
            backend b
                server s 127.0.0.1:8443 ssl crt client.pem
                default-server crt "${MISSING-/fallback}.pem"

            """.utf8)]
        let runs = fuzz(seeds: seeds, regressions: Self.haproxyRegressions) { input in
            for line in input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                _ = try? HAProxyLineTokenizer.words(line, environment: ["CERTS": "/etc/certs"])
            }
            var parser = HAProxyConfigParser(environment: ["CERTS": "/etc/certs"], workingDirectory: "/etc/haproxy",
                                             load: { (_, _) throws(ConfigurationError) in input })
            do {
                try parser.parse(input, file: "/fuzz.cfg")
            } catch {
                XCTAssertFalse("\(error)".utf8.contains { $0 < 0x20 }, "one printable line: \(error)")
            }
            _ = parser.summary(for: "/fuzz.cfg")
        }
        XCTAssertGreaterThan(runs, 100)
    }

    func testHAProxyAnswerFramerSurvivesMutatedStreams() {
        let seeds = [Array("+ + + Transaction created for certificate /etc/a.pem!\n\n> ".utf8),
                     Array("OCSP Response updated!\n\n> ".utf8), Array("\n> ".utf8),
                     Array("# filename\n/etc/haproxy/a.pem\n/etc/haproxy/b c.pem\n\n> ".utf8)]
        let runs = fuzz(seeds: seeds, regressions: Self.framerRegressions) { input in
            var framer = HAProxyPromptFramer(limit: 256)
            var index = 0
            while index < input.count {
                let end = min(input.count, index + 1 + Int(input[index] % 13))
                switch framer.append(input[index..<end]) {
                case .answer(let text):
                    XCTAssertLessThanOrEqual(text.count, 256 + 16)
                    _ = HAProxyAnswer(text)
                case .tooLarge:
                    XCTAssertEqual(framer.bufferedBytes, 0, "a refused answer is not kept")
                case .incomplete, .trailingBytes:
                    break
                }
                XCTAssertLessThanOrEqual(framer.bufferedBytes, 256 + 13, "never more than the limit held")
                index = end
            }
        }
        XCTAssertGreaterThan(runs, 100)
    }

    func testOCSPVerifierSurvivesMutatedResponses() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:1/"])
        let record = try fixture.record(for: leaf)
        let responder = try fixture.pki.issueResponder()
        let seeds = [Array(try fixture.pki.ocspResponse(for: leaf)),
                     Array(try fixture.pki.ocspResponse(for: leaf, signer: responder)),
                     Array(try fixture.pki.ocspResponseWithoutNextUpdate(for: leaf)),
                     [0x30, 0x03, 0x0a, 0x01, 0x03]]
        let now = UTCTime.now()
        var accepted = 0
        let runs = fuzz(seeds: seeds, regressions: Self.ocspRegressions) { input in
            do {
                let verified = try OCSPResponseVerifier.verify(input, for: record, now: now)
                XCTAssertEqual(verified.der, input)
                XCTAssertGreaterThan(verified.nextUpdate, now)
                accepted += 1
            } catch {
                XCTAssertFalse("\(error)".utf8.contains { $0 < 0x20 }, "one printable line: \(error)")
            }
            XCTAssertEqual(ERR_peek_error(), 0, "OpenSSL's error queue is left empty")
        }
        XCTAssertGreaterThan(runs, 100)
        XCTAssertGreaterThan(accepted, 0, "the unmutated seeds verify")
    }

    // MARK: Regressions

    // Inputs that once broke (or nearly broke) a parser, replayed before any mutation.
    private static let pemRegressions: [[UInt8]] = [
        [],
        Array("-----BEGIN -----\n".utf8),
        Array("-----BEGIN CERTIFICATE-----".utf8),
        Array("-----BEGIN CERTIFICATE-----\r\n\r\n-----END CERTIFICATE-----\r\n".utf8),
        Array("-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n".utf8),
        [0x2d, 0x2d, 0x2d, 0x2d, 0x2d, 0x42, 0x45, 0x47, 0x49, 0x4e, 0x20, 0xff, 0x2d, 0x2d, 0x2d, 0x2d, 0x2d],
    ]
    private static let configRegressions: [[UInt8]] = [
        [], [0x0a], Array("=".utf8), Array("a =".utf8), Array("cert-paths = [".utf8), Array("cert-paths = ]".utf8),
        Array("cert-paths = [\"]".utf8), Array("verbosity = \"".utf8), Array("ignore = [a, \"b, c]".utf8),
        Array("minimum-validity = 99999999999999999999999".utf8), Array("renewal-threads = -1".utf8),
    ]
    private static let haproxyRegressions: [[UInt8]] = [
        [], Array("\\".utf8), Array("\"".utf8), Array("'".utf8), Array("$".utf8), Array("${".utf8), Array("${A".utf8),
        Array("\\x".utf8), Array("\\x4".utf8), Array("\"\\".utf8), Array("bind :1 crt".utf8),
        Array("global\n crt-base\nfrontend f\n bind :1 crt-list\n".utf8),
        Array("global\n stats socket\n unix-bind prefix\n".utf8),
    ]
    private static let framerRegressions: [[UInt8]] = [
        [], Array("+".utf8), Array("+ ".utf8), Array("\n".utf8), Array("\n>".utf8), Array("\n> \n> ".utf8),
        Array(repeating: UInt8(ascii: "+"), count: 600), Array(repeating: 0x0a, count: 600),
    ]
    private static let ocspRegressions: [[UInt8]] = [
        [], [0x30], [0x30, 0x80], [0x30, 0x84, 0xff, 0xff, 0xff, 0xff], [0x30, 0x03, 0x0a, 0x01, 0x00],
        [0x30, 0x03, 0x0a, 0x01, 0x04], [0x30, 0x03, 0x0a, 0x01, 0x7f], [0x30, 0x05, 0x0a, 0x01, 0x00, 0xa0, 0x00],
        Array(repeating: 0x30, count: 20 * 1024 + 1),
    ]

    // MARK: Engine

    /// Runs `body` on each regression input, then on mutations of the seeds until the
    /// budget is spent. Returns the number of inputs tried.
    private func fuzz(seeds: [[UInt8]], regressions: [[UInt8]], _ body: ([UInt8]) -> Void) -> Int {
        for input in regressions { body(input) }
        for input in seeds { body(input) }
        var generator = SeededGenerator.announced("hardening fuzz mutations", fixed: 0xC0FFEE)
        let deadline = Date().addingTimeInterval(Self.budget)
        var runs = regressions.count + seeds.count
        while Date() < deadline {
            var input = seeds[Int.random(in: 0..<seeds.count, using: &generator)]
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                mutate(&input, seeds: seeds, using: &generator)
            }
            body(input)
            runs += 1
        }
        return runs
    }

    private static let interesting: [UInt8] = [0x00, 0x01, 0x0a, 0x0d, 0x20, 0x22, 0x27, 0x2d, 0x30, 0x3d, 0x5b, 0x5c,
                                                0x5d, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xa0, 0xff]

    private func mutate(_ input: inout [UInt8], seeds: [[UInt8]], using generator: inout SeededGenerator) {
        let position = input.isEmpty ? 0 : Int.random(in: 0..<input.count, using: &generator)
        switch Int.random(in: 0..<7, using: &generator) {
        case 0 where !input.isEmpty:
            input[position] ^= UInt8(1) << UInt8.random(in: 0...7, using: &generator)
        case 1 where !input.isEmpty:
            input[position] = Self.interesting.randomElement(using: &generator)!
        case 2:
            let count = Int.random(in: 1...16, using: &generator)
            input.insert(contentsOf: (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }, at: position)
        case 3 where !input.isEmpty:
            let end = min(input.count, position + Int.random(in: 1...64, using: &generator))
            input.removeSubrange(position..<end)
        case 4 where !input.isEmpty:
            let end = min(input.count, position + Int.random(in: 1...64, using: &generator))
            let chunk = input[position..<end]
            input.insert(contentsOf: chunk, at: Int.random(in: 0...input.count, using: &generator))
        case 5:
            input.removeSubrange(position..<input.count)
        default:
            let other = seeds[Int.random(in: 0..<seeds.count, using: &generator)]
            guard !other.isEmpty else { return }
            let start = Int.random(in: 0..<other.count, using: &generator)
            let end = min(other.count, start + Int.random(in: 1...256, using: &generator))
            input.insert(contentsOf: other[start..<end], at: position)
        }
    }
}
