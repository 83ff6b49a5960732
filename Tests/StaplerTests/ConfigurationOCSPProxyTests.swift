import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// `--ocsp-proxy URL`, `--ocsp-proxy ""` and `--ocsp-proxy-only`, from the command line and
/// the config file, and the warning that `--nonce` defeats a shared cache.
final class ConfigurationOCSPProxyTests: XCTestCase {
    typealias H = ConfigurationHarness

    func testTheProxyComesFromTheCommandLineOrTheConfigFile() throws {
        XCTAssertNil(try H.options(["/c"]).ocspProxy, "unset: the environment decides")
        XCTAssertFalse(try H.options(["/c"]).ocspProxyOnly)
        let given = try H.options(["--ocsp-proxy", "http://cache.dc1.example:3128", "--ocsp-proxy-only", "/c"])
        XCTAssertEqual(given.ocspProxy, "http://cache.dc1.example:3128")
        XCTAssertTrue(given.ocspProxyOnly)
        XCTAssertEqual(try H.options(["--ocsp-proxy=", "/c"]).ocspProxy, "", "empty: no proxy at all")
        XCTAssertEqual(OCSPExchange.proxySetting(""), ProxySetting.none)
        XCTAssertEqual(OCSPExchange.proxySetting(nil), .environment)
        XCTAssertEqual(OCSPExchange.proxySetting("cache:3128"), .proxy(try ProxyURL(parsing: "cache:3128")))

        let temp = try TemporaryDirectory()
        let config = try writeFile("cert-paths = /c\nocsp-proxy = http://cache.dc1.example:3128\nocsp-proxy-only = true\n",
                                   named: "stapler.conf", in: temp)
        let fromFile = try H.options(["-c", config.description])
        XCTAssertEqual(fromFile.ocspProxy, "http://cache.dc1.example:3128")
        XCTAssertTrue(fromFile.ocspProxyOnly)
        XCTAssertEqual(try H.options(["-c", config.description, "--ocsp-proxy", ""]).ocspProxy, "",
                       "the command line's empty value beats the file's proxy")
    }

    func testCheckFetchesThroughTheSameProxy() throws {
        let temp = try TemporaryDirectory()
        let config = try writeFile("ocsp-proxy = http://cache.dc1.example:3128\n", named: "stapler.conf", in: temp)
        guard case .check(let fromFile) = try H.command(["check", "--config", config.description, "/c/a.pem"]) else {
            return XCTFail("not a check command")
        }
        XCTAssertEqual(fromFile.ocspProxy, "http://cache.dc1.example:3128")
        guard case .check(let none) = try H.command(["check", "--config", config.description, "--ocsp-proxy", "",
                                                     "/c/a.pem"]) else { return XCTFail("not a check command") }
        XCTAssertEqual(none.ocspProxy, "")
    }

    func testABadProxyIsOneLineWithoutTheValueItMayHoldAPasswordIn() throws {
        for bad in ["https://cache:443", "socks5h://cache:1080", "http://user:hunter2@:3128", "http://cache:99999"] {
            let error = try XCTUnwrap(H.error(["--ocsp-proxy", bad, "/c"]), bad)
            XCTAssertTrue(error.description.contains("--ocsp-proxy"), error.description)
            XCTAssertFalse(error.description.contains("hunter2"), error.description)
        }
    }

    func testANonceWithAProxyIsWarnedAbout() throws {
        let warning = "--nonce with a proxy"
        XCTAssertTrue(try H.options(["--nonce", "--ocsp-proxy", "http://cache:3128", "/c"]).warnings
            .contains { $0.contains(warning) })
        XCTAssertTrue(try H.options(["--nonce", "/c"], environment: ["http_proxy": "http://cache:3128"]).warnings
            .contains { $0.contains(warning) && $0.contains("http_proxy") })
        XCTAssertFalse(try H.options(["--nonce", "/c"]).warnings.contains { $0.contains(warning) })
        XCTAssertFalse(try H.options(["--nonce", "--ocsp-proxy", "", "/c"], environment: ["http_proxy": "http://c:1"])
            .warnings.contains { $0.contains(warning) })
        XCTAssertFalse(try H.options(["--ocsp-proxy", "http://cache:3128", "/c"]).warnings.contains { $0.contains(warning) })
    }
}
