import Foundation
import Reactor
import TestSupport
import XCTest

/// The c-ares resolver on a real loop against a real DNS server (dnsmasq on 127.0.0.1), and
/// the HTTP client using it for URLs that name hosts.
final class NameResolverTests: XCTestCase {
    private func resolver(_ loop: EventLoop, servers: String, queryTimeout: Duration = .seconds(2),
                          tries: Int = 2) throws -> NameResolver {
        try NameResolver(loop: loop, configuration: .init(nameServers: NameServerList(parsing: servers),
                                                          queryTimeout: queryTimeout, tries: tries))
    }

    private func resolve(_ host: String, with resolver: NameResolver, on loop: EventLoop)
        throws -> Result<ResolvedAddresses, NameResolutionError> {
        var outcome: Result<ResolvedAddresses, NameResolutionError>?
        resolver.resolve(host) { outcome = $0 }
        try loop.runForTest(deadline: .seconds(20)) { outcome != nil }
        return try XCTUnwrap(outcome)
    }

    // MARK: The resolver

    func testBothFamiliesAreResolvedWithTheirTTLAndAnswersAreKeptForIt() throws {
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1"), ("six.test", "::1"),
                                                 ("dual.test", "127.0.0.1"), ("dual.test", "::1")], timeToLive: 2)
        let loop = try EventLoop()
        let resolver = try resolver(loop, servers: dns.serverList)

        let started = MonotonicInstant.now()
        let four = try resolve("ocsp-a.test", with: resolver, on: loop).get()
        let latency = MonotonicInstant.now().duration(since: started)
        print("resolution of ocsp-a.test through dnsmasq took \(latency)")
        XCTAssertEqual(four.addresses, [.init(text: "127.0.0.1", isIPv6: false)])
        XCTAssertEqual(four.timeToLive, 2)
        XCTAssertEqual(try resolve("six.test", with: resolver, on: loop).get().addresses, [.init(text: "::1", isIPv6: true)])
        let dual = try resolve("DUAL.test", with: resolver, on: loop).get()
        XCTAssertEqual(Set(dual.addresses.map(\.text)), ["127.0.0.1", "::1"])
        XCTAssertEqual(resolver.lookupsStarted, 3)

        // Within the TTL the kept answer serves, in any case of the name.
        XCTAssertEqual(try resolve("OCSP-A.test", with: resolver, on: loop).get(), four)
        XCTAssertEqual(resolver.lookupsStarted, 3, "a kept answer asks DNS nothing")
        XCTAssertNotNil(resolver.cached("ocsp-a.test"))
    }

    func testConcurrentLookupsOfOneNameAskOnce() throws {
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1")])
        let loop = try EventLoop()
        let resolver = try resolver(loop, servers: dns.serverList)
        var answers: [Result<ResolvedAddresses, NameResolutionError>] = []
        for _ in 0..<50 { resolver.resolve("ocsp-a.test") { answers.append($0) } }
        try loop.runForTest(deadline: .seconds(20)) { answers.count == 50 }
        XCTAssertEqual(resolver.lookupsStarted, 1)
        XCTAssertTrue(answers.allSatisfy { (try? $0.get().addresses.map(\.text)) == ["127.0.0.1"] })
    }

    func testAMissingNameIsNXDOMAINNamingTheHost() throws {
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1")])
        let loop = try EventLoop()
        let resolver = try resolver(loop, servers: dns.serverList)
        guard case .failure(let error) = try resolve("missing.test", with: resolver, on: loop) else {
            return XCTFail("missing.test must not resolve")
        }
        XCTAssertEqual(error.kind, .noSuchName)
        XCTAssertEqual(error.description, "missing.test: name not resolved: NXDOMAIN")
        // Failures are not kept: the caller's retry asks again.
        _ = try resolve("missing.test", with: resolver, on: loop)
        XCTAssertEqual(resolver.lookupsStarted, 2)
    }

    func testAServerThatNeverAnswersGivesATimeoutAndEachRetryAsksAgain() throws {
        let silent = try SilentDNSServer()
        let loop = try EventLoop()
        let resolver = try resolver(loop, servers: silent.serverList, queryTimeout: .milliseconds(200), tries: 2)
        for attempt in 1...2 {
            let started = MonotonicInstant.now()
            guard case .failure(let error) = try resolve("ocsp-a.test", with: resolver, on: loop) else {
                return XCTFail("nothing answers: the lookup must fail")
            }
            let waited = MonotonicInstant.now().duration(since: started)
            XCTAssertEqual(error.kind, .timedOut)
            XCTAssertEqual(error.description, "ocsp-a.test: name not resolved: DNS timeout")
            XCTAssertGreaterThanOrEqual(waited, .milliseconds(200), "attempt \(attempt)")
            XCTAssertLessThan(waited, .seconds(5), "attempt \(attempt): the resolver's own limits end it")
        }
        XCTAssertEqual(resolver.lookupsStarted, 2)
        XCTAssertGreaterThanOrEqual(silent.drain(), 2, "the queries reached the silent server")
    }

    func testDroppingAResolverWithALookupUnderWayCallsNothing() throws {
        let silent = try SilentDNSServer()
        let loop = try EventLoop()
        var resolver: NameResolver? = try self.resolver(loop, servers: silent.serverList,
                                                        queryTimeout: .milliseconds(100), tries: 1)
        var dropped: Result<ResolvedAddresses, NameResolutionError>?
        resolver?.resolve("ocsp-a.test") { dropped = $0 }
        try loop.runForTest(deadline: .seconds(5)) { silent.drain() > 0 }
        resolver = nil
        // A resolver that lives gets its timeout within the same wait; the dropped one's
        // completion never runs.
        let kept = try self.resolver(loop, servers: silent.serverList, queryTimeout: .milliseconds(100), tries: 1)
        var answered: Result<ResolvedAddresses, NameResolutionError>?
        kept.resolve("ocsp-a.test") { answered = $0 }
        try loop.runForTest(deadline: .seconds(5)) { answered != nil }
        XCTAssertEqual(answered?.failure?.kind, .timedOut)
        XCTAssertNil(dropped)
        XCTAssertEqual(loop.pendingTimerCount, 0, "the dropped resolver left no timer behind")
    }

    func testTheHostsFileAnswersBeforeDNS() throws {
        // The only DNS server never answers: localhost can only come from /etc/hosts.
        let silent = try SilentDNSServer()
        let loop = try EventLoop()
        let resolver = try resolver(loop, servers: silent.serverList, queryTimeout: .milliseconds(200), tries: 1)
        let answer = try resolve("localhost", with: resolver, on: loop).get()
        XCTAssertTrue(answer.addresses.contains(.init(text: "127.0.0.1", isIPv6: false)), "\(answer)")
        XCTAssertEqual(silent.drain(), 0)
    }

    func testAChangedAddressIsPickedUpOnceTheTTLRunsOut() throws {
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1")], timeToLive: 1)
        let loop = try EventLoop()
        let resolver = try resolver(loop, servers: dns.serverList)
        XCTAssertEqual(try resolve("ocsp-a.test", with: resolver, on: loop).get().addresses.map(\.text), ["127.0.0.1"])
        try dns.restart(records: [("ocsp-a.test", "127.0.0.2")])

        var seen: [String] = []
        let changedAt = MonotonicInstant.now()
        var lastAnswerAt = changedAt
        // Ask every 50 ms: the old address until the TTL runs out, then the new one.
        while seen.last != "127.0.0.2" && MonotonicInstant.now().duration(since: changedAt) < .seconds(10) {
            let address = try resolve("ocsp-a.test", with: resolver, on: loop).get().addresses.map(\.text).joined()
            if seen.last != address { seen.append(address); lastAnswerAt = .now() }
            try loop.runForTest(deadline: .seconds(1)) { MonotonicInstant.now().duration(since: lastAnswerAt) >= .milliseconds(50) }
        }
        XCTAssertEqual(seen.last, "127.0.0.2", "the new address after the TTL: \(seen)")
        XCTAssertLessThanOrEqual(MonotonicInstant.now().duration(since: changedAt), .seconds(3))
    }

    func testAnEditedResolvConfIsReadAgain() throws {
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1")])
        let directory = try TemporaryDirectory()
        let resolvConf = directory.file("resolv.conf")
        // First a server address where nothing listens (on dnsmasq's port).
        try "nameserver 127.0.0.2\n".write(toFile: resolvConf, atomically: true, encoding: .utf8)
        let loop = try EventLoop()
        let resolver = try NameResolver(loop: loop, configuration: .init(
            queryTimeout: .milliseconds(300), tries: 1, resolvConfPath: resolvConf,
            configurationCheckInterval: .milliseconds(100), resolvConfServerPort: dns.port))
        guard case .failure(let error) = try resolve("ocsp-a.test", with: resolver, on: loop) else {
            return XCTFail("nothing listens on 127.0.0.2: the lookup must fail")
        }
        print("with no server listening: \(error)")

        try "nameserver 127.0.0.1\n".write(toFile: resolvConf, atomically: true, encoding: .utf8)
        let edited = MonotonicInstant.now()
        var answer: ResolvedAddresses?
        while answer == nil && MonotonicInstant.now().duration(since: edited) < .seconds(5) {
            answer = try? resolve("ocsp-a.test", with: resolver, on: loop).get()
            let asked = MonotonicInstant.now()
            try loop.runForTest(deadline: .seconds(1)) { MonotonicInstant.now().duration(since: asked) >= .milliseconds(50) }
        }
        XCTAssertEqual(answer?.addresses.map(\.text), ["127.0.0.1"], "the edited file names dnsmasq")
    }

    // MARK: The HTTP client with names

    func testTransfersToNamesReachIPv4IPv6AndDualStackServers() throws {
        let loop = try EventLoop()
        let four = try TestHTTPServer(loop: loop) { _ in .text("four") }
        let six = try TestHTTPServer(loop: loop, onIPv6Loopback: true) { _ in .text("six") }
        // dual-*.test have both records, but each server listens on one family only: curl
        // must try the other family when the first fails.
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1"), ("six.test", "::1"),
                                                 ("dual-four.test", "::1"), ("dual-four.test", "127.0.0.1"),
                                                 ("dual-six.test", "127.0.0.1"), ("dual-six.test", "::1")])
        let client = try HTTPClient(loop: loop, configuration: .init(
            nameResolution: .init(nameServers: NameServerList(parsing: dns.serverList))))
        let urls = ["http://ocsp-a.test:\(four.port)/": "four", "http://six.test:\(six.port)/": "six",
                    "http://dual-four.test:\(four.port)/": "four", "http://dual-six.test:\(six.port)/": "six"]
        var bodies: [String: String] = [:]
        for url in urls.keys {
            client.start(.get(url)) { result in
                bodies[url] = (try? result.get()).map { String(decoding: $0.body, as: UTF8.self) } ?? "\(result)"
            }
        }
        try loop.runForTest(deadline: .seconds(20)) { bodies.count == urls.count }
        XCTAssertEqual(bodies, urls)
    }

    func testAnUnresolvableHostIsANameErrorAndARedirectToANameIsResolved() throws {
        let loop = try EventLoop()
        let target = try TestHTTPServer(loop: loop) { _ in .text("arrived") }
        let origin = try TestHTTPServer(loop: loop) { request in
            request.path == "/gone" ? .redirect(to: "http://missing.test:\(target.port)/", status: 302)
                : .redirect(to: "http://ocsp-b.test:\(target.port)/final", status: 301)
        }
        let dns = try DNSServerProcess(records: [("ocsp-a.test", "127.0.0.1"), ("ocsp-b.test", "127.0.0.1")])
        let client = try HTTPClient(loop: loop, configuration: .init(
            nameResolution: .init(nameServers: NameServerList(parsing: dns.serverList))))
        var outcomes: [String: Result<HTTPResponse, HTTPError>] = [:]
        let urls = ["http://missing.test:\(origin.port)/", "http://ocsp-a.test:\(origin.port)/start",
                    "http://ocsp-a.test:\(origin.port)/gone"]
        for url in urls { client.start(.get(url)) { outcomes[url] = $0 } }
        try loop.runForTest(deadline: .seconds(20)) { outcomes.count == urls.count }

        let missing = try XCTUnwrap(outcomes[urls[0]]?.failure)
        XCTAssertEqual(missing.reason, .nameNotResolved(host: "missing.test", detail: "NXDOMAIN"))
        XCTAssertEqual(missing.description, "\(urls[0]): missing.test: name not resolved: NXDOMAIN")
        let redirected = try XCTUnwrap(outcomes[urls[1]]).get()
        XCTAssertEqual(redirected.body, Array("arrived".utf8))
        XCTAssertEqual(redirected.finalURL, "http://ocsp-b.test:\(target.port)/final")
        XCTAssertEqual(outcomes[urls[2]]?.failure?.reason, .nameNotResolved(host: "missing.test", detail: "NXDOMAIN"))
        XCTAssertEqual(client.resolver.lookupsStarted, 4,
                       "ocsp-a.test once for two transfers, ocsp-b.test, missing.test twice (failures are not kept)")
        XCTAssertEqual(client.activeTransferCount, 0)
    }

    func testThroughAProxyTheNameIsLeftToTheProxy() throws {
        let loop = try EventLoop()
        var proxied: [String] = []
        let proxy = try TestHTTPServer(loop: loop) { request in
            proxied.append(request.path)
            return .text("via proxy")
        }
        // A resolver asked about the name would wait for a server that never answers.
        let silent = try SilentDNSServer()
        let client = try HTTPClient(loop: loop, configuration: .init(
            nameResolution: .init(nameServers: NameServerList(parsing: silent.serverList),
                                  queryTimeout: .milliseconds(200), tries: 1)))
        setenv("http_proxy", proxy.baseURL, 1)
        var outcome: Result<HTTPResponse, HTTPError>?
        client.start(.get("http://only-the-proxy-knows.test/ocsp")) { outcome = $0 }
        try loop.runForTest(deadline: .seconds(20)) { outcome != nil }
        unsetenv("http_proxy")

        XCTAssertEqual(try XCTUnwrap(outcome).get().body, Array("via proxy".utf8))
        XCTAssertEqual(proxied, ["http://only-the-proxy-knows.test/ocsp"])
        XCTAssertEqual(client.resolver.lookupsStarted, 0)
        XCTAssertEqual(silent.drain(), 0)

        // Without the proxy the same request asks DNS, and the silent server sees it.
        outcome = nil
        client.start(.get("http://only-the-proxy-knows.test/ocsp")) { outcome = $0 }
        try loop.runForTest(deadline: .seconds(20)) { outcome != nil }
        XCTAssertEqual(outcome?.failure?.reason, .nameNotResolved(host: "only-the-proxy-knows.test", detail: "DNS timeout"))
        XCTAssertEqual(client.resolver.lookupsStarted, 1)
        XCTAssertGreaterThan(silent.drain(), 0)
    }

    func testAProxyNamedByHostIsResolvedOnTheLoopAndNoProxyHostsGoDirect() throws {
        let loop = try EventLoop()
        var proxied: [String] = []
        let proxy = try TestHTTPServer(loop: loop) { request in
            proxied.append(request.path)
            return .text("via proxy")
        }
        var direct: [String] = []
        let responder = try TestHTTPServer(loop: loop) { request in
            direct.append(request.path)
            return .text("direct")
        }
        // Only this server knows the proxy's name and the exempt responder's: curl's own
        // resolver (the system's) would find neither, so an answer proves the loop resolved them.
        let dns = try DNSServerProcess(records: [("cache.fleet.test", "127.0.0.1"), ("ocsp.exempt.test", "127.0.0.1")])
        let client = try HTTPClient(loop: loop, configuration: .init(
            nameResolution: .init(nameServers: NameServerList(parsing: dns.serverList)),
            proxy: .proxy(try ProxyURL(parsing: "http://cache.fleet.test:\(proxy.port)"))))
        setenv("no_proxy", "exempt.test", 1)
        defer { unsetenv("no_proxy") }
        var outcomes: [String: Result<HTTPResponse, HTTPError>] = [:]
        let viaProxy = "http://ocsp.nowhere-but-the-proxy.test/MFAw"
        let exempt = "http://ocsp.exempt.test:\(responder.port)/MFAw"
        for url in [viaProxy, exempt] { client.start(.get(url)) { outcomes[url] = $0 } }
        try loop.runForTest(deadline: .seconds(20)) { outcomes.count == 2 }

        XCTAssertEqual(try XCTUnwrap(outcomes[viaProxy]).get().body, Array("via proxy".utf8))
        XCTAssertEqual(proxied, [viaProxy], "absolute-form request to the proxy")
        XCTAssertEqual(try XCTUnwrap(outcomes[exempt]).get().body, Array("direct".utf8))
        XCTAssertEqual(direct, ["/MFAw"])
        XCTAssertEqual(client.resolver.lookupsStarted, 2, "the proxy's name and the exempt responder's, not the proxied one")
        XCTAssertNotNil(client.proxy(for: viaProxy))
        XCTAssertNil(client.proxy(for: exempt))

        // The same request bypassing the proxy asks DNS for the responder's name itself.
        var bypassed: Result<HTTPResponse, HTTPError>?
        var request = HTTPRequest.get(viaProxy)
        request.bypassesProxy = true
        client.start(request) { bypassed = $0 }
        try loop.runForTest(deadline: .seconds(20)) { bypassed != nil }
        XCTAssertEqual(bypassed?.failure?.reason, .nameNotResolved(host: "ocsp.nowhere-but-the-proxy.test", detail: "NXDOMAIN"))
        XCTAssertEqual(proxied.count, 1)
    }

    func testAnEmptyProxySettingIgnoresTheEnvironment() throws {
        let loop = try EventLoop()
        var proxied = 0
        let proxy = try TestHTTPServer(loop: loop) { _ in
            proxied += 1
            return .text("via proxy")
        }
        let responder = try TestHTTPServer(loop: loop) { _ in .text("direct") }
        let client = try HTTPClient(loop: loop, configuration: .init(proxy: ProxySetting.none))
        let environmental = try HTTPClient(loop: loop)
        setenv("http_proxy", proxy.baseURL, 1)
        defer { unsetenv("http_proxy") }
        var outcomes: [Result<HTTPResponse, HTTPError>?] = [nil, nil]
        client.start(.get(responder.url("/x"))) { outcomes[0] = $0 }
        environmental.start(.get(responder.url("/x"))) { outcomes[1] = $0 }
        try loop.runForTest(deadline: .seconds(20)) { outcomes.allSatisfy { $0 != nil } }
        XCTAssertEqual(try XCTUnwrap(outcomes[0]).get().body, Array("direct".utf8))
        XCTAssertEqual(try XCTUnwrap(outcomes[1]).get().body, Array("via proxy".utf8), "the environment's proxy works")
        XCTAssertEqual(proxied, 1)
    }

    func testCancellingWhileResolvingCompletesOnceWithCancelled() throws {
        let silent = try SilentDNSServer()
        let loop = try EventLoop()
        let client = try HTTPClient(loop: loop, configuration: .init(
            nameResolution: .init(nameServers: NameServerList(parsing: silent.serverList),
                                  queryTimeout: .milliseconds(300), tries: 1)))
        var outcomes: [Result<HTTPResponse, HTTPError>] = []
        let handle = client.start(.get("http://ocsp-a.test:1/")) { outcomes.append($0) }
        client.start(.get("http://ocsp-b.test:1/")) { outcomes.append($0) }
        loop.schedule(after: .milliseconds(50)) { client.cancel(handle) }
        // ocsp-b.test's lookup ends with ocsp-a.test's (same server, same timeout): by then
        // the cancelled transfer would have completed a second time if it were going to.
        try loop.runForTest(deadline: .seconds(20)) { outcomes.count == 2 }
        try loop.runForTest(deadline: .seconds(1)) { true }
        XCTAssertEqual(outcomes.count, 2)
        XCTAssertEqual(outcomes.first?.failure?.reason, .cancelled)
        XCTAssertEqual(outcomes.last?.failure?.reason, .nameNotResolved(host: "ocsp-b.test", detail: "DNS timeout"))
        XCTAssertEqual(client.activeTransferCount, 0)
    }
}

