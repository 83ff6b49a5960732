import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The rules an answer must pass, the same for the daemon and `stapler check --fetch`.
final class OCSPExchangeTests: XCTestCase {
    private func exchange() throws -> (OCSPExchange, CertificateRecord, [UInt8]) {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(ocspURLs: ["http://127.0.0.1:1/"])
        let record = try fixture.record(for: leaf)
        let exchange = try OCSPExchange(certID: record.certID, responderURL: "http://127.0.0.1:1/", includeNonce: false)
        return (exchange, record, Array(try fixture.pki.ocspResponse(for: leaf)))
    }

    private func response(_ status: Int, contentType: String? = "application/ocsp-response",
                          cacheControl: String? = nil, body: [UInt8]) -> Result<HTTPResponse, HTTPError> {
        .success(HTTPResponse(url: "http://127.0.0.1:1/x", finalURL: "http://127.0.0.1:1/x", statusCode: status,
                              contentType: contentType, cacheControl: cacheControl, body: body))
    }

    func testTheRequestCarriesTheDaemonsTimeoutsAndCap() throws {
        let (exchange, _, _) = try exchange()
        XCTAssertEqual(exchange.httpRequest.connectTimeout, .seconds(5))
        XCTAssertEqual(exchange.httpRequest.totalTimeout, .seconds(15))
        XCTAssertEqual(exchange.httpRequest.maxBodyBytes, OCSPResponseVerifier.maximumResponseSize)
        XCTAssertFalse(exchange.httpRequest.errorStatusIsFailure, "every status is judged by the exchange")
        XCTAssertEqual(try OCSPExchange.clientConfiguration(fetchSlots: 8).userAgent, "stapler/\(Usage.programVersion)")
    }

    func testOnlyStatus200WithTheRightTypeAndAValidBodyIsAnAnswer() throws {
        let (exchange, record, good) = try exchange()
        let now = UTCTime.now()
        let answer = try exchange.accept(response(200, cacheControl: "max-age=600", body: good), for: record, now: now)
        XCTAssertEqual(answer.cacheMaxAge, 600)
        XCTAssertEqual(answer.verified.der, good)
        XCTAssertNoThrow(try exchange.accept(response(200, contentType: nil, body: good), for: record, now: now),
                         "no Content-Type is no reason to refuse")

        for status in [201, 203, 204, 206, 300, 304, 307] {
            XCTAssertThrowsError(try exchange.accept(response(status, body: good), for: record, now: now)) {
                XCTAssertEqual("\($0)", "http://127.0.0.1:1/: HTTP status \(status) (only 200 carries an OCSP answer)")
            }
        }
        for status in [400, 404, 500, 503] {
            XCTAssertThrowsError(try exchange.accept(response(status, body: good), for: record, now: now)) {
                XCTAssertEqual("\($0)", "http://127.0.0.1:1/: HTTP status \(status)")
            }
        }
        XCTAssertThrowsError(try exchange.accept(response(200, contentType: "text/html\nX: y", body: good),
                                                 for: record, now: now)) {
            XCTAssertEqual("\($0)", #"http://127.0.0.1:1/: unexpected Content-Type "text/html\nX: y""#, "one line")
        }
        XCTAssertThrowsError(try exchange.accept(response(200, body: Array(good.dropLast())), for: record, now: now)) {
            XCTAssertTrue("\($0)".hasPrefix("http://127.0.0.1:1/: "), "\($0)")
        }
        let timeout = HTTPError(url: "http://127.0.0.1:1/MEIw", reason: .timedOut(after: .seconds(15)))
        XCTAssertThrowsError(try exchange.accept(.failure(timeout), for: record, now: now)) {
            XCTAssertEqual("\($0)", "http://127.0.0.1:1/: timed out after 15 s", "the responder URL, not the request URL")
        }
    }
}
