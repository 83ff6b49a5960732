import Foundation
import Reactor
import TestSupport
import XCTest

/// `--metrics` as an operator meets it: the real `stapler` binary, a real `openssl ocsp`
/// responder, scraped with the `curl` command line on 127.0.0.1. The values must match the
/// staple files on disk (read back with openssl) and the SIGUSR1 status table. Open to
/// hostile clients (idle floods, slowloris, 1 MB request lines, garbage, half-closed sockets,
/// clients that never read), a good scrape still answers within a second, the daemon's
/// descriptors and memory stay bounded, and a certificate touched meanwhile is stapled.
final class MetricsEndToEndTests: XCTestCase {
    private var temp: TemporaryDirectory!
    private var pki: TestPKI!
    private var responder: OCSPResponderProcess?
    private var stapler: StaplerProcess?

    override func setUpWithError() throws {
        temp = try TemporaryDirectory(prefix: "stapler-metrics")
        pki = try TestPKI(directory: temp.file("pki"))
    }

    override func tearDown() {
        if let stapler, stapler.isRunning {
            stapler.signal(SIGTERM)
            _ = stapler.waitForExit()
        }
        stapler = nil
        responder?.stop()
        responder = nil
        pki = nil
        temp = nil
    }

    // MARK: Values

    func testScrapedValuesMatchTheStapleFilesAndTheStatusTable() throws {
        let started = Date()
        let responderPort = freeLoopbackPort()
        let live = "http://127.0.0.1:\(responderPort)/"
        let good = try pki.issueLeaf(commonName: "good.test", ocspURLs: [live])
        let must = try pki.issueLeaf(commonName: "must.test", ocspURLs: [live], mustStaple: true)
        let revoked = try pki.issueLeaf(commonName: "revoked.test", ocspURLs: [live])
        let noOCSP = try pki.issueLeaf(commonName: "no-ocsp.test", ocspURLs: [])
        try pki.revoke(revoked)
        responder = try OCSPResponderProcess(pki: pki, port: responderPort)

        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        var bundles: [String: (path: String, leaf: TestPKI.Leaf)] = [:]
        for (name, leaf) in [("good", good), ("must", must), ("revoked", revoked), ("plain", noOCSP)] {
            let path = "\(certs)/\(name).pem"
            try pki.writeBundle(leaf, to: path)
            bundles[name] = (path, leaf)
        }

        let port = freeLoopbackPort()
        let daemon = try startDaemon(["--metrics", "127.0.0.1:\(port)", certs])
        XCTAssertTrue(daemon.waitForLog("staple written", count: 3), daemon.log)
        // The counters move just before the staple is written; wait until the scrape shows all three.
        var scrape = try self.scrape(port)
        XCTAssertTrue(try waitUntil(timeout: 10) {
            scrape = try self.scrape(port)
            return scrape.samples[#"stapler_fetches_total{result="success"}"#] == 3
        }, scrape.body)

        XCTAssertEqual(scrape.status, 200)
        XCTAssertEqual(scrape.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertEqual(scrape.samples["stapler_certificates"], 4)
        XCTAssertEqual(scrape.samples["stapler_certificates_inactive"], 1)
        XCTAssertEqual(scrape.samples[#"stapler_fetches_total{result="failure"}"#], 0)
        XCTAssertEqual(scrape.samples[#"stapler_certificate_active{path="\#(bundles["plain"]!.path)"}"#], 0)
        XCTAssertEqual(scrape.samples[#"stapler_staple_status{path="\#(bundles["good"]!.path)"}"#], 0)
        XCTAssertEqual(scrape.samples[#"stapler_staple_status{path="\#(bundles["revoked"]!.path)"}"#], 1)
        XCTAssertEqual(scrape.samples[#"stapler_certificate_must_staple{path="\#(bundles["must"]!.path)"}"#], 1)
        XCTAssertEqual(scrape.samples[#"stapler_certificate_must_staple{path="\#(bundles["good"]!.path)"}"#], 0)
        let startTime = try XCTUnwrap(scrape.samples["process_start_time_seconds"])
        XCTAssertEqual(Double(startTime), started.timeIntervalSince1970, accuracy: 10)

        // The SIGUSR1 table, from the same state.
        let offset = daemon.log.utf8.count
        daemon.signal(SIGUSR1)
        XCTAssertTrue(waitUntil { self.logSince(daemon, offset).contains("\(bundles["revoked"]!.path): staple REVOKED") },
                      daemon.log)
        let table = logSince(daemon, offset)

        for name in ["good", "must", "revoked"] {
            let (path, _) = bundles[name]!
            let onDisk = try nextUpdateInStaple(path + ".ocsp")
            let scraped = scrape.samples[#"stapler_staple_next_update_timestamp_seconds{path="\#(path)"}"#]
            XCTAssertEqual(scraped, onDisk, "\(name): metrics against the staple file")
            XCTAssertEqual(try nextUpdateInTable(table, path: path), onDisk, "\(name): status table against the staple file")
            let thisUpdate = try XCTUnwrap(scrape.samples[#"stapler_staple_this_update_timestamp_seconds{path="\#(path)"}"#])
            XCTAssertLessThan(thisUpdate, onDisk)
            let nextRefresh = try XCTUnwrap(scrape.samples[#"stapler_next_refresh_timestamp_seconds{path="\#(path)"}"#])
            XCTAssertGreaterThan(nextRefresh, Int64(started.timeIntervalSince1970))
            XCTAssertLessThanOrEqual(nextRefresh, onDisk)
            XCTAssertEqual(scrape.samples[#"stapler_consecutive_failures{path="\#(path)"}"#], 0)
        }
    }

    /// `--metrics-per-certificate=false`: the scrape a Prometheus server reads (through the
    /// Prometheus client's own parser) holds the aggregates only, and they count each kind
    /// of certificate the daemon really has.
    func testWithoutPerCertificateFamiliesTheScrapeHoldsOnlyAggregatesThatMatchTheCertificates() throws {
        let responderPort = freeLoopbackPort()
        let live = "http://127.0.0.1:\(responderPort)/"
        let dead = "http://127.0.0.1:\(freeLoopbackPort())/"
        let leaves = [
            ("good", try pki.issueLeaf(commonName: "good.test", ocspURLs: [live])),
            ("revoked", try pki.issueLeaf(commonName: "revoked.test", ocspURLs: [live])),
            ("plain", try pki.issueLeaf(commonName: "no-ocsp.test", ocspURLs: [])),
            ("must-down", try pki.issueLeaf(commonName: "must-down.test", ocspURLs: [dead], mustStaple: true)),
        ]
        try pki.revoke(leaves[1].1)
        responder = try OCSPResponderProcess(pki: pki, port: responderPort)
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        for (name, leaf) in leaves { try pki.writeBundle(leaf, to: "\(certs)/\(name).pem") }
        // A certificate block that does not parse (unusable), and a file with no certificate (skipped).
        try "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            .write(toFile: "\(certs)/broken.pem", atomically: true, encoding: .utf8)
        try "no certificate here\n".write(toFile: "\(certs)/notes.pem", atomically: true, encoding: .utf8)

        let port = freeLoopbackPort()
        let daemon = try startDaemon(["--metrics", "127.0.0.1:\(port)", "--metrics-per-certificate=false", certs])
        XCTAssertTrue(daemon.waitForLog("staple written", count: 2), daemon.log)
        var scrape = try self.scrape(port)
        XCTAssertTrue(try waitUntil(timeout: 10) {
            scrape = try self.scrape(port)
            return scrape.samples[#"stapler_certificates_by_state{state="failing"}"#] == 1
        }, scrape.body + daemon.log)

        let families = try PrometheusTextParser.parse(scrape.body)
        XCTAssertEqual(Set(families.map(\.name)), [
            "stapler_certificates", "stapler_certificates_inactive", "stapler_certificates_by_state",
            "stapler_staple_earliest_expiry_timestamp_seconds", "stapler_must_staple_without_valid_staple",
            "stapler_fetches", "stapler_ocsp_requests", "stapler_ocsp_proxy_failing", "stapler_fetches_running",
            "stapler_fetches_queued", "stapler_haproxy_pushes",
            "stapler_haproxy_pushes_pending", "stapler_responder_clock_lead_seconds", "stapler_build_info",
            "process_start_time_seconds",
        ])
        XCTAssertFalse(families.contains { $0.samples.contains { $0.labels["path"] != nil } }, scrape.body)
        let states = Dictionary(uniqueKeysWithValues: try XCTUnwrap(families.first { $0.name == "stapler_certificates_by_state" })
            .samples.map { ($0.labels["state"] ?? "", $0.value) })
        XCTAssertEqual(states, ["good": 1, "revoked": 1, "failing": 1, "pending": 0, "no_ocsp_url": 1, "expired": 0,
                                "unusable": 1, "skipped": 1])
        XCTAssertEqual(scrape.samples["stapler_must_staple_without_valid_staple"], 1)
        let earliest = try [nextUpdateInStaple("\(certs)/good.pem.ocsp"), nextUpdateInStaple("\(certs)/revoked.pem.ocsp")].min()
        XCTAssertEqual(scrape.samples["stapler_staple_earliest_expiry_timestamp_seconds"], earliest)
    }

    // MARK: HTTP behaviour

    func testOnlyMetricsIsServedAndAnIdleClientDoesNotHoldUpAScrape() throws {
        let certs = temp.file("empty")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let port = freeLoopbackPort()
        _ = try startDaemon(["--metrics", "127.0.0.1:\(port)", certs])

        // A client that connects and says nothing: the daemon is single-threaded, and must
        // not wait for it.
        let idle = try IdleConnection(port: port)
        defer { idle.close() }

        XCTAssertEqual(try scrape(port, path: "/").status, 404)
        XCTAssertEqual(try scrape(port, path: "/metrics/extra").status, 404)
        XCTAssertEqual(try scrape(port, arguments: ["-X", "POST"]).status, 405)
        let head = try curl(["-sS", "-I", "http://127.0.0.1:\(port)/metrics"])
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK\r\n"), head)
        XCTAssertTrue(head.contains("Content-Length: "), head)
        let scraped = try scrape(port, path: "/metrics?format=text")
        XCTAssertEqual(scraped.status, 200)
        XCTAssertEqual(scraped.samples["stapler_certificates"], 0)
    }

    func testAddressInUseStopsTheStartWithOneLineNamingTheOption() throws {
        let certs = temp.file("empty")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let taken = try IdleListener()
        defer { taken.close() }

        let run = try StaplerProcess.run(["--metrics", "127.0.0.1:\(taken.port)", certs], in: temp.path, timeout: 20)

        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertTrue(run.output.contains("bind(--metrics 127.0.0.1:\(taken.port)): Address already in use"), run.output)
    }

    func testSIGHUPMovesTheEndpointToTheAddressInTheConfigFile() throws {
        let certs = temp.file("empty")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let first = freeLoopbackPort()
        let config = temp.file("stapler.conf")
        // Confined, the daemon may bind only the port it started with: the move needs the
        // sandbox off (SandboxEndToEndTests shows the refusal with it on).
        func writeConfig(_ port: UInt16) throws {
            try "cert-paths = [\(certs)]\nmetrics = 127.0.0.1:\(port)\nsandbox = false\n"
                .write(toFile: config, atomically: true, encoding: .utf8)
        }
        try writeConfig(first)
        let daemon = try startDaemon(["-c", config])
        XCTAssertEqual(try scrape(first).status, 200)

        var second = freeLoopbackPort()
        while second == first { second = freeLoopbackPort() }
        try writeConfig(second)
        let offset = daemon.log.utf8.count
        daemon.signal(SIGHUP)
        XCTAssertTrue(waitUntil { self.logSince(daemon, offset).contains("configuration reloaded") }, daemon.log)

        XCTAssertEqual(try scrape(second).status, 200)
        XCTAssertFalse(loopbackPortAccepts(first), "the old address is closed")
    }

    // MARK: Unix socket

    func testServesOverAUnixSocketReplacingAStaleOneAndRemovingItOnExit() throws {
        let certs = temp.file("empty")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let socket = temp.file("metrics.sock")
        try UnixSockets.makeStale(at: socket) // as a crashed run leaves it
        XCTAssertFalse(UnixSockets.accepts(socket))

        let daemon = try startDaemon(["--metrics", socket, certs])
        XCTAssertTrue(daemon.log.contains("metrics: serving /metrics on unix socket \(socket)"), daemon.log)
        let scraped = try scrape(unixSocket: socket)
        XCTAssertEqual(scraped.status, 200, scraped.body)
        XCTAssertEqual(scraped.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertEqual(scraped.samples["stapler_certificates"], 0)
        XCTAssertEqual(try scrape(unixSocket: socket, path: "/").status, 404)
        let attributes = try FileManager.default.attributesOfItem(atPath: socket)
        XCTAssertEqual(attributes[.type] as? FileAttributeType, .typeSocket)
        XCTAssertEqual((attributes[.posixPermissions] as? Int).map { $0 & 0o777 }, 0o660, "owner and group only")

        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(), 0, daemon.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the socket file goes with the daemon")
    }

    func testUnixSocketPathHoldingAnotherFileOrALiveSocketStopsTheStart() throws {
        let certs = temp.file("empty")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let regular = temp.file("not-a-socket")
        try "keep me\n".write(toFile: regular, atomically: true, encoding: .utf8)

        let refused = try StaplerProcess.run(["--metrics", regular, certs], in: temp.path, timeout: 20)
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.output.contains("bind(--metrics \(regular)): File exists"), refused.output)
        XCTAssertEqual(try String(contentsOfFile: regular, encoding: .utf8), "keep me\n", "never replaced")

        let live = temp.file("live.sock")
        let listener = try UnixSockets.listen(at: live)
        defer { close(listener) }
        let inUse = try StaplerProcess.run(["--metrics", live, certs], in: temp.path, timeout: 20)
        XCTAssertEqual(inUse.status, 1, inUse.output)
        XCTAssertTrue(inUse.output.contains("bind(--metrics \(live)): Address already in use"), inUse.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: live), "someone else's socket is left alone")
    }

    func testSIGHUPMovesTheEndpointFromAUnixSocketToTCPAndRemovesTheSocketFile() throws {
        let certs = temp.file("empty")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let socket = temp.file("metrics.sock")
        let config = temp.file("stapler.conf")
        // Confined, the daemon may bind no TCP port when it started on a unix socket: the move
        // needs the sandbox off (SandboxEndToEndTests shows the refusal with it on).
        try "cert-paths = [\(certs)]\nmetrics = \(socket)\nsandbox = false\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try startDaemon(["-c", config])
        XCTAssertEqual(try scrape(unixSocket: socket).status, 200)

        let port = freeLoopbackPort()
        try "cert-paths = [\(certs)]\nmetrics = 127.0.0.1:\(port)\nsandbox = false\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let offset = daemon.log.utf8.count
        daemon.signal(SIGHUP)
        XCTAssertTrue(waitUntil { self.logSince(daemon, offset).contains("configuration reloaded") }, daemon.log)

        XCTAssertEqual(try scrape(port).status, 200)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the old socket file is removed")
    }

    // MARK: Hostile clients

    /// The metrics server's connection cap.
    private var maxConnections: Int { SimpleHTTPServer.Configuration().maxConnections }
    /// Descriptors the daemon may open besides the metrics connections while it staples
    /// (a responder connection, the staple file and its directory, curl's own).
    private var staplingDescriptorAllowance: Int { 8 }
    /// Memory the attacks may add to the daemon's resident set.
    private var residentGrowthLimitKiB: Int { 16 << 10 }

    func testScrapesStayFastAndStaplingGoesOnUnderEveryAttackOverTCP() throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("garbage seed: \(seed)")
        XCTAssertGreaterThanOrEqual(HostileHTTPClients.raiseDescriptorLimit(to: 12_000), 10_500,
                                    "10,000 attacking connections need the descriptors")
        let port = freeLoopbackPort()
        let site = try startStapling(metrics: "127.0.0.1:\(port)")
        try withstand(HostileHTTPAttack.fullBattery(seed: seed), endpoint: .tcp(port: port), site: site)
    }

    func testScrapesStayFastAndStaplingGoesOnUnderAttackOverAUnixSocket() throws {
        let socket = temp.file("metrics.sock")
        let site = try startStapling(metrics: socket)
        try withstand(HostileHTTPAttack.briefBattery, endpoint: .unix(path: socket), site: site)
    }

    private struct Site {
        let daemon: StaplerProcess
        let certificate: String
    }

    /// A daemon stapling one certificate from a live responder, with metrics at `metrics`.
    private func startStapling(metrics: String) throws -> Site {
        let responderPort = freeLoopbackPort()
        let leaf = try pki.issueLeaf(commonName: "attacked.test", ocspURLs: ["http://127.0.0.1:\(responderPort)/"])
        responder = try OCSPResponderProcess(pki: pki, port: responderPort)
        let certs = temp.file("certs")
        try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
        let certificate = "\(certs)/attacked.pem"
        try pki.writeBundle(leaf, to: certificate)
        let daemon = try startDaemon(["--metrics", metrics, certs])
        XCTAssertTrue(daemon.waitForLog("\(certificate): staple written"), daemon.log)
        return Site(daemon: daemon, certificate: certificate)
    }

    /// Runs each attack in turn. During each one the certificate is touched and must be
    /// stapled again (a fresh fetch from the responder), good scrapes must all answer 200
    /// within a second, and the daemon's descriptors and memory are sampled between scrapes.
    private func withstand(_ attacks: [(kind: HostileHTTPAttack.Kind, seconds: TimeInterval)], endpoint: StreamEndpoint,
                           site: Site) throws {
        let daemon = site.daemon
        let baseDescriptors = try XCTUnwrap(descriptorCount(daemon.pid))
        let baseResident = try XCTUnwrap(daemon.residentKiB)
        print("daemon before the attacks: \(baseDescriptors) descriptors, VmRSS \(baseResident) KiB")
        for (kind, seconds) in attacks {
            let stapledBefore = stapleLines(site)
            let fetchesBefore = responder?.requestCount ?? 0
            // A touch asks for a fresh staple at once.
            try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: site.certificate)
            var peakDescriptors = 0
            var peakResident = 0
            let outcome = HostileHTTPAttack.run(kind, against: endpoint, for: seconds, alsoUntil: {
                self.stapleLines(site) > stapledBefore
            }, sample: {
                peakDescriptors = max(peakDescriptors, self.descriptorCount(daemon.pid) ?? 0)
                peakResident = max(peakResident, daemon.residentKiB ?? 0)
            })
            print("\(outcome); daemon peaks: \(peakDescriptors) descriptors, VmRSS \(peakResident) KiB")

            XCTAssertTrue(daemon.isRunning, "\(kind): \(daemon.log)")
            outcome.assertWithstood(maxConnections: maxConnections, endpoint: endpoint)
            XCTAssertGreaterThan(stapleLines(site), stapledBefore, "\(kind): the touched certificate was stapled again")
            XCTAssertGreaterThan(responder?.requestCount ?? 0, fetchesBefore, "\(kind): from a fresh fetch")
            XCTAssertLessThanOrEqual(peakDescriptors, baseDescriptors + maxConnections + staplingDescriptorAllowance,
                                     "\(kind): the daemon's descriptors stay bounded")
            XCTAssertLessThanOrEqual(peakResident, baseResident + residentGrowthLimitKiB, "\(kind): memory stays bounded")
            if case .halfClosed = kind {
                // Let go as soon as the client's end of stream arrives, not held to the timeout.
                XCTAssertLessThanOrEqual(peakDescriptors, baseDescriptors + maxConnections / 2, "\(kind)")
            }
        }
        // Once the attackers are gone the daemon lets go of their connections.
        XCTAssertTrue(waitUntil(timeout: 10) { (self.descriptorCount(daemon.pid) ?? .max) <= baseDescriptors + 2 },
                      "descriptors after the attacks: \(descriptorCount(daemon.pid) ?? -1), before \(baseDescriptors)")
        XCTAssertEqual(HostileHTTPClients.scrape(endpoint).status, 200)
    }

    /// Successful fetches of the site's certificate so far ("staple written" or "unchanged").
    private func stapleLines(_ site: Site) -> Int {
        site.daemon.log.components(separatedBy: "\(site.certificate): staple ").count - 1
    }

    private func descriptorCount(_ pid: Int32) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    // MARK: Helpers

    private func startDaemon(_ arguments: [String]) throws -> StaplerProcess {
        let daemon = try StaplerProcess(["-r", "3600", "--verbosity", "3"] + arguments, logPath: temp.file("stapler.log"))
        stapler = daemon
        XCTAssertTrue(daemon.waitForLog("metrics: serving"), daemon.log)
        return daemon
    }

    private struct Scrape {
        var status: Int
        var headers: [String: String]
        var body: String
        var samples: [String: Int64]
    }

    /// GET with the curl command line, headers included (-i).
    private func scrape(_ port: UInt16, path: String = "/metrics", arguments: [String] = []) throws -> Scrape {
        try parseScrape(try curl(["-sS", "-i", "--max-time", "10"] + arguments + ["http://127.0.0.1:\(port)\(path)"]))
    }

    /// GET over a Unix socket, as an operator would: `curl --unix-socket PATH http://localhost/metrics`.
    private func scrape(unixSocket socket: String, path: String = "/metrics") throws -> Scrape {
        try parseScrape(try curl(["-sS", "-i", "--max-time", "10", "--unix-socket", socket, "http://localhost\(path)"]))
    }

    private func parseScrape(_ output: String) throws -> Scrape {
        let split = try XCTUnwrap(output.range(of: "\r\n\r\n"), "not an HTTP response: \(output)")
        let head = output[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = String(output[split.upperBound...])
        var samples: [String: Int64] = [:]
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Int64(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return Scrape(status: status, headers: headers, body: body, samples: samples)
    }

    private func curl(_ arguments: [String]) throws -> String {
        try Shell.run(["curl"] + arguments).output
    }

    private func logSince(_ daemon: StaplerProcess, _ offset: Int) -> String {
        String(decoding: Array(daemon.log.utf8.dropFirst(offset)), as: UTF8.self)
    }

    /// nextUpdate of a staple file, as openssl reads it (`Next Update: Nov 26 17:00:00 2026 GMT`).
    private func nextUpdateInStaple(_ path: String) throws -> Int64 {
        let text = try Shell.run(["openssl", "ocsp", "-respin", path, "-resp_text", "-noverify"]).output
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.contains("Next Update: ") })
        let value = line.components(separatedBy: "Next Update: ")[1]
            .split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        return try unixTime(value, format: "MMM d HH:mm:ss yyyy zzz")
    }

    /// "valid until 2026-11-26 17:00:00 UTC" in the status table line of `path`.
    private func nextUpdateInTable(_ table: String, path: String) throws -> Int64 {
        let line = try XCTUnwrap(table.split(separator: "\n").first { $0.contains(" \(path): staple ") }, table)
        let after = try XCTUnwrap(line.range(of: "valid until "), String(line))
        return try unixTime(String(line[after.upperBound...].prefix(19)), format: "yyyy-MM-dd HH:mm:ss")
    }

    private func unixTime(_ text: String, format: String) throws -> Int64 {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = format
        let date = try XCTUnwrap(formatter.date(from: text), "cannot read the time \(text)")
        return Int64(date.timeIntervalSince1970)
    }
}

/// A TCP connection to 127.0.0.1 that sends nothing.
private final class IdleConnection {
    private var fd: Int32

    init(port: UInt16) throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(socketFD)
            throw POSIXError(.ECONNREFUSED)
        }
        fd = socketFD
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

/// A listening socket on 127.0.0.1 that never accepts: its port is taken.
private final class IdleListener {
    private var fd: Int32
    let port: UInt16

    init() throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) }
        }
        guard bound == 0, listen(socketFD, 4) == 0 else {
            Glibc.close(socketFD)
            throw POSIXError(.EADDRINUSE)
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
        }
        fd = socketFD
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}
