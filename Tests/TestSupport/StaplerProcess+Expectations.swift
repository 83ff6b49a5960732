import Foundation
import XCTest

/// What the end-to-end tests expect of a running daemon, failing at the caller's line.
extension StaplerProcess {
    /// The log shows `text` (`count` times) within `timeout`.
    public func expectLog(_ text: String, count: Int = 1, timeout: TimeInterval = 15,
                          file: StaticString = #filePath, line: UInt = #line) {
        if !waitForLog(text, count: count, timeout: timeout) {
            XCTFail("the log never showed \(count) × \"\(text)\":\n\(log)", file: file, line: line)
        }
    }

    /// SIGTERM ends the daemon cleanly: exit status 0 within 10 s.
    public func stopCleanly(file: StaticString = #filePath, line: UInt = #line) {
        signal(SIGTERM)
        XCTAssertEqual(waitForExit(timeout: 10), 0, log, file: file, line: line)
    }
}

extension OCSPResponderProcess {
    /// Revokes `leaf` and waits until this running responder answers so: `openssl ocsp`
    /// notices a changed index only on the request after the change.
    public func revoke(_ leaf: TestPKI.Leaf, in pki: TestPKI,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        try pki.revoke(leaf)
        let said = try waitUntil(timeout: 10, interval: 0.1) {
            let answer = try Shell.run(["openssl", "ocsp", "-issuer", pki.certificate, "-cert", leaf.certificate,
                                        "-url", url, "-CAfile", pki.certificate, "-no_nonce"], allowFailure: true)
            return answer.output.contains("\(leaf.certificate): revoked")
        }
        XCTAssertTrue(said, "the responder never answered revoked for \(leaf.serial)", file: file, line: line)
    }
}
