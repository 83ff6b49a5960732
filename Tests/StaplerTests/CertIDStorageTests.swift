import XCTest
import Reactor
import TestSupport
@testable import Stapler

/// CertID keeps its issuer part shared and its serial inline, and the record derives the
/// serial's hex from it: the bytes and text that come out must be the ones that went in.
final class CertIDStorageTests: XCTestCase {
    /// A CertID as `i2d_OCSP_CERTID` writes it, around `serial` (INTEGER content bytes).
    private func canonical(serial: [UInt8], nameHashByte: UInt8 = 0x11) -> [UInt8] {
        let algorithm: [UInt8] = [0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00]
        let nameHash: [UInt8] = [0x04, 0x14] + [UInt8](repeating: nameHashByte, count: 20)
        let keyHash: [UInt8] = [0x04, 0x14] + [UInt8](repeating: 0x22, count: 20)
        let body = algorithm + nameHash + keyHash + [0x02, UInt8(serial.count)] + serial
        return [0x30, UInt8(body.count)] + body
    }

    func testAnyBytesComeBackAsGiven() {
        let samples: [[UInt8]] = [
            canonical(serial: [0x01]),
            canonical(serial: [0x00, 0x80] + [UInt8](repeating: 0xab, count: 19)),  // 21 bytes, the RFC 5280 maximum
            canonical(serial: [UInt8](repeating: 0x5a, count: 24)),
            canonical(serial: [UInt8](repeating: 0x5a, count: 25)),                  // too long to keep inline
            canonical(serial: []),
            [0x30, 0x81, 0x03, 0x02, 0x01, 0x07],                                     // long-form length
            [0x30, 0x03, 0x02, 0x01],                                                 // truncated
            [],
        ]
        for der in samples {
            let id = CertID(der: der)
            XCTAssertEqual(id.der, der)
            XCTAssertEqual(id.hex, ASCII.hex(der))
            XCTAssertEqual(id, CertID(der: der.map { $0 }))
            XCTAssertEqual(id.hashValue, CertID(der: der.map { $0 }).hashValue)
        }
    }

    func testEqualityFollowsTheBytes() {
        XCTAssertNotEqual(CertID(der: canonical(serial: [0x01])), CertID(der: canonical(serial: [0x02])))
        XCTAssertNotEqual(CertID(der: canonical(serial: [0x01])), CertID(der: canonical(serial: [0x00, 0x01])))
        XCTAssertNotEqual(CertID(der: canonical(serial: [0x01])), CertID(der: canonical(serial: [0x01], nameHashByte: 0x33)))
        let ids = Set([canonical(serial: [0x01]), canonical(serial: [0x02]), canonical(serial: [0x01])].map(CertID.init(der:)))
        XCTAssertEqual(ids.count, 2)
    }

    func testSerialTextIsKeptWhateverTheCertIDSays() throws {
        let fixture = try PKIFixture()
        let leaf = try fixture.pki.issueLeaf(commonName: "serial.test", ocspURLs: ["http://127.0.0.1:1/"])
        let parsed = try fixture.record(try fixture.bundle(leaf, name: "serial.pem"))
        XCTAssertEqual(parsed.serialHex, leaf.serial)
        func record(_ serial: [UInt8], _ text: String) -> CertificateRecord {
            CertificateRecord(subject: "CN=serial.test", serialHex: text, notBefore: 0, notAfter: 1, ocspURLs: ["http://a/"],
                              mustStaple: false, certID: CertID(der: canonical(serial: serial)), issuer: parsed.issuer)
        }
        XCTAssertEqual(record([0x00, 0x80, 0x01], "8001").serialHex, "8001")
        XCTAssertEqual(record([0x00], "00").serialHex, "00")
        XCTAssertEqual(record([0x0a, 0xbc], "0ABC").serialHex, "0ABC")
        XCTAssertEqual(record([0x0a, 0xbc], "ABC").serialHex, "ABC")     // not the CertID's spelling: kept as given
        XCTAssertEqual(record([0x81], "-7F").serialHex, "-7F")           // negative
        XCTAssertEqual(record([0x01], "02").serialHex, "02")             // a CertID of another serial
        let malformed = CertificateRecord(subject: "CN=x", serialHex: "01", notBefore: 0, notAfter: 1, ocspURLs: ["http://a/"],
                                          mustStaple: false, certID: CertID(der: []), issuer: parsed.issuer)
        XCTAssertEqual(malformed.serialHex, "01")
    }
}
