import Reactor
@testable import Stapler
import XCTest

/// Commands, answers and framing of HAProxy's runtime API, as plain values. The answer texts
/// are the ones HAProxy 2.6.12 sent in the real-HAProxy tests.
final class HAProxyProtocolTests: XCTestCase {
    // MARK: Commands

    func testCommandsAreTheLinesHAProxyExpects() {
        let staple: [UInt8] = [0x30, 0x82, 0x01, 0xFF, 0x0A]
        let base64 = Base64.encode(staple)
        XCTAssertEqual(text(.prompt), "prompt\n")
        XCTAssertEqual(text(.setCLITimeout(seconds: 21)), "set timeout cli 21\n")
        XCTAssertEqual(text(.setOCSPResponse(base64: base64)), "set ssl ocsp-response MIIB/wo=\n")
        XCTAssertEqual(text(.showCertificates), "show ssl cert\n")
        XCTAssertEqual(text(.setCertificateOCSP(certificate: "/etc/haproxy/certs/a.pem", base64: base64)),
                       "set ssl cert /etc/haproxy/certs/a.pem.ocsp <<\nMIIB/wo=\n\n")
        XCTAssertEqual(text(.commitCertificate("/etc/haproxy/certs/a.pem")), "commit ssl cert /etc/haproxy/certs/a.pem\n")
    }

    func testCertificateNamesAreEscapedSoBlanksAndSemicolonsStayInTheName() {
        XCTAssertEqual(text(.commitCertificate("/c/c d;e\\f\tg.pem")), "commit ssl cert /c/c\\ d\\;e\\\\f\\\tg.pem\n")
        // Bytes that are not UTF-8 pass through untouched.
        let odd = FilePath(bytes: Array("/c/".utf8) + [0xFF, 0xFE] + Array(".pem".utf8))
        XCTAssertEqual(HAProxyCommand.commitCertificate(odd).bytes,
                       Array("commit ssl cert /c/".utf8) + [0xFF, 0xFE] + Array(".pem\n".utf8))
    }

    func testCommandLengthIsKnownBeforeEncoding() {
        for size in [0, 1, 2, 3, 4, 500, 1_501, 4_096, 11_999] {
            let bytes = [UInt8](repeating: 0xAB, count: size)
            XCTAssertEqual(HAProxyCommand.setOCSPResponseLength(stapleBytes: size),
                           HAProxyCommand.setOCSPResponse(base64: Base64.encode(bytes)).bytes.count, "\(size)")
        }
    }

    // MARK: Answers

    func testAnswersSeenOnHAProxy2612AreClassified() {
        let cases: [(String, HAProxyAnswer)] = [
            ("", .empty),
            ("OCSP Response updated!", .ocspResponseUpdated),
            ("OCSP single response: Certificate ID does not match any certificate or issuer.", .certificateIDNotFound),
            ("OCSP single response: no longer valid..", .ocspResponseRejected),
            ("OCSP single response: missing nextupdate.", .ocspResponseRejected),
            ("OCSP single response: certificate status is unknown.", .ocspResponseRejected),
            ("OCSP response status not successful.", .ocspResponseRejected),
            ("Failed to get basic response from OCSP Response.", .ocspResponseRejected),
            ("Transaction created for certificate /etc/OCSP/a.pem!", .transactionOpened(certificate: "/etc/OCSP/a.pem")),
            ("Unable to parse OCSP response.", .ocspResponseRejected),
            ("'set ssl ocsp-response' received invalid base64 encoded response.", .ocspResponseRejected),
            ("Transaction created for certificate /tmp/certs/b.pem!", .transactionOpened(certificate: "/tmp/certs/b.pem")),
            ("Transaction updated for certificate /tmp/certs/c d;e.pem!",
             .transactionOpened(certificate: "/tmp/certs/c d;e.pem")),
            ("Committing /tmp/certs/b.pem.\nSuccess!", .committed),
            ("Can't replace a certificate which is not referenced by the configuration!\nCan't update /tmp/x.pem.ocsp!",
             .certificateNotInConfiguration),
            ("Permission denied", .permissionDenied),
            ("Unknown command, but maybe one of the following ones is a better match:\n  prompt   : toggle", .unknownCommand),
            ("No ongoing transaction! !\nCan't commit /tmp/x.pem!", .other("No ongoing transaction! ! | Can't commit /tmp/x.pem!")),
            ("Can't allocate memory!", .other("Can't allocate memory!")),
        ]
        for (answer, expected) in cases {
            XCTAssertEqual(HAProxyAnswer(Array(answer.utf8)), expected, answer)
        }
    }

    func testUnknownAnswersAreCutForTheLog() {
        let long = String(repeating: "garbage ", count: 100)
        guard case .other(let excerpt) = HAProxyAnswer(Array(long.utf8)) else { return XCTFail() }
        XCTAssertEqual(excerpt.count, 203)
        XCTAssertTrue(excerpt.hasSuffix("..."))
    }

    // MARK: Framing

    func testPromptModeAnswersAreCutAtTheEmptyLineAndPrompt() {
        let transcripts: [(String, String)] = [
            ("\n> ", ""),
            ("OCSP Response updated!\n\n> ", "OCSP Response updated!"),
            ("+ + Transaction created for certificate /c/b.pem!\n\n> ", "Transaction created for certificate /c/b.pem!"),
            ("+ + \n> ", ""),
            ("# filename\n/c/a.pem\n/c/b.pem\n\n> ", "# filename\n/c/a.pem\n/c/b.pem"),
            ("Committing /c/b.pem.\nSuccess!\n\n> ", "Committing /c/b.pem.\nSuccess!"),
            // A "> " that does not follow an empty line is text, not the prompt.
            ("a\n> b\n\n> ", "a\n> b"),
        ]
        for (wire, answer) in transcripts {
            let bytes = Array(wire.utf8)
            // Whole, cut in two at every point, and byte by byte.
            var splits: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
            for cut in 1..<bytes.count { splits.append([Array(bytes[..<cut]), Array(bytes[cut...])]) }
            for chunks in splits {
                var framer = HAProxyPromptFramer(limit: 1 << 16)
                var outputs: [HAProxyPromptFramer.Output] = []
                for chunk in chunks { outputs.append(framer.append(chunk)) }
                XCTAssertEqual(outputs.last, .answer(Array(answer.utf8)), "\(wire.debugDescription) in \(chunks.count) chunks")
                XCTAssertTrue(outputs.dropLast().allSatisfy { $0 == .incomplete }, wire.debugDescription)
                XCTAssertEqual(framer.bufferedBytes, 0)
            }
        }
    }

    func testFramerRefusesFloodsAndBytesAfterThePrompt() {
        var framer = HAProxyPromptFramer(limit: 100)
        XCTAssertEqual(framer.append([UInt8](repeating: 0x41, count: 60)), .incomplete)
        XCTAssertEqual(framer.append([UInt8](repeating: 0x41, count: 60)), .tooLarge(limit: 100))
        XCTAssertEqual(framer.bufferedBytes, 0, "nothing kept after a flood")
        XCTAssertEqual(framer.append(Array("ok\n\n> extra".utf8)), .trailingBytes)
        XCTAssertEqual(framer.append(Array("\n> ".utf8)), .answer([]), "usable again")
    }

    // MARK: show ssl cert

    func testCertificateListingIsParsedWithOpenTransactions() {
        let answer = "# transaction\n*/tmp/hx/certs/b.pem\n# filename\n/tmp/hx/certs/a.pem\n/tmp/hx/certs/b.pem\n/tmp/hx/certs/c d;e.pem"
        let listing = HAProxyCertificateListing(Array(answer.utf8))
        XCTAssertEqual(listing?.certificates, ["/tmp/hx/certs/a.pem", "/tmp/hx/certs/b.pem", "/tmp/hx/certs/c d;e.pem"])
        XCTAssertEqual(HAProxyCertificateListing(Array("# filename".utf8))?.certificates, [])
        XCTAssertNil(HAProxyCertificateListing(Array("Can't allocate memory!".utf8)))
        XCTAssertNil(HAProxyCertificateListing(Array("Permission denied".utf8)))
    }

    func testNamesAreFoundByRealPathWhicheverWayTheCertificateWasReached() {
        // HAProxy loaded /etc/haproxy/certs/a.pem, a link to /srv/tls/a.pem; the daemon found
        // the certificate as /srv/tls/live/../a.pem.
        let realPaths: [FilePath: FilePath] = [
            "/etc/haproxy/certs/a.pem": "/srv/tls/a.pem",
            "/srv/tls/live/../a.pem": "/srv/tls/a.pem",
            "/etc/haproxy/certs/b.pem": "/etc/haproxy/certs/b.pem",
        ]
        let resolve: (FilePath) -> FilePath? = { realPaths[$0] }
        var names = HAProxyCertificateNames()
        let listing = HAProxyCertificateListing(Array("# filename\n/etc/haproxy/certs/a.pem\n/etc/haproxy/certs/b.pem\nrelative.pem".utf8))!
        let start = MonotonicInstant.now()
        XCTAssertTrue(names.mayRefresh(now: start, interval: .seconds(10)))
        names.update(from: listing, at: start, resolve: resolve)
        XCTAssertEqual(names.name(for: "/srv/tls/live/../a.pem", resolve: resolve), "/etc/haproxy/certs/a.pem")
        XCTAssertEqual(names.name(for: "/etc/haproxy/certs/b.pem", resolve: resolve), "/etc/haproxy/certs/b.pem")
        XCTAssertEqual(names.name(for: "relative.pem", resolve: resolve), "relative.pem", "unresolvable names match as written")
        XCTAssertNil(names.name(for: "/srv/tls/other.pem", resolve: resolve))
        XCTAssertFalse(names.mayRefresh(now: start + .seconds(5), interval: .seconds(10)))
        XCTAssertTrue(names.mayRefresh(now: start + .seconds(10), interval: .seconds(10)))
        names.forget()
        XCTAssertEqual(names.count, 0)
        XCTAssertTrue(names.mayRefresh(now: start, interval: .seconds(10)))
    }

    // MARK: Queue

    func testQueueKeepsOnlyTheNewestStaplePerCertificateAndStaysBounded() {
        var queue = HAProxyPushQueue(limit: 3)
        var results: [String: HAProxyPushResult] = [:]
        func entry(_ certificate: String, _ staple: UInt8) -> HAProxyPushQueue.Entry {
            .init(certificate: FilePath(certificate), staple: [staple]) { results["\(certificate)#\(staple)"] = $0 }
        }
        func enqueue(_ e: HAProxyPushQueue.Entry) -> String {
            switch queue.enqueue(e) {
            case .added: return "added"
            case .replaced(let old):
                old.completion(.superseded)
                return "replaced"
            case .full: return "full"
            }
        }
        XCTAssertEqual(enqueue(entry("a", 1)), "added")
        XCTAssertEqual(enqueue(entry("b", 1)), "added")
        for staple in UInt8(2)...50 { XCTAssertEqual(enqueue(entry("a", staple)), "replaced") }
        XCTAssertEqual(enqueue(entry("c", 1)), "added")
        XCTAssertEqual(enqueue(entry("d", 1)), "full")
        XCTAssertEqual(enqueue(entry("c", 2)), "replaced", "a full queue still takes newer staples")
        XCTAssertEqual(queue.count, 3)
        XCTAssertEqual(results.count, 49 + 1)
        XCTAssertTrue(results.values.allSatisfy { $0 == .superseded })

        // "a" keeps its place with its newest staple.
        let first = queue.popFirst()
        XCTAssertEqual(first?.certificate, "a")
        XCTAssertEqual(first?.staple, [50])
        // A failed delivery goes to the back ...
        XCTAssertNil(queue.requeue(first!))
        XCTAssertEqual(queue.popFirst()?.certificate, "b")
        // ... unless a newer staple arrived meanwhile, which then wins.
        let c = queue.popFirst()!
        XCTAssertEqual(enqueue(entry("c", 3)), "added")
        XCTAssertEqual(queue.requeue(c)?.staple, [2])
        XCTAssertEqual(queue.removeAll().map { "\($0.certificate)#\($0.staple[0])" }, ["a#50", "c#3"])
        XCTAssertTrue(queue.isEmpty)
    }

    func testQueueStaysCompactThroughManyPushes() {
        var queue = HAProxyPushQueue(limit: 10)
        for round in 0..<10_000 {
            _ = queue.enqueue(.init(certificate: FilePath("c\(round % 7)"), staple: [], completion: { _ in }))
            if round % 2 == 1 { _ = queue.popFirst() }
        }
        XCTAssertLessThanOrEqual(queue.count, 7)
    }

    // MARK: Backoff

    func testBackoffDoublesUpToItsMaximum() {
        let delays = (1...8).map {
            HAProxySocketClient.backoff(failures: $0, initial: .milliseconds(500), maximum: .seconds(10))
        }
        XCTAssertEqual(delays, [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8),
                                .seconds(10), .seconds(10), .seconds(10)])
        XCTAssertEqual(HAProxySocketClient.backoff(failures: 10_000, initial: .seconds(1), maximum: .seconds(60)), .seconds(60))
    }

    func testErrorsMakeOneClearLogLine() {
        let socket: FilePath = "/run/haproxy/admin.sock"
        XCTAssertEqual(HAProxyClientError(socket: socket, reason: .connection(.refused)).description,
                       "HAProxy socket /run/haproxy/admin.sock: connection refused (nothing listens on this socket)")
        XCTAssertEqual(HAProxyClientError(socket: socket, reason: .permissionDenied(command: "set ssl cert")).description,
                       "HAProxy socket /run/haproxy/admin.sock: permission denied for 'set ssl cert' (the stats socket needs 'level admin')")
        XCTAssertEqual(HAProxyClientError(socket: socket, reason: .connection(.timedOut(.read, after: .seconds(10)))).description,
                       "HAProxy socket /run/haproxy/admin.sock: no answer within 10.0 seconds")
    }

    private func text(_ command: HAProxyCommand) -> String {
        String(decoding: command.bytes, as: UTF8.self)
    }
}
