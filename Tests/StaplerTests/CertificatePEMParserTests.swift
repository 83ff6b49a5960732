import TestSupport
import XCTest
@testable import Stapler

/// The PEM splitter on its own: the shapes real and hostile files take.
final class CertificatePEMParserTests: XCTestCase {
    private func blocks(_ text: String) throws -> [PEMBlock] { try PEMParser.blocks(in: Array(text.utf8)) }

    func testBlocksLabelsAndBodies() throws {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\nmore junk\n"
            + "-----BEGIN EC PRIVATE KEY-----\r\nBBBB\r\n-----END EC PRIVATE KEY-----"
        let found = try blocks(text)
        XCTAssertEqual(found.map(\.label), ["CERTIFICATE", "EC PRIVATE KEY"])
        XCTAssertEqual(found.map(\.isCertificate), [true, false])
        XCTAssertEqual(found.map(\.isPrivateKey), [false, true])
        let bytes = Array(text.utf8)
        XCTAssertEqual(String(decoding: bytes[found[0].body], as: UTF8.self), "AAAA\n")
        XCTAssertEqual(String(decoding: bytes[found[1].body], as: UTF8.self), "BBBB\r\n")
        XCTAssertTrue(String(decoding: bytes[found[1].whole], as: UTF8.self).hasPrefix("-----BEGIN EC PRIVATE KEY"))
        XCTAssertTrue(String(decoding: bytes[found[1].whole], as: UTF8.self).hasSuffix("-----END EC PRIVATE KEY-----"))
    }

    func testHostileShapesAreRefusedWithAReason() {
        XCTAssertThrowsError(try blocks("-----BEGIN CERTIFICATE-----\nAAAA\n")) {
            XCTAssertEqual(($0 as? PEMError)?.reason, "PEM block \"CERTIFICATE\" has no END line (truncated file?)")
        }
        XCTAssertThrowsError(try blocks("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n")) {
            XCTAssertEqual(($0 as? PEMError)?.reason, "PEM block \"CERTIFICATE\" ends with END \"PRIVATE KEY\"")
        }
        XCTAssertThrowsError(try blocks("-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n"))
        let many = String(repeating: "-----BEGIN X-----\n-----END X-----\n", count: PEMParser.maximumBlocks + 1)
        XCTAssertThrowsError(try blocks(many)) {
            XCTAssertEqual(($0 as? PEMError)?.reason, "more than \(PEMParser.maximumBlocks) PEM blocks")
        }
        XCTAssertEqual(try blocks(String(repeating: "-----BEGIN X-----\n-----END X-----\n",
                                         count: PEMParser.maximumBlocks)).count, PEMParser.maximumBlocks)
    }

    func testThingsThatOnlyLookLikeMarkersAreJunk() throws {
        XCTAssertEqual(try blocks("-----BEGIN -----\n-----BEGIN\n----BEGIN X-----\n-----END X-----\n").count, 0)
        XCTAssertEqual(try blocks("-----BEGIN " + String(repeating: "A", count: 65) + "-----\n").count, 0)
        XCTAssertEqual(try blocks("-----BEGIN X\u{1}Y-----\n").count, 0)
        XCTAssertEqual(try blocks("").count, 0)
        XCTAssertEqual(try blocks("\n\n\r\n").count, 0)
    }

    func testRandomInputNeverCrashes() {
        var generator = SeededGenerator.announced("PEM parser random input")
        let pieces = ["-----BEGIN ", "-----END ", "CERTIFICATE", "-----", "\n", "\r\n", "AAAA", "=", " "]
        for _ in 0..<2000 {
            var text: [UInt8] = []
            for _ in 0..<Int.random(in: 0...40, using: &generator) {
                if Bool.random(using: &generator) {
                    text += Array(pieces.randomElement(using: &generator)!.utf8)
                } else {
                    text.append(UInt8.random(in: 0...255, using: &generator))
                }
            }
            _ = try? PEMParser.blocks(in: text)
            var copy = text
            _ = try? CertificateBundle.parse(pem: &copy, path: "random.pem", now: 0, issuers: IssuerStore())
        }
    }
}
