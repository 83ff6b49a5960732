import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// `--on-update` and `--on-update-interval` from the command line and the config file.
final class ConfigurationOnUpdateTests: XCTestCase {
    typealias H = ConfigurationHarness

    private func words(_ options: Options) -> [String]? {
        options.onUpdateCommand?.map { String(decoding: $0, as: UTF8.self) }
    }

    func testCommandLineGivesArgvWithoutAShell() throws {
        let options = try H.options(["/certs", "--on-update", "sh -c 'nginx -t && nginx -s reload'",
                                     "--on-update-interval", "5", "--on-update-timeout", "300"])
        XCTAssertEqual(words(options), ["sh", "-c", "nginx -t && nginx -s reload"])
        XCTAssertEqual(options.onUpdateInterval, .seconds(5))
        XCTAssertEqual(options.onUpdateTimeout, .seconds(300))
        let defaults = try H.options(["/certs"])
        XCTAssertNil(defaults.onUpdateCommand)
        XCTAssertEqual(defaults.onUpdateInterval, .seconds(30))
        XCTAssertEqual(defaults.onUpdateTimeout, .seconds(60))
    }

    func testConfigFileCommandAndTheCommandLineSwitchingItOff() throws {
        let temp = try TemporaryDirectory()
        // A whole value in double quotes keeps " ; " from starting a comment.
        let config = try writeFile("""
            cert-paths = /etc/nginx/certs
            on-update = "sh -c 'nginx -t ; nginx -s reload'"
            on-update-interval = 120
            """, named: "stapler.conf", in: temp)
        let options = try H.options(["-c", config.description])
        XCTAssertEqual(words(options), ["sh", "-c", "nginx -t ; nginx -s reload"])
        XCTAssertEqual(options.onUpdateInterval, .seconds(120))
        XCTAssertNil(try H.options(["-c", config.description, "--on-update", ""]).onUpdateCommand)
    }

    func testBadValuesNameTheOptionOrTheLine() throws {
        XCTAssertEqual(H.error(["/certs", "--on-update", "nginx -s reload && true"])?.description,
                       "stapler: --on-update: \"&\" means something only to a shell, and the command runs without one: "
                       + "write sh -c '...' for a shell, or quote it")
        XCTAssertEqual(H.error(["/certs", "--on-update", "sh -c 'x"])?.description,
                       "stapler: --on-update: a single quote is not closed")
        XCTAssertEqual(H.error(["/certs", "--on-update-interval", "-1"])?.description,
                       "stapler: --on-update-interval: \"-1\" is out of range (0 to 86400 seconds)")
        XCTAssertEqual(H.error(["/certs", "--on-update-timeout", "0"])?.description,
                       "stapler: --on-update-timeout: \"0\" is out of range (1 to 86400 seconds)")
        let temp = try TemporaryDirectory()
        let config = try writeFile("cert-paths = /certs\non-update = echo $HOME\n", named: "stapler.conf", in: temp)
        XCTAssertEqual(H.error(["-c", config.description])?.description,
                       "\(config):2: on-update: \"$\" means something only to a shell, and the command runs without one: "
                       + "write sh -c '...' for a shell, or quote it")
    }
}
