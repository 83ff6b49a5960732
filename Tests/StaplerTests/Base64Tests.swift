import XCTest
@testable import Stapler

final class Base64Tests: XCTestCase {
    func testRoundTripsEveryLengthAndByteValue() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ length) }
            XCTAssertEqual(Base64.decode(Array(Base64.encode(bytes).utf8)), bytes, "length \(length)")
        }
        let all = (0...255).map { UInt8($0) }
        XCTAssertEqual(Base64.decode(Array(Base64.encode(all).utf8)), all)
    }

    func testKnownVectors() {
        XCTAssertEqual(Base64.encode(Array("foobar".utf8)), "Zm9vYmFy")
        XCTAssertEqual(Base64.encode(Array("fooba".utf8)), "Zm9vYmE=")
        XCTAssertEqual(Base64.encode(Array("foob".utf8)), "Zm9vYg==")
        XCTAssertEqual(Base64.decode(Array("Zm9v\nYmE=\r\n".utf8)), Array("fooba".utf8))
    }

    func testRejectsGarbage() {
        for bad in ["Zm9", "Zm9v!", "Z===", "Zm=v", "Zm9vYg==Zm9v", "====", "Zg=="+"=", "\u{00e9}"] {
            XCTAssertNil(Base64.decode(Array(bad.utf8)), bad)
        }
    }
}
