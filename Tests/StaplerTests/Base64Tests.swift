import Foundation
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

    /// PEM-like text (lines of any width, CRLF or LF, spaces, padding at the end) decodes as
    /// Foundation decodes the same text without its white space, whatever the line width
    /// does to where the groups of four fall; one stray byte anywhere makes it nil.
    func testWrappedTextAgreesWithFoundationAndAnyStrayByteFails() {
        var generator = JitterRandom(seed: (7, 11, 13, 17))
        for round in 0..<300 {
            let length = Int(generator.next() % 200)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let plain = Array(Data(bytes).base64EncodedString().utf8)
            let width = 1 + Int(generator.next() % 80)
            var text: [UInt8] = []
            for (index, byte) in plain.enumerated() {
                text.append(byte)
                if (index + 1) % width == 0 { text += round % 2 == 0 ? [0x0A] : [0x0D, 0x0A] }
            }
            if round % 5 == 0 { text.insert(0x20, at: Int(generator.next() % UInt64(text.count + 1))) }
            XCTAssertEqual(Base64.decode(text), bytes, "round \(round), width \(width)")
            guard !text.isEmpty else { continue }
            var broken = text
            broken[Int(generator.next() % UInt64(text.count))] = UInt8(ascii: "!")
            XCTAssertNil(Base64.decode(broken), "round \(round)")
        }
    }
}
