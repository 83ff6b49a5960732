import Reactor
import XCTest
@testable import Stapler

/// `--ignore` globs: which discovered certificate files are skipped.
final class ConfigurationIgnorePatternTests: XCTestCase {
    private func assertMatches(_ pattern: String, _ paths: [FilePath], _ expected: Bool,
                               file: StaticString = #filePath, line: UInt = #line) {
        let glob = IgnorePattern(pattern)
        for path in paths {
            XCTAssertEqual(glob.matches(path), expected, "\(pattern) vs \(path)", file: file, line: line)
        }
    }

    func testRelativePatternsMatchTheEndOfThePathAtAComponentBoundary() {
        assertMatches("snakeoil.pem", ["/etc/ssl/snakeoil.pem", "snakeoil.pem"], true)
        assertMatches("snakeoil.pem", ["/etc/ssl/my-snakeoil.pem", "/etc/ssl/snakeoil.pem.bak"], false)
        assertMatches("cert/snakeoil.pem", ["/etc/ssl/cert/snakeoil.pem"], true)
        assertMatches("cert/snakeoil.pem", ["/etc/ssl/mycert/snakeoil.pem", "/etc/ssl/cert/x/snakeoil.pem"], false)
        assertMatches("no-ocsp/*.crt", ["/etc/ssl/no-ocsp/a.crt"], true)
        assertMatches("no-ocsp/*.crt", ["/etc/ssl/no-ocsp/a.pem", "/etc/ssl/ocsp/a.crt"], false)
    }

    func testAbsolutePatternsMatchTheWholePath() {
        assertMatches("/etc/ssl/private/not_a_real_crt.pem", ["/etc/ssl/private/not_a_real_crt.pem"], true)
        assertMatches("/etc/ssl/private/not_a_real_crt.pem", ["/x/etc/ssl/private/not_a_real_crt.pem"], false)
        assertMatches("/etc/ssl/*.key", ["/etc/ssl/a.key"], true)
        assertMatches("/etc/ssl/*.key", ["/etc/ssl/a.key.pem", "/other/etc/ssl/a.key"], false)
    }

    func testStarCrossesSlashesLikeFnmatch() {
        // The predecessor used fnmatch, whose "*" also matches "/": keep that for scripts
        // relying on "/etc/ssl/*" covering subdirectories with --recursive.
        assertMatches("/etc/ssl/*", ["/etc/ssl/a.pem", "/etc/ssl/sub/b.pem"], true)
        assertMatches("*.key", ["/a/b/c.key"], true)
    }

    func testQuestionMarkAndSets() {
        assertMatches("site?.pem", ["/c/site1.pem", "/c/siteé.pem"], true)
        assertMatches("site?.pem", ["/c/site.pem", "/c/site12.pem"], false)
        assertMatches("site[0-9].pem", ["/c/site3.pem"], true)
        assertMatches("site[0-9].pem", ["/c/siteA.pem"], false)
        assertMatches("site[!0-9].pem", ["/c/siteA.pem"], true)
        assertMatches("site[!0-9].pem", ["/c/site3.pem"], false)
        assertMatches("[]x].pem", ["/c/].pem", "/c/x.pem"], true)
        // An unclosed bracket is an ordinary character, as in fnmatch.
        assertMatches("odd[name.pem", ["/c/odd[name.pem"], true)
    }

    func testBytesThatAreNotUTF8() {
        let path = FilePath(bytes: Array("/c/caf".utf8) + [0xe9] + Array(".pem".utf8))
        XCTAssertTrue(IgnorePattern("caf?.pem").matches(path))
        XCTAssertTrue(IgnorePattern(bytes: Array("caf".utf8) + [0xe9] + Array(".pem".utf8)).matches(path))
        XCTAssertFalse(IgnorePattern("cafe.pem").matches(path))
    }

    func testManyStarsStayFast() {
        // A backtracking matcher without the single-star memory would take forever here.
        let pattern = IgnorePattern(String(repeating: "*a", count: 30) + "b")
        let path = FilePath("/" + String(repeating: "a", count: 4000))
        let start = ContinuousClock.now
        XCTAssertFalse(pattern.matches(path))
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
    }
}
