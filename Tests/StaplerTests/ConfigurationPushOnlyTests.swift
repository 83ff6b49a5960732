import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// `--push-only` / `push-only`: off by default, set by the command line or the config file,
/// and `--no-recycle` beside it says it does nothing.
final class ConfigurationPushOnlyTests: XCTestCase {
    typealias H = ConfigurationHarness

    func testOffByDefaultOnFromTheCommandLine() throws {
        XCTAssertFalse(try H.options(["/certs"]).pushOnly)
        let options = try H.options(["--push-only", "--staple-dir", "/shared", "/certs"])
        XCTAssertTrue(options.pushOnly)
        XCTAssertEqual(options.stapleDirectory, "/shared")
        XCTAssertEqual(options.warnings, [])
    }

    func testTheConfigFileKeyAndTheCommandLineOverride() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-config-push-only")
        let config = try writeFile("cert-paths = /certs\npush-only = true\n", named: "stapler.conf", in: temp)
        XCTAssertTrue(try H.options(["-c", config.description]).pushOnly)
        let off = try writeFile("cert-paths = /certs\npush-only = false\n", named: "off.conf", in: temp)
        XCTAssertFalse(try H.options(["-c", off.description]).pushOnly)
        XCTAssertTrue(try H.options(["-c", off.description, "--push-only"]).pushOnly)
        let bare = try writeFile("cert-paths = /certs\npush-only\n", named: "bare.conf", in: temp)
        XCTAssertTrue(try H.options(["-c", bare.description]).pushOnly)
    }

    func testNoRecycleIsSaidToDoNothing() throws {
        let options = try H.options(["--push-only", "--no-recycle", "/certs"])
        XCTAssertEqual(options.warnings, ["--no-recycle has no effect with --push-only: staples are read, never fetched"])
    }

    func testAValueOnTheCommandLineIsRefused() {
        let error = H.error(["--push-only=yes", "/certs"])
        XCTAssertNotNil(error)
        XCTAssertTrue(error?.description.contains("--push-only") ?? false, "\(String(describing: error))")
    }
}
