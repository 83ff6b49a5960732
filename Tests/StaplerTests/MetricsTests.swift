@testable import Reactor
import TestSupport
import XCTest
@testable import Stapler

/// The Prometheus exposition as a scraper reads it: well-formed text format 0.0.4, the right
/// value on the right series, label values escaped so no path can break a line or a label.
final class MetricsTests: XCTestCase {
    private let process = Metrics.Process(fetchesRunning: 2, fetchesQueued: 5, pushesPending: 1,
                                          startTime: 1_764_000_000, version: "9.9.9")

    private func staple(_ status: VerifiedOCSPResponse.Status = .good, thisUpdate: Int64 = 1_764_060_000,
                        nextUpdate: Int64 = 1_764_664_800) -> StapleSummary {
        StapleSummary(VerifiedOCSPResponse(status: status, thisUpdate: thisUpdate, nextUpdate: nextUpdate,
                                           producedAt: thisUpdate, der: []),
                      fetchedAt: nil, cacheMaxAge: nil)
    }

    /// Between the test staples' thisUpdate and nextUpdate.
    private let now: Int64 = 1_764_100_000

    private func render(_ certificates: [Metrics.Certificate], statistics: Statistics = Statistics(),
                        perCertificate: Bool = true) -> String {
        let bytes = Metrics.render(certificates: certificates, statistics: statistics, process: process,
                                   perCertificate: perCertificate, now: now)
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Values

    func testEachCertificateGetsItsValuesAndTotalsCountEveryFile() throws {
        let statistics = Statistics()
        statistics.fetchesSucceeded = 7
        statistics.fetchesFailed = 3
        let text = render([
            .init(path: "/certs/good.pem", isActive: true, mustStaple: true, staple: staple(), nextRefresh: 1_764_300_000),
            .init(path: "/certs/revoked.pem", isActive: true, staple: staple(.revoked(time: 1_764_000_000, reason: 1)),
                  nextRefresh: 1_764_100_000),
            .init(path: "/certs/failing.pem", isActive: true, nextRefresh: 1_764_000_600, failures: 3),
            .init(path: "/certs/self-signed.pem", isActive: false),
        ], statistics: statistics)
        let samples = try parse(text)

        XCTAssertEqual(samples["stapler_certificates"], 4)
        XCTAssertEqual(samples["stapler_certificates_inactive"], 1)
        XCTAssertEqual(samples[#"stapler_staple_next_update_timestamp_seconds{path="/certs/good.pem"}"#], 1_764_664_800)
        XCTAssertEqual(samples[#"stapler_staple_this_update_timestamp_seconds{path="/certs/good.pem"}"#], 1_764_060_000)
        XCTAssertEqual(samples[#"stapler_staple_status{path="/certs/good.pem"}"#], 0)
        XCTAssertEqual(samples[#"stapler_staple_status{path="/certs/revoked.pem"}"#], 1)
        XCTAssertEqual(samples[#"stapler_certificate_must_staple{path="/certs/good.pem"}"#], 1)
        XCTAssertEqual(samples[#"stapler_certificate_must_staple{path="/certs/revoked.pem"}"#], 0)
        XCTAssertEqual(samples[#"stapler_next_refresh_timestamp_seconds{path="/certs/failing.pem"}"#], 1_764_000_600)
        XCTAssertEqual(samples[#"stapler_consecutive_failures{path="/certs/failing.pem"}"#], 3)
        XCTAssertEqual(samples[#"stapler_consecutive_failures{path="/certs/good.pem"}"#], 0)
        XCTAssertEqual(samples[#"stapler_certificate_active{path="/certs/self-signed.pem"}"#], 0)
        XCTAssertEqual(samples[#"stapler_certificate_active{path="/certs/good.pem"}"#], 1)
        XCTAssertEqual(samples[#"stapler_fetches_total{result="success"}"#], 7)
        XCTAssertEqual(samples[#"stapler_fetches_total{result="failure"}"#], 3)
        XCTAssertEqual(samples["stapler_fetches_running"], 2)
        XCTAssertEqual(samples["stapler_fetches_queued"], 5)
        XCTAssertEqual(samples["stapler_haproxy_pushes_pending"], 1)
        XCTAssertEqual(samples[#"stapler_build_info{version="9.9.9"}"#], 1)
        XCTAssertEqual(samples["process_start_time_seconds"], 1_764_000_000)

        // No staple, no staple series (a zero would read as "expired in 1970").
        XCTAssertNil(samples[#"stapler_staple_next_update_timestamp_seconds{path="/certs/failing.pem"}"#])
        XCTAssertNil(samples[#"stapler_staple_status{path="/certs/failing.pem"}"#])
        // An inactive file has only its `active` series.
        XCTAssertEqual(samples.keys.filter { $0.contains("self-signed") }, [#"stapler_certificate_active{path="/certs/self-signed.pem"}"#])
    }

    func testPushTotalsStartAtZeroForEveryResult() throws {
        let statistics = Statistics()
        statistics.record(push: .updated)
        statistics.record(push: .updated)
        statistics.record(push: .rejected(answer: "no"))
        let samples = try parse(render([], statistics: statistics))
        XCTAssertEqual(samples[#"stapler_haproxy_pushes_total{result="updated"}"#], 2)
        XCTAssertEqual(samples[#"stapler_haproxy_pushes_total{result="rejected"}"#], 1)
        for result in ["installed", "not_served", "too_large", "superseded", "queue_full", "cancelled"] {
            XCTAssertEqual(samples["stapler_haproxy_pushes_total{result=\"\(result)\"}"], 0, result)
        }
        // Nothing per certificate, but every family still announced.
        XCTAssertEqual(samples["stapler_certificates"], 0)
    }

    // MARK: Format

    func testLabelValuesEscapeBackslashQuoteLineFeedAndBytesThatAreNotUTF8() throws {
        // A name with a double quote, a backslash, a line feed, a byte that is not UTF-8
        // (shown as \xff, as in the logs) and a valid non-ASCII letter.
        var bytes = Array("/c/we\"ird\\na\nmé".utf8)
        bytes.append(0xff)
        bytes += Array(".pem".utf8)
        let path = FilePath(bytes: bytes)
        let text = render([.init(path: path, isActive: true, staple: staple())])

        let expected = #"{path="/c/we\"ird\\na\nmé\\xff.pem"}"#
        XCTAssertTrue(text.contains("stapler_staple_next_update_timestamp_seconds\(expected) 1764664800\n"), text)
        XCTAssertEqual(Metrics.escapeLabelValue("a\\b\"c\nd"), #"a\\b\"c\nd"#)
        // Every sample is still one line: the line feed in the name did not split it.
        let samples = try parse(text)
        XCTAssertEqual(samples["stapler_staple_next_update_timestamp_seconds\(expected)"], 1_764_664_800)
        XCTAssertNotNil(String(validating: Metrics.render(certificates: [.init(path: path, isActive: true)],
                                                          statistics: Statistics(), process: process, now: now), as: UTF8.self),
                        "the exposition is valid UTF-8")
    }

    func testEveryFamilyHasHelpAndTypeOnceBeforeItsSamplesWhichStayTogether() throws {
        let certificates = (0..<50).map { index in
            Metrics.Certificate(path: FilePath("/certs/\(index).pem"), isActive: index % 7 != 0, mustStaple: index % 3 == 0,
                                staple: index % 2 == 0 ? staple() : nil, nextRefresh: 1_764_000_000 + Int64(index),
                                failures: index % 4)
        }
        let text = render(certificates.shuffled())
        XCTAssertTrue(text.hasSuffix("\n"))
        var announced: [String: String] = [:]  // family -> type
        var finished = Set<String>()
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("# HELP ") {
                let name = String(line.dropFirst(7).prefix { $0 != " " })
                XCTAssertNil(announced[name], "\(name) announced twice")
                if let current { finished.insert(current) }
                current = name
                announced[name] = ""
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                XCTAssertEqual(parts.count, 4, String(line))
                XCTAssertEqual(String(parts[2]), current, "TYPE follows its HELP")
                XCTAssertTrue(["gauge", "counter"].contains(parts[3]))
                announced[String(parts[2])] = String(parts[3])
            } else {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                XCTAssertEqual(name, current, "sample \(line) outside its family")
                XCTAssertFalse(finished.contains(name))
            }
        }
        for (name, type) in announced where type == "counter" { XCTAssertTrue(name.hasSuffix("_total"), name) }
        // Certificates come out sorted by path, whatever order they were handed over in.
        let order = text.split(separator: "\n").filter { $0.hasPrefix("stapler_certificate_active{") }
        XCTAssertEqual(order, order.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        XCTAssertEqual(order.count, 50)
    }

    /// 10,000 certificates: the size an operator should expect per scrape, and the time the
    /// loop spends rendering it.
    func testTenThousandCertificatesRenderInBoundedSize() throws {
        let certificates = (0..<10_000).map { index in
            Metrics.Certificate(path: FilePath("/etc/haproxy/certs/customer-\(index).example.com.pem"), isActive: true,
                                staple: staple(), nextRefresh: 1_764_300_000, failures: 0)
        }
        let started = MonotonicInstant.now()
        let bytes = Metrics.render(certificates: certificates, statistics: Statistics(), process: process, now: now)
        let took = MonotonicInstant.now().duration(since: started)
        XCTAssertLessThan(bytes.count, 10_000 * 700, "at most ~700 bytes per certificate")
        XCTAssertEqual(try parse(String(decoding: bytes, as: UTF8.self))["stapler_certificates"], 10_000)
        print("rendered 10,000 certificates: \(bytes.count) bytes in \(took)")
    }

    /// The same 10,000 certificates with `--metrics-per-certificate=false`: only aggregates,
    /// whose size does not depend on the number of certificates.
    func testWithoutPerCertificateFamiliesTenThousandCertificatesMakeASmallScrape() throws {
        func certificates(_ count: Int) -> [Metrics.Certificate] {
            (0..<count).map { index in
                Metrics.Certificate(path: FilePath("/etc/haproxy/certs/customer-\(index).example.com.pem"), isActive: true,
                                    staple: staple(nextUpdate: 1_764_664_800 + Int64(index)), nextRefresh: 1_764_300_000)
            }
        }
        let small = render(certificates(10), perCertificate: false)
        let large = render(certificates(10_000), perCertificate: false)
        let full = render(certificates(10_000))
        print("10,000 certificates: \(large.utf8.count) bytes without, \(full.utf8.count) bytes with per-certificate families")
        XCTAssertLessThan(large.utf8.count, 4096)
        XCTAssertEqual(large.utf8.count, small.utf8.count + 6, "only two counts grow, by three digits each")
        XCTAssertFalse(large.contains("path="), "no per-certificate series")
        let samples = try parse(large)
        XCTAssertEqual(samples[#"stapler_certificates_by_state{state="good"}"#], 10_000)
        XCTAssertEqual(samples["stapler_staple_earliest_expiry_timestamp_seconds"], 1_764_664_800)
        // The full scrape has the 7 families of 10,000 series each that the switch removes.
        XCTAssertEqual(try parse(full).keys.filter { $0.contains("path=") }.count, 70_000)
    }

    // MARK: Aggregates

    func testCertificatesByStateCountEveryFileOnceAndMustStapleWithoutValidStaple() throws {
        let expiredStaple = staple(thisUpdate: 1_763_000_000, nextUpdate: now - 1)
        let certificates: [Metrics.Certificate] = [
            .init(path: "/c/good.pem", isActive: true, staple: staple()),
            .init(path: "/c/good-must.pem", isActive: true, mustStaple: true, staple: staple()),
            .init(path: "/c/revoked.pem", isActive: true, staple: staple(.revoked(time: 1_764_000_000, reason: 1)),
                  failures: 2),
            .init(path: "/c/revoked-must.pem", isActive: true, mustStaple: true,
                  staple: staple(.revoked(time: 1_764_000_000, reason: 1))),
            // The last attempt failed; an older staple is still served.
            .init(path: "/c/failing-served.pem", isActive: true, staple: staple(nextUpdate: 1_764_200_000), failures: 1),
            .init(path: "/c/failing-must.pem", isActive: true, mustStaple: true, failures: 4),
            // No attempt finished yet; and one whose staple ran out with no failure yet.
            .init(path: "/c/pending.pem", isActive: true),
            .init(path: "/c/pending-expired-must.pem", isActive: true, mustStaple: true, staple: expiredStaple),
            .init(path: "/c/no-ocsp.pem", isActive: false, inactiveKind: .noOCSPURL),
            .init(path: "/c/expired.pem", isActive: false, inactiveKind: .expired),
            .init(path: "/c/broken.pem", isActive: false, inactiveKind: .unusable),
            .init(path: "/c/key.pem", isActive: false, inactiveKind: .notALeaf),
        ]
        let samples = try parse(render(certificates.shuffled(), perCertificate: false))
        let expected: [String: Int64] = ["good": 2, "revoked": 2, "failing": 2, "pending": 2, "no_ocsp_url": 1,
                                         "expired": 1, "unusable": 1, "skipped": 1]
        for (state, count) in expected {
            XCTAssertEqual(samples["stapler_certificates_by_state{state=\"\(state)\"}"], count, state)
        }
        XCTAssertEqual(samples.keys.filter { $0.hasPrefix("stapler_certificates_by_state") }.count, expected.count)
        XCTAssertEqual(samples["stapler_certificates"], Int64(certificates.count))
        XCTAssertEqual(samples["stapler_certificates_inactive"], 4)
        // good-must is fine; revoked-must, failing-must (no staple) and pending-expired-must are not.
        XCTAssertEqual(samples["stapler_must_staple_without_valid_staple"], 3)
        XCTAssertEqual(samples["stapler_staple_earliest_expiry_timestamp_seconds"], now - 1)

        // Every state is announced with zeros, and no staple means no earliest expiry (not 1970).
        let empty = try parse(render([.init(path: "/c/pending.pem", isActive: true)], perCertificate: false))
        XCTAssertEqual(empty[#"stapler_certificates_by_state{state="good"}"#], 0)
        XCTAssertEqual(empty[#"stapler_certificates_by_state{state="pending"}"#], 1)
        XCTAssertNil(empty["stapler_staple_earliest_expiry_timestamp_seconds"])
    }

    /// The states come from the fields the status table reads, as the daemon sets them.
    func testStateOfATrackedCertificateFollowsItsInactiveKindAndRefreshState() throws {
        let tracked = TrackedCertificate(path: "/certs/site.pem", location: 0, fileStatus: FileStatus(stat()))
        XCTAssertEqual(Metrics.Certificate(tracked).state(now: now), .pending)
        tracked.refresh = RefreshState(staple: staple(), nextRefresh: 1_764_500_000)
        XCTAssertEqual(Metrics.Certificate(tracked).state(now: now), .good)
        tracked.refresh = RefreshState(staple: staple(), failures: 1, lastError: "responder down")
        XCTAssertEqual(Metrics.Certificate(tracked).state(now: now), .failing)
        XCTAssertTrue(Daemon.statusLine(tracked, now: now).contains("last error"), "the table shows the failure too")
        tracked.inactiveReason = "/certs/site.pem: has no OCSP responder URL, nothing to staple"
        tracked.inactiveKind = .noOCSPURL
        XCTAssertEqual(Metrics.Certificate(tracked).state(now: now), .noOCSPURL)
        XCTAssertTrue(Daemon.statusLine(tracked, now: now).contains("inactive"))
        tracked.inactiveKind = .unusable
        XCTAssertEqual(Metrics.Certificate(tracked).state(now: now), .unusable)
        XCTAssertTrue(tracked.isBroken, "what fails a --one-off pass is what the metrics call unusable")
    }

    // MARK: A real parser

    /// The exposition as Prometheus' own client library parses it: every family with the
    /// type and HELP text we mean, every sample inside its family.
    func testPrometheusClientParserReadsEveryFamilyWithItsTypeAndHelp() throws {
        let statistics = Statistics()
        statistics.fetchesSucceeded = 4
        let certificates: [Metrics.Certificate] = [
            .init(path: "/c/good.pem", isActive: true, mustStaple: true, staple: staple(), nextRefresh: 1_764_300_000),
            .init(path: "/c/we\"ird\\name\n.pem", isActive: true, staple: staple(.revoked(time: 1, reason: 1))),
            .init(path: "/c/no-ocsp.pem", isActive: false, inactiveKind: .noOCSPURL),
        ]
        let aggregates: [String: (type: String, help: String)] = [
            "stapler_certificates": ("gauge", "Certificate files found in the configured paths."),
            "stapler_certificates_inactive": ("gauge", "Certificate files that yield nothing to staple (no OCSP URL, expired, unreadable)."),
            "stapler_certificates_by_state": ("gauge", "Certificate files by state: good, revoked, failing, pending, no_ocsp_url, expired, unusable, skipped."),
            "stapler_staple_earliest_expiry_timestamp_seconds": ("gauge", "Earliest nextUpdate among the staples being served, Unix time."),
            "stapler_must_staple_without_valid_staple": ("gauge", "Must-Staple certificates without a good staple valid now (missing, expired or revoked)."),
            "stapler_fetches": ("counter", "OCSP fetches finished since start, by result."),
            "stapler_ocsp_requests": ("counter", "OCSP requests sent since start, through a proxy or straight to the responder."),
            "stapler_ocsp_proxy_failing": ("gauge", "1 while the last OCSP request through the proxy failed at the proxy (no answer, 502, 503, 504)."),
            "stapler_fetches_running": ("gauge", "OCSP fetches in progress."),
            "stapler_fetches_queued": ("gauge", "Certificates waiting for a fetch slot."),
            "stapler_haproxy_pushes": ("counter", "Staples sent to HAProxy stats sockets since start, by result."),
            "stapler_haproxy_pushes_pending": ("gauge", "Staples sent to HAProxy and not answered yet."),
            "stapler_responder_clock_lead_seconds": ("gauge", "The most a responder's thisUpdate was ahead of our clock since start; large means our clock is behind."),
            "stapler_build_info": ("gauge", "Always 1; the version is in the label."),
            "process_start_time_seconds": ("gauge", "Start time of the process since the Unix epoch in seconds."),
        ]
        let perCertificate: [String: (type: String, help: String)] = [
            "stapler_certificate_active": ("gauge", "1 when the file yields a certificate to staple, else 0."),
            "stapler_certificate_must_staple": ("gauge", "1 when the certificate has the TLS Feature status_request (Must-Staple)."),
            "stapler_consecutive_failures": ("gauge", "Failed OCSP fetches since the last success."),
            "stapler_next_refresh_timestamp_seconds": ("gauge", "Unix time of the next planned OCSP fetch."),
            "stapler_staple_this_update_timestamp_seconds": ("gauge", "thisUpdate of the staple being served, Unix time."),
            "stapler_staple_next_update_timestamp_seconds": ("gauge", "nextUpdate of the staple being served (it expires then), Unix time."),
            "stapler_staple_status": ("gauge", "OCSP status in the staple being served: 0 good, 1 revoked."),
        ]
        for (withPerCertificate, expected) in [(true, aggregates.merging(perCertificate) { $1 }), (false, aggregates)] {
            let families = try PrometheusTextParser.parse(render(certificates, statistics: statistics,
                                                                 perCertificate: withPerCertificate))
            XCTAssertEqual(Set(families.map(\.name)), Set(expected.keys), "per certificate: \(withPerCertificate)")
            XCTAssertEqual(families.count, expected.count, "each family once")
            for family in families {
                XCTAssertEqual(family.type, expected[family.name]?.type, family.name)
                XCTAssertEqual(family.help, expected[family.name]?.help, family.name)
                for sample in family.samples {
                    XCTAssertTrue(sample.name == family.name || sample.name == family.name + "_total", sample.name)
                }
            }
            let byName = Dictionary(families.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            XCTAssertEqual(byName["stapler_fetches"]?.samples.first { $0.labels["result"] == "success" }?.value, 4)
            XCTAssertEqual(byName["stapler_certificates_by_state"]?.samples.first { $0.labels["state"] == "revoked" }?.value, 1)
            if withPerCertificate {
                // The label value comes back exactly as the path was.
                let status = byName["stapler_staple_status"]?.samples.first { $0.labels["path"] == "/c/we\"ird\\name\n.pem" }
                XCTAssertEqual(status?.value, 1)
            }
        }
    }

    // MARK: Same state as the status table

    func testStatusTableAndMetricsShowTheSameNextUpdateFromTheSameCertificate() throws {
        let tracked = TrackedCertificate(path: "/certs/site.pem", location: 0, fileStatus: FileStatus(stat()))
        tracked.refresh = RefreshState(staple: staple(nextUpdate: 1_764_669_600), nextRefresh: 1_764_500_000)
        let line = Daemon.statusLine(tracked, now: 1_764_000_000)
        let samples = try parse(render([Metrics.Certificate(tracked)]))

        XCTAssertTrue(line.contains("valid until \(UTCTime.format(1_764_669_600))"), line)
        XCTAssertEqual(samples[#"stapler_staple_next_update_timestamp_seconds{path="/certs/site.pem"}"#], 1_764_669_600)
        XCTAssertTrue(line.contains("next refresh \(UTCTime.format(1_764_500_000))"), line)
        XCTAssertEqual(samples[#"stapler_next_refresh_timestamp_seconds{path="/certs/site.pem"}"#], 1_764_500_000)

        tracked.inactiveReason = "/certs/site.pem: no OCSP responder URL"
        tracked.inactiveKind = .noOCSPURL
        XCTAssertTrue(Daemon.statusLine(tracked, now: 1_764_000_000).contains("inactive"))
        let inactive = try parse(render([Metrics.Certificate(tracked)]))
        XCTAssertEqual(inactive[#"stapler_certificate_active{path="/certs/site.pem"}"#], 0)
        XCTAssertNil(inactive[#"stapler_staple_next_update_timestamp_seconds{path="/certs/site.pem"}"#])
    }

    // MARK: Parsing

    /// Samples by `name{labels}`, checking each line has the shape the text format allows.
    private func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Int64] {
        var samples: [String: Int64] = [:]
        for row in text.split(separator: "\n") where !row.hasPrefix("#") {
            guard let space = row.lastIndex(of: " "), let value = Int64(row[row.index(after: space)...]) else {
                XCTFail("not a sample: \(row)", file: file, line: line)
                continue
            }
            let series = String(row[..<space])
            let name = series.prefix { $0 != "{" }
            XCTAssertTrue(name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") },
                          "metric name \(name)", file: file, line: line)
            if name.count < series.count {
                XCTAssertTrue(series.hasSuffix("\"}"), "labels of \(row)", file: file, line: line)
            }
            XCTAssertNil(samples[series], "\(series) twice", file: file, line: line)
            samples[series] = value
        }
        return samples
    }
}
