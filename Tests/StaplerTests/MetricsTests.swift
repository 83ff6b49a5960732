@testable import Reactor
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

    private func render(_ certificates: [Metrics.Certificate], statistics: Statistics = Statistics()) -> String {
        let bytes = Metrics.render(certificates: certificates, statistics: statistics, process: process)
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
        XCTAssertEqual(samples[#"stapler_staple_next_update_seconds{path="/certs/good.pem"}"#], 1_764_664_800)
        XCTAssertEqual(samples[#"stapler_staple_this_update_seconds{path="/certs/good.pem"}"#], 1_764_060_000)
        XCTAssertEqual(samples[#"stapler_staple_status{path="/certs/good.pem"}"#], 0)
        XCTAssertEqual(samples[#"stapler_staple_status{path="/certs/revoked.pem"}"#], 1)
        XCTAssertEqual(samples[#"stapler_certificate_must_staple{path="/certs/good.pem"}"#], 1)
        XCTAssertEqual(samples[#"stapler_certificate_must_staple{path="/certs/revoked.pem"}"#], 0)
        XCTAssertEqual(samples[#"stapler_next_refresh_seconds{path="/certs/failing.pem"}"#], 1_764_000_600)
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
        XCTAssertNil(samples[#"stapler_staple_next_update_seconds{path="/certs/failing.pem"}"#])
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
        XCTAssertTrue(text.contains("stapler_staple_next_update_seconds\(expected) 1764664800\n"), text)
        XCTAssertEqual(Metrics.escapeLabelValue("a\\b\"c\nd"), #"a\\b\"c\nd"#)
        // Every sample is still one line: the line feed in the name did not split it.
        let samples = try parse(text)
        XCTAssertEqual(samples["stapler_staple_next_update_seconds\(expected)"], 1_764_664_800)
        XCTAssertNotNil(String(validating: Metrics.render(certificates: [.init(path: path, isActive: true)],
                                                          statistics: Statistics(), process: process), as: UTF8.self),
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
        let bytes = Metrics.render(certificates: certificates, statistics: Statistics(), process: process)
        let took = MonotonicInstant.now().duration(since: started)
        XCTAssertLessThan(bytes.count, 10_000 * 700, "at most ~700 bytes per certificate")
        XCTAssertEqual(try parse(String(decoding: bytes, as: UTF8.self))["stapler_certificates"], 10_000)
        print("rendered 10,000 certificates: \(bytes.count) bytes in \(took)")
    }

    // MARK: Same state as the status table

    func testStatusTableAndMetricsShowTheSameNextUpdateFromTheSameCertificate() throws {
        let tracked = TrackedCertificate(path: "/certs/site.pem", location: 0, fileStatus: FileStatus(stat()))
        tracked.refresh = RefreshState(staple: staple(nextUpdate: 1_764_669_600), nextRefresh: 1_764_500_000)
        let line = Daemon.statusLine(tracked, now: 1_764_000_000)
        let samples = try parse(render([Metrics.Certificate(tracked)]))

        XCTAssertTrue(line.contains("valid until \(UTCTime.format(1_764_669_600))"), line)
        XCTAssertEqual(samples[#"stapler_staple_next_update_seconds{path="/certs/site.pem"}"#], 1_764_669_600)
        XCTAssertTrue(line.contains("next refresh \(UTCTime.format(1_764_500_000))"), line)
        XCTAssertEqual(samples[#"stapler_next_refresh_seconds{path="/certs/site.pem"}"#], 1_764_500_000)

        tracked.inactiveReason = "/certs/site.pem: no OCSP responder URL"
        XCTAssertTrue(Daemon.statusLine(tracked, now: 1_764_000_000).contains("inactive"))
        let inactive = try parse(render([Metrics.Certificate(tracked)]))
        XCTAssertEqual(inactive[#"stapler_certificate_active{path="/certs/site.pem"}"#], 0)
        XCTAssertNil(inactive[#"stapler_staple_next_update_seconds{path="/certs/site.pem"}"#])
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
