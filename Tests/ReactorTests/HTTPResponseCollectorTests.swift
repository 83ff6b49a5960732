import XCTest
@testable import Reactor

final class HTTPResponseCollectorTests: XCTestCase {
    private func collect(_ lines: [String], body: [[UInt8]] = [], maxBody: Int = 1024,
                         maxHeaders: Int = 1024) -> (HTTPResponseCollector, taken: [Int]) {
        var collector = HTTPResponseCollector(maxBodyBytes: maxBody, maxHeaderBytes: maxHeaders)
        var taken: [Int] = []
        for line in lines {
            taken.append(Array(line.utf8).withUnsafeBytes { collector.receiveHeaderLine($0) })
        }
        for chunk in body {
            taken.append(chunk.withUnsafeBytes { collector.receiveBody($0) })
        }
        return (collector, taken)
    }

    func testKeepsContentTypeAndJoinsEveryCacheControlLine() {
        let lines = ["HTTP/1.1 200 OK\r\n", "CONTENT-type:\t application/ocsp-response \r\n",
                     "Cache-Control: max-age=60\r\n", "cache-control:public\r\n", "X-Cache-Control: no-store\r\n", "\r\n"]
        let (response, taken) = collect(lines, body: [[1, 2], [3]])
        XCTAssertEqual(response.contentType, "application/ocsp-response")
        XCTAssertEqual(response.cacheControl, "max-age=60, public")
        XCTAssertEqual(response.body, [1, 2, 3])
        XCTAssertNil(response.overflow)
        XCTAssertEqual(taken, lines.map(\.utf8.count) + [2, 1])
    }

    func testANewStatusLineForgetsTheEarlierResponse() {
        var (response, _) = collect(["HTTP/1.1 302 Found\r\n", "Content-Type: text/html\r\n",
                                     "Cache-Control: no-store\r\n", "\r\n"], body: [[9, 9]])
        _ = Array("HTTP/2 200\r\n".utf8).withUnsafeBytes { response.receiveHeaderLine($0) }
        XCTAssertNil(response.contentType)
        XCTAssertNil(response.cacheControl)
        XCTAssertEqual(response.body, [])
    }

    func testLinesWithoutAColonOrWithAnEmptyValueAreHarmless() {
        let (response, _) = collect(["HTTP/1.1 200 OK\r\n", "garbage\r\n", "Content-Type:\r\n", ":\r\n",
                                     "Cache-Control:\r\n", "Cache-Control: \u{1}\r\n"])
        XCTAssertEqual(response.contentType, "")
        XCTAssertEqual(response.cacheControl, ", \u{1}")
    }

    func testInvalidUTF8InAValueIsReplacedNotTrusted() {
        var response = HTTPResponseCollector(maxBodyBytes: 10, maxHeaderBytes: 100)
        _ = ([UInt8]("Content-Type: ".utf8) + [0xFF, 0xC3]).withUnsafeBytes { response.receiveHeaderLine($0) }
        XCTAssertEqual(response.contentType, "\u{FFFD}\u{FFFD}")
    }

    func testHeaderBytesAreCappedAcrossEveryResponseOfTheTransfer() {
        let (response, taken) = collect(["HTTP/1.1 301 Moved\r\n", "HTTP/1.1 200 OK\r\n", "X: y\r\n"],
                                        maxHeaders: 38)
        XCTAssertEqual(taken, [20, 17, 0])
        XCTAssertEqual(response.overflow, .headers)
    }

    func testTheBodyCapRefusesTheChunkThatWouldPassIt() {
        let (response, taken) = collect([], body: [[1, 2, 3], [4, 5], [6]], maxBody: 4)
        XCTAssertEqual(taken, [3, 0, 1])
        XCTAssertEqual(response.body, [1, 2, 3, 6])
        XCTAssertEqual(response.overflow, .body)
    }

    func testNegativeCapsRefuseEverything() {
        let (response, taken) = collect(["HTTP/1.1 200 OK\r\n"], body: [[1]], maxBody: -5, maxHeaders: -5)
        XCTAssertEqual(taken, [0, 0])
        XCTAssertEqual(response.maxBodyBytes, 0)
        XCTAssertEqual(response.overflow, .body)
    }
}
