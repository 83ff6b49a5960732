import Glibc
@testable import Reactor
import XCTest

/// How the client reads a proxy URL and `no_proxy`, and the route it picks for a URL: pure
/// logic, so checked without a network (NameResolverTests sends real requests through it).
final class ProxySelectionTests: XCTestCase {
    func testProxyURLsReadAsCurlReadsThem() throws {
        let plain = try ProxyURL(parsing: "cache.dc1.example:3128")
        XCTAssertEqual(plain.endpoint.host, "cache.dc1.example")
        XCTAssertEqual(plain.port, 3128)
        XCTAssertEqual(plain.description, "http://cache.dc1.example:3128")
        XCTAssertEqual(try ProxyURL(parsing: "cache.example.:3128").endpoint.host, "cache.example", "a final dot is fine")

        // curl's default proxy port, which the client also hands curl (CURLOPT_PROXYPORT).
        XCTAssertEqual(try ProxyURL(parsing: "http://cache.example").port, 1080)
        XCTAssertEqual(try ProxyURL(parsing: "http://cache.example/").port, 1080)
        XCTAssertEqual(try ProxyURL(parsing: "HTTP://[2001:db8::1]").description, "http://[2001:db8::1]:1080")

        let secret = try ProxyURL(parsing: "http://user:s3cret@10.1.2.3:8080")
        XCTAssertEqual(secret.text, "http://user:s3cret@10.1.2.3:8080", "curl is handed the credentials")
        XCTAssertEqual(secret.description, "http://10.1.2.3:8080", "logs never are")
        XCTAssertTrue(secret.endpoint.isAddressLiteral)

        for bad in ["", "https://cache.example:443", "socks5h://cache:1080", "http://:3128", "http://cache:0",
                    "http://cache:65536", "http://cache example:3128", "http://cache:31a8", "http:]/user:secret@cache:3128/",
                    "http://caché.example:3128", "2]:8::1]", "http://[zz]:3128", "http://127.1:3128", "http://::1:3128", "N..",
                    ".cache:3128", "cache..example:3128"] {
            XCTAssertThrowsError(try ProxyURL(parsing: bad), bad)
        }
    }

    func testNoProxyMatchesNamesDomainsAndNetworks() {
        let list = NoProxyList(parsing: "localhost, .internal.example,ocsp.ca.test  10.0.0.0/8,[::1] 192.0.2.7")
        for host in ["localhost", "ocsp.internal.example", "internal.example", "OCSP.CA.TEST", "10.200.1.1", "::1",
                     "192.0.2.7"] {
            XCTAssertTrue(list.exempts(host: host), host)
        }
        for host in ["notinternal.example", "ca.test", "x.ocsp.ca.tester", "11.0.0.1", "192.0.2.8", "::2",
                     "localhost.evil.example"] {
            XCTAssertFalse(list.exempts(host: host), host)
        }
        XCTAssertTrue(NoProxyList(parsing: " * ").exempts(host: "anything.example"))
        XCTAssertFalse(NoProxyList(parsing: "*.example").exempts(host: "a.example"), "only a lone * is a wildcard")
        XCTAssertTrue(NoProxyList(parsing: "").isEmpty)
        XCTAssertTrue(NoProxyList(parsing: ",, ,").isEmpty)
        XCTAssertFalse(NoProxyList(parsing: "10.0.0.0/33").exempts(host: "10.0.0.1"), "a bad prefix matches nothing")
    }

    func testRouteFollowsTheSettingTheEnvironmentAndNoProxy() throws {
        let cache = try ProxyURL(parsing: "http://cache.example:3128")
        let names = ["http_proxy", "all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"]
        let saved: [(String, String?)] = names.map { name in (name, getenv(name).map { String(cString: $0) }) }
        defer { for (name, value) in saved { if let value { setenv(name, value, 1) } else { unsetenv(name) } } }
        for (name, _) in saved { unsetenv(name) }

        let url = "http://ocsp.ca.test/MFAw"
        XCTAssertEqual(ProxyRoute.choose(for: url, setting: .environment, bypassesProxy: false), .direct)
        XCTAssertEqual(ProxyRoute.choose(for: url, setting: .proxy(cache), bypassesProxy: false), .proxy(cache))
        XCTAssertEqual(ProxyRoute.choose(for: url, setting: .proxy(cache), bypassesProxy: true), .direct)

        setenv("http_proxy", "http://env-cache.example:8080", 1)
        XCTAssertEqual(ProxyRoute.choose(for: url, setting: .environment, bypassesProxy: false),
                       .proxy(try ProxyURL(parsing: "http://env-cache.example:8080")))
        XCTAssertEqual(ProxyRoute.choose(for: url, setting: .none, bypassesProxy: false), .direct,
                       "--ocsp-proxy \"\" ignores the environment")
        XCTAssertEqual(ProxyRoute.choose(for: "https://ocsp.ca.test/", setting: .environment, bypassesProxy: false),
                       .direct, "http_proxy is for http URLs only")
        setenv("all_proxy", "socks5h://socks.example:1080", 1)
        XCTAssertEqual(ProxyRoute.choose(for: "https://ocsp.ca.test/", setting: .environment, bypassesProxy: false),
                       .unparsedProxy("socks5h://socks.example:1080"))

        setenv("no_proxy", "ca.test", 1)
        XCTAssertEqual(ProxyRoute.choose(for: url, setting: .environment, bypassesProxy: false), .direct)
        XCTAssertEqual(ProxyRoute.choose(for: url, setting: .proxy(cache), bypassesProxy: false), .direct,
                       "no_proxy exempts hosts from --ocsp-proxy too")
        XCTAssertEqual(ProxyRoute.choose(for: "http://ocsp.other.test/", setting: .proxy(cache), bypassesProxy: false),
                       .proxy(cache))
    }
}
