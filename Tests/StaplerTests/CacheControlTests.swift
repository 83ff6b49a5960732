import XCTest
@testable import Stapler

/// Cache-Control comes from the network: every shape must give a number or nil, never a trap.
final class CacheControlTests: XCTestCase {
    func testReadsMaxAge() {
        XCTAssertEqual(CacheControl.maxAge("max-age=3600"), 3600)
        XCTAssertEqual(CacheControl.maxAge("public, max-age=86400, no-transform"), 86400)
        XCTAssertEqual(CacheControl.maxAge("public, MAX-AGE = \"60\""), 60)
        XCTAssertEqual(CacheControl.maxAge("max-age=0"), 0)
        XCTAssertEqual(CacheControl.maxAge("max-age=60, max-age=120"), 120, "the last one counts, as before")
        XCTAssertNil(CacheControl.maxAge("no-cache, max-age=60"))
        XCTAssertNil(CacheControl.maxAge("max-age=60, No-Store"))
        XCTAssertNil(CacheControl.maxAge("max-age=abc"))
        XCTAssertNil(CacheControl.maxAge("max-age=-5"))
        XCTAssertNil(CacheControl.maxAge(nil))
        XCTAssertNil(CacheControl.maxAge("public"))
    }

    /// The shapes that killed the daemon (an index past an empty split), and their kin.
    func testMalformedDirectivesAreIgnoredOrMeanNoPromise() {
        for header in ["=", "==", ",,=", "=,", " = ", ",", "", " ", "\t", "=max-age", "=60"] {
            XCTAssertNil(CacheControl.maxAge(header), "\"\(header)\"")
        }
        XCTAssertEqual(CacheControl.maxAge("max-age=60,="), 60)
        XCTAssertEqual(CacheControl.maxAge("=, max-age=60, ,="), 60)
        XCTAssertEqual(CacheControl.maxAge("public=, max-age=60"), 60)
        for header in ["max-age=", "max-age", "max-age= ", "max-age=\"", "max-age=\"\"", "max-age=\"60",
                       "max-age=60\"", "max-age=6 0", "max-age=+60", "max-age=60.5", "max-age=0x10",
                       "max-age=٣", "max-age==60", "max-age=\u{0}60"] {
            XCTAssertNil(CacheControl.maxAge(header), "\"\(header)\"")
        }
    }

    func testHugeNumbersSaturateAtTwoToTheThirtyFirst() {
        for digits in ["2147483648", "2147483649", "9223372036854775807", "9223372036854775808",
                       "18446744073709551616", String(repeating: "9", count: 10_000)] {
            XCTAssertEqual(CacheControl.maxAge("max-age=\(digits)"), CacheControl.maximumMaxAge, digits.prefix(30) + "")
        }
        XCTAssertEqual(CacheControl.maxAge("max-age=2147483647"), 2_147_483_647)
        XCTAssertEqual(CacheControl.maxAge("max-age=\"00000000000000000000000000000060\""), 60)
    }

    func testHundredKilobytesOfDirectivesTakeLittleTime() {
        let many = Array(repeating: "x-private-\(1)=\"v\"", count: 6_000).joined(separator: ", ")
        let header = many + ", max-age=600"
        XCTAssertGreaterThan(header.utf8.count, 100_000)
        let started = ContinuousClock.now
        XCTAssertEqual(CacheControl.maxAge(header), 600)
        XCTAssertEqual(CacheControl.maxAge(String(repeating: "=", count: 100_000)), nil)
        XCTAssertEqual(CacheControl.maxAge(String(repeating: ",", count: 100_000)), nil)
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
    }
}
