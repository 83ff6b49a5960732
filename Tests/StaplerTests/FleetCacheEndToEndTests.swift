import Foundation
import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// Several hosts behind one shared HTTP cache (Debian's nginx with `proxy_cache`, a real
/// forward proxy on 127.0.0.1) and one responder that counts what reaches it: the cache,
/// not the number of hosts, decides how often the CA is asked.
final class FleetCacheEndToEndTests: XCTestCase {
    /// One host of the fleet: its own copy of every certificate, its own HAProxy, its own
    /// Stapler.
    private struct Host {
        let certificates: String
        let haproxy: HAProxyProcess?
        let stapler: StaplerProcess
        let metricsPort: UInt16
    }

    private func makeHost(_ name: String, in temp: TemporaryDirectory, pki: TestPKI, leaves: [(String, TestPKI.Leaf)],
                          arguments: [String], haproxy withHAProxy: Bool = true,
                          stapleAtStart: Set<String> = []) throws -> Host {
        let certificates = temp.file("\(name)/certs")
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        for (site, leaf) in leaves {
            try pki.writeBundle(leaf, to: "\(certificates)/\(site).pem")
            if stapleAtStart.contains(site) {
                try pki.ocspResponse(for: leaf).write(to: URL(fileURLWithPath: "\(certificates)/\(site).pem.ocsp"))
            }
        }
        let haproxy = withHAProxy ? try HAProxyProcess(directory: temp.file("\(name)/haproxy"),
                                                       certificates: [certificates + "/"]) : nil
        let metricsPort = freeLoopbackPort()
        let stapler = try StaplerProcess(["-v", "-v", "--metrics", "127.0.0.1:\(metricsPort)"]
                                         + (haproxy.map { ["-s", $0.adminSocket] } ?? ["--no-haproxy-sockets"])
                                         + arguments + [certificates],
                                         logPath: temp.file("\(name)/stapler.log"))
        return Host(certificates: certificates, haproxy: haproxy, stapler: stapler, metricsPort: metricsPort)
    }

    /// One sample of the host's metrics, as curl reads them.
    private func metric(_ host: Host, _ series: String) throws -> String? {
        let text = try Shell.run(["curl", "-sS", "http://127.0.0.1:\(host.metricsPort)/metrics"]).output
        return text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.map { String($0.dropFirst(series.count + 1)) }
    }

    private static func answer(_ pki: TestPKI, _ leaf: TestPKI.Leaf, maxAge: Int, validForMinutes: Int? = nil)
        throws -> HostileResponder.Behaviour {
        .answer(status: 200, headers: [HostileResponder.Header("Content-Type", HostileResponder.Behaviour.ocspContentType),
                                       HostileResponder.Header("Cache-Control", "public, max-age=\(maxAge)")],
                body: Array(try pki.ocspResponse(for: leaf, validForMinutes: validForMinutes)))
    }

    /// A responder that signs each answer when asked, valid for `validForMinutes`.
    private static func signingOnRequest(_ pki: TestPKI, _ leaf: TestPKI.Leaf, maxAge: Int, validForMinutes: Int)
        -> HostileResponder.Behaviour {
        let signer = Signer(pki: pki, leaf: leaf)
        return .computed {
            (try? answer(signer.pki, signer.leaf, maxAge: maxAge, validForMinutes: validForMinutes)) ?? .status(500)
        }
    }

    private final class Signer: @unchecked Sendable {
        let pki: TestPKI
        let leaf: TestPKI.Leaf
        init(pki: TestPKI, leaf: TestPKI.Leaf) {
            self.pki = pki
            self.leaf = leaf
        }
    }

    func testThreeHostsBehindOneCacheAskTheResponderOncePerCertificate() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-fleet-cache")
        let pki = try TestPKI(directory: temp.file("pki"))
        let responder = try HostileResponder()
        defer { responder.stop() }
        let cache = try CachingProxyProcess(directory: temp.file("cache"))
        let sites = (0..<4).map { "site\($0)" }
        var leaves: [(String, TestPKI.Leaf)] = []
        for site in sites {
            let leaf = try pki.issueLeaf(commonName: "\(site).test", ocspURLs: [responder.url(route: site)])
            responder.set(try Self.answer(pki, leaf, maxAge: 3600), for: site)
            leaves.append((site, leaf))
        }

        // Three hosts start together, as a fleet does after a deploy.
        let hosts = try (0..<3).map {
            try makeHost("host\($0)", in: temp, pki: pki, leaves: leaves, arguments: ["--ocsp-proxy", cache.url])
        }
        for host in hosts {
            XCTAssertTrue(host.stapler.waitForLog(": staple written", count: sites.count, timeout: 30), host.stapler.log)
        }

        for site in sites {
            XCTAssertEqual(responder.requestCount(route: site), 1, "\(site): one request for three hosts")
        }
        XCTAssertEqual(responder.requestCount, sites.count)
        XCTAssertEqual(cache.cacheStatuses.filter { $0 == "MISS" }.count, sites.count, "\(cache.cacheStatuses)")
        XCTAssertEqual(cache.cacheStatuses.filter { $0 == "HIT" }.count, 2 * sites.count, "\(cache.cacheStatuses)")
        for host in hosts {
            for (site, leaf) in leaves {
                XCTAssertEqual(try pki.verifyWithOpenSSL(staple: "\(host.certificates)/\(site).pem.ocsp", for: leaf), "good")
                let haproxy = try XCTUnwrap(host.haproxy)
                XCTAssertTrue(waitUntil(timeout: 10) { (try? haproxy.stapleSeen(serverName: "\(site).test")) == .good() },
                              "\(site) on \(host.certificates)")
            }
            XCTAssertEqual(try metric(host, "stapler_ocsp_requests_total{route=\"proxy\"}"), "\(sites.count)")
            XCTAssertEqual(try metric(host, "stapler_ocsp_requests_total{route=\"direct\"}"), "0")
            XCTAssertEqual(try metric(host, "stapler_ocsp_proxy_failing"), "0")
        }

        // The same count sees a host that skips the cache: each of its requests arrives.
        let direct = try makeHost("direct", in: temp, pki: pki, leaves: leaves, arguments: ["--ocsp-proxy", ""],
                                  haproxy: false)
        XCTAssertTrue(direct.stapler.waitForLog(": staple written", count: sites.count, timeout: 30), direct.stapler.log)
        for site in sites { XCTAssertEqual(responder.requestCount(route: site), 2, site) }
        XCTAssertEqual(try metric(direct, "stapler_ocsp_requests_total{route=\"direct\"}"), "\(sites.count)")
    }

    /// The cache holds an answer whose staple would be within --minimum-validity when Stapler
    /// refreshes; the responder's max-age (20 s, before Stapler's refresh window opens at
    /// nextUpdate - 35 s = thisUpdate + 25 s) has made nginx drop it by then, so the refresh
    /// reaches the responder and brings a newer answer.
    func testAnAnswerAboutToExpireInTheCacheIsRefreshedFromTheResponder() throws {
        let (temp, pki, responder, cache, leaf) = try minuteLongAnswers("soon", maxAge: 20)
        defer { responder.stop() }
        let arguments = ["--ocsp-proxy", cache.url, "--minimum-validity", "35"]
        let first = try makeHost("first", in: temp, pki: pki, leaves: [("soon", leaf)], arguments: arguments,
                                 haproxy: false)
        XCTAssertTrue(first.stapler.waitForLog("soon.pem: staple written", timeout: 30), first.stapler.log)
        let staple = "\(first.certificates)/soon.pem.ocsp"
        let firstThisUpdate = try thisUpdate(of: staple, certificate: "\(first.certificates)/soon.pem")
        XCTAssertEqual(responder.requestCount(route: "soon"), 1)

        // While the cache's copy is fresh, another host gets it from the cache.
        let second = try makeHost("second", in: temp, pki: pki, leaves: [("soon", leaf)], arguments: arguments,
                                  haproxy: false)
        XCTAssertTrue(second.stapler.waitForLog("soon.pem: staple written", timeout: 30), second.stapler.log)
        XCTAssertEqual(responder.requestCount(route: "soon"), 1)
        XCTAssertEqual(cache.cacheStatuses.last, "HIT")

        // The first host's refresh (30 s after its fetch, the policy's shortest wait) must
        // reach the responder, which signs a newer answer.
        XCTAssertTrue(first.stapler.waitForLog("soon.pem: staple written", count: 2, timeout: 60), first.stapler.log)
        XCTAssertEqual(responder.requestCount(route: "soon"), 2, "the expired cache entry went back to the responder")
        XCTAssertEqual(cache.cacheStatuses.filter { $0 == "EXPIRED" }.count, 1, "\(cache.cacheStatuses)")
        let refreshed = try thisUpdate(of: staple, certificate: "\(first.certificates)/soon.pem")
        XCTAssertGreaterThan(refreshed, firstThisUpdate)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: staple, for: leaf), "good")
        XCTAssertFalse(first.stapler.log.contains("OCSP fetch failed"), first.stapler.log)
        // The cache's rules did it: nothing went around the cache.
        XCTAssertEqual(try metric(first, "stapler_ocsp_requests_total{route=\"direct\"}"), "0")
        XCTAssertEqual(try metric(first, "stapler_ocsp_requests_total{route=\"proxy\"}"), "2")
    }

    /// A responder whose max-age outlasts the refresh window (RFC 5019 allows it up to
    /// nextUpdate): the cache still holds the old answer when Stapler refreshes, so the
    /// answer through it is already within --minimum-validity; Stapler asks the responder
    /// directly instead of stapling it, and gets a newer one.
    func testAnAnswerTheCacheKeepsPastTheRefreshWindowIsAskedForDirectly() throws {
        let (temp, pki, responder, cache, leaf) = try minuteLongAnswers("sticky", maxAge: 3600)
        defer { responder.stop() }
        let host = try makeHost("host", in: temp, pki: pki, leaves: [("sticky", leaf)],
                                arguments: ["--ocsp-proxy", cache.url, "--minimum-validity", "35"], haproxy: false)
        XCTAssertTrue(host.stapler.waitForLog("sticky.pem: staple written", timeout: 30), host.stapler.log)
        let staple = "\(host.certificates)/sticky.pem.ocsp"
        let firstThisUpdate = try thisUpdate(of: staple, certificate: "\(host.certificates)/sticky.pem")

        XCTAssertTrue(host.stapler.waitForLog("sticky.pem: staple written", count: 2, timeout: 60), host.stapler.log)
        XCTAssertEqual(cache.cacheStatuses, ["MISS", "HIT"], "the cache answered the refresh with its old copy")
        XCTAssertEqual(responder.requestCount(route: "sticky"), 2, "and the responder was asked directly")
        XCTAssertTrue(host.stapler.log.contains("within --minimum-validity (a cached copy"), host.stapler.log)
        XCTAssertGreaterThan(try thisUpdate(of: staple, certificate: "\(host.certificates)/sticky.pem"), firstThisUpdate)
        XCTAssertEqual(try metric(host, "stapler_ocsp_requests_total{route=\"direct\"}"), "1")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: staple, for: leaf), "good")
    }

    func testWhenTheCacheIsDownOnlyStaplesRunningOutAreAskedForDirectlyUnlessProxyOnly() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-fleet-down")
        let pki = try TestPKI(directory: temp.file("pki"))
        let responder = try HostileResponder()
        defer { responder.stop() }
        var leaves: [String: TestPKI.Leaf] = [:]
        for site in ["missing", "healthy", "strict"] {
            let leaf = try pki.issueLeaf(commonName: "\(site).test", ocspURLs: [responder.url(route: site)])
            responder.set(try Self.answer(pki, leaf, maxAge: 3600), for: site)
            leaves[site] = leaf
        }
        // Nothing listens here yet: the cache is down.
        let cachePort = freeLoopbackPort()
        let cacheURL = "http://127.0.0.1:\(cachePort)"
        let fallback = try makeHost("fallback", in: temp, pki: pki,
                                    leaves: [("missing", leaves["missing"]!), ("healthy", leaves["healthy"]!)],
                                    arguments: ["--ocsp-proxy", cacheURL], haproxy: false, stapleAtStart: ["healthy"])
        let strict = try makeHost("strict", in: temp, pki: pki, leaves: [("strict", leaves["strict"]!)],
                                  arguments: ["--ocsp-proxy", cacheURL, "--ocsp-proxy-only"], haproxy: false)

        // No staple at all: asked directly at once. With --ocsp-proxy-only: never.
        XCTAssertTrue(fallback.stapler.waitForLog("missing.pem: staple written", timeout: 30), fallback.stapler.log)
        XCTAssertTrue(strict.stapler.waitForLog("strict.pem: OCSP fetch failed", timeout: 30), strict.stapler.log)
        XCTAssertTrue(strict.stapler.log.contains("through the proxy \(cacheURL)"), strict.stapler.log)
        XCTAssertTrue(strict.stapler.log.contains("proxy \(cacheURL) is failing"), strict.stapler.log)
        XCTAssertEqual(responder.requestCount(route: "missing"), 1)
        XCTAssertEqual(responder.requestCount(route: "strict"), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(strict.certificates)/strict.pem.ocsp"))

        // A good staple far from expiry is kept and retried through the cache, not asked for.
        XCTAssertTrue(fallback.stapler.waitForLog("healthy.pem: staple on disk is good"), fallback.stapler.log)
        let healthyStaple = try Data(contentsOf: URL(fileURLWithPath: "\(fallback.certificates)/healthy.pem.ocsp"))
        try Shell.run(["touch", "\(fallback.certificates)/healthy.pem"])
        XCTAssertTrue(fallback.stapler.waitForLog("healthy.pem: OCSP fetch failed", timeout: 30), fallback.stapler.log)
        XCTAssertTrue(fallback.stapler.log.contains("(serving the staple valid until"), fallback.stapler.log)
        XCTAssertEqual(responder.requestCount(route: "healthy"), 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(fallback.certificates)/healthy.pem.ocsp")),
                       healthyStaple)
        XCTAssertEqual(try metric(fallback, "stapler_ocsp_requests_total{route=\"direct\"}"), "1")
        XCTAssertEqual(try metric(fallback, "stapler_ocsp_requests_total{route=\"proxy\"}"), "2")
        XCTAssertEqual(try metric(fallback, "stapler_ocsp_proxy_failing"), "1")

        // The cache comes back: the next refresh goes through it, and the log says so once.
        let cache = try CachingProxyProcess(directory: temp.file("cache"), port: cachePort)
        try Shell.run(["touch", "\(fallback.certificates)/healthy.pem"])
        XCTAssertTrue(fallback.stapler.waitForLog("healthy.pem: staple written", timeout: 30), fallback.stapler.log)
        XCTAssertTrue(fallback.stapler.log.contains("proxy \(cacheURL) answers again"), fallback.stapler.log)
        XCTAssertEqual(responder.requestCount(route: "healthy"), 1)
        XCTAssertEqual(cache.cacheStatuses, ["MISS"])
        XCTAssertEqual(try metric(fallback, "stapler_ocsp_proxy_failing"), "0")
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: "\(fallback.certificates)/healthy.pem.ocsp",
                                                 for: leaves["healthy"]!), "good")
    }

    func testTheProxyEnvironmentVariablesWorkAndNoProxyExemptsAResponder() throws {
        let temp = try TemporaryDirectory(prefix: "stapler-fleet-environment")
        let pki = try TestPKI(directory: temp.file("pki"))
        let responder = try HostileResponder()
        defer { responder.stop() }
        let cache = try CachingProxyProcess(directory: temp.file("cache"))
        let leaf = try pki.issueLeaf(commonName: "env.test", ocspURLs: [responder.url(route: "env")])
        responder.set(try Self.answer(pki, leaf, maxAge: 3600), for: "env")
        let certificates = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        try pki.writeBundle(leaf, to: "\(certificates)/env.pem")

        func onePass(_ proxyEnvironment: [String: String], _ name: String) throws -> String {
            let pass = try StaplerProcess(["--one-off", "--no-recycle", "-v", "-v", "-v", certificates],
                                          logPath: temp.file("\(name).log"), proxyEnvironment: proxyEnvironment)
            XCTAssertEqual(pass.waitForExit(timeout: 30), 0, pass.log)
            return pass.log
        }
        _ = try onePass(["http_proxy": cache.url], "through-http-proxy")
        _ = try onePass(["all_proxy": cache.url], "through-all-proxy")
        XCTAssertEqual(cache.cacheStatuses, ["MISS", "HIT"])
        XCTAssertEqual(responder.requestCount(route: "env"), 1)

        _ = try onePass(["http_proxy": cache.url, "no_proxy": "localhost,127.0.0.1"], "exempt")
        XCTAssertEqual(cache.cacheStatuses.count, 2, "no_proxy sent it past the cache")
        XCTAssertEqual(responder.requestCount(route: "env"), 2)
        XCTAssertEqual(try pki.verifyWithOpenSSL(staple: "\(certificates)/env.pem.ocsp", for: leaf), "good")
    }

    /// A CA, a cache, and a responder that signs answers valid for one minute for `site`
    /// when asked, with this max-age: refreshes come within a test's patience.
    private func minuteLongAnswers(_ site: String, maxAge: Int) throws
        -> (TemporaryDirectory, TestPKI, HostileResponder, CachingProxyProcess, TestPKI.Leaf) {
        let temp = try TemporaryDirectory(prefix: "stapler-fleet-\(site)")
        let pki = try TestPKI(directory: temp.file("pki"))
        let responder = try HostileResponder()
        let cache = try CachingProxyProcess(directory: temp.file("cache"))
        let leaf = try pki.issueLeaf(commonName: "\(site).test", ocspURLs: [responder.url(route: site)])
        responder.set(Self.signingOnRequest(pki, leaf, maxAge: maxAge, validForMinutes: 1), for: site)
        return (temp, pki, responder, cache, leaf)
    }

    /// thisUpdate of a staple file, as Stapler reads it.
    private func thisUpdate(of staple: String, certificate: String) throws -> Int64 {
        let record = try CertificateBundle.load(path: FilePath(certificate), now: UTCTime.now(), issuers: IssuerStore())
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: staple)))
        return try OCSPResponseVerifier.verify(bytes, for: record, now: UTCTime.now()).thisUpdate
    }
}
