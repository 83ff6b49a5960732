import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// What a shared HTTP cache keys on: the request a host sends for a certificate must be the
/// same bytes on every host (RFC 5019: the same CertID gives the same GET URL), with nothing
/// in it that varies by host or asks a cache to skip its copy.
final class OCSPRequestCacheKeyTests: XCTestCase {
    func testTwoSeparatelyLoadedCopiesOfACertificateSendTheSameRequest() throws {
        let fixture = try PKIFixture()
        let responder = "http://ocsp.fleet.test/"
        let leaf = try fixture.pki.issueLeaf(ocspURLs: [responder])
        // Two hosts: each its own copy of the bundle, in its own directory, loaded on its own.
        for host in ["host-a", "host-b"] {
            try FileManager.default.createDirectory(atPath: fixture.temp.file(host), withIntermediateDirectories: true)
        }
        let hostA = try fixture.bundle(leaf, name: "host-a/site.pem")
        let hostB = try fixture.bundle(leaf, name: "host-b/www.example.org.pem", includeKey: false)
        let first = try OCSPExchange(certID: try fixture.record(hostA).certID, responderURL: responder, includeNonce: false)
        let second = try OCSPExchange(certID: try fixture.record(hostB, store: IssuerStore()).certID,
                                      responderURL: responder, includeNonce: false)

        XCTAssertEqual(first.httpRequest.method, .get)
        XCTAssertEqual(Array(first.httpRequest.url.utf8), Array(second.httpRequest.url.utf8))
        XCTAssertTrue(first.httpRequest.url.hasPrefix(responder))
        XCTAssertLessThanOrEqual(first.httpRequest.url.utf8.count, OCSPRequest.maximumGETURLLength)
        XCTAssertEqual(first.httpRequest.headers.count, 0, "no per-request header fields")

        // The comparison tells requests apart: with a nonce, no two are alike (hence the warning).
        let withNonce = try OCSPExchange(certID: try fixture.record(hostA).certID, responderURL: responder, includeNonce: true)
        let againWithNonce = try OCSPExchange(certID: try fixture.record(hostA).certID, responderURL: responder,
                                              includeNonce: true)
        XCTAssertNotEqual(withNonce.httpRequest.url, first.httpRequest.url)
        XCTAssertNotEqual(withNonce.httpRequest.url, againWithNonce.httpRequest.url)
    }

    func testTheRequestOnTheWireCarriesNoCacheDirectivesAndNothingHostSpecific() throws {
        let fixture = try PKIFixture()
        let loop = try EventLoop()
        var seen: [TestHTTPServer.Request] = []
        let server = try TestHTTPServer(loop: loop) { request in
            seen.append(request)
            return .text("not an answer", status: 503)
        }
        let leaf = try fixture.pki.issueLeaf(ocspURLs: [server.url("/")])
        let record = try fixture.record(for: leaf)
        // Two clients as two hosts' daemons make them.
        var received = 0
        for host in 0..<2 {
            let client = try HTTPClient(loop: loop, configuration: try OCSPExchange.clientConfiguration(fetchSlots: 8))
            let exchange = try OCSPExchange(certID: record.certID, responderURL: server.url("/"), includeNonce: false)
            client.start(exchange.httpRequest) { _ in received += 1 }
            try loop.runForTest(deadline: .seconds(20)) { received == host + 1 }
        }
        XCTAssertEqual(seen.count, 2)
        let (a, b) = (seen[0], seen[1])
        XCTAssertEqual(a.method, "GET")
        XCTAssertEqual(a.path, b.path)
        let names = Set(a.headers.map { $0.name.lowercased() })
        XCTAssertFalse(names.contains("cache-control"), "\(a.headers)")
        XCTAssertFalse(names.contains("pragma"), "\(a.headers)")
        XCTAssertEqual(a.headers.map { "\($0.name): \($0.value)" }, b.headers.map { "\($0.name): \($0.value)" },
                       "every header field alike on both hosts")
        XCTAssertEqual(a.header("User-Agent"), OCSPExchange.userAgent)
    }
}
