import XCTest
@testable import Reactor

final class FilePathTests: XCTestCase {
    func testEqualityAndHashingFollowTheBytes() {
        let odd = FilePath(bytes: [0x61, 0xFF, 0x2E, 0x70, 0x65, 0x6D])
        XCTAssertEqual(odd, FilePath(bytes: odd.bytes))
        XCTAssertNotEqual(odd, FilePath(bytes: odd.bytes.dropLast()))
        XCTAssertEqual(FilePath(""), FilePath(bytes: []))
        XCTAssertEqual(Set([FilePath("/a/b.pem"), FilePath("/a/b.pem"), FilePath("/a/c.pem"), odd]).count, 3)
        XCTAssertEqual(odd.description, "a\\xff.pem")
    }

    func testSuffixesAndComponents() {
        let path = FilePath("/etc/haproxy/certs/site.pem")
        XCTAssertTrue(path.hasSuffix(".pem"))
        XCTAssertTrue(path.hasSuffix(""))
        XCTAssertFalse(path.hasSuffix("x/etc/haproxy/certs/site.pem"))
        XCTAssertEqual(path.lastComponent, "site.pem")
        XCTAssertEqual(path.directory, "/etc/haproxy/certs")
        XCTAssertEqual(path.addingSuffix(".ocsp"), "/etc/haproxy/certs/site.pem.ocsp")
        XCTAssertEqual(FilePath("/").directory, "/")
        XCTAssertEqual(FilePath("cert.pem").directory, ".")
        XCTAssertEqual(FilePath("/a/").appending("b"), "/a/b")
    }
}
