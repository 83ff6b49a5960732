import Reactor

/// The daemon's state in the Prometheus text exposition format 0.0.4, for `--metrics`.
///
/// Pure: it renders values handed to it. Those are read from the same `TrackedCertificate`
/// fields and `Statistics` counters the SIGUSR1 status table shows, so the two always agree.
///
/// Per certificate file (label `path`, as the logs show it: bytes that are not UTF-8 appear
/// as `\xNN`, then backslash, double quote and line feed are escaped as the format asks):
/// - `stapler_certificate_active` 1 when the file yields something to staple, 0 when it
///   does not (no OCSP URL, expired, unreadable); only this series exists for inactive files.
/// - `stapler_certificate_must_staple` 1 for a TLS Feature status_request certificate.
/// - `stapler_consecutive_failures` failed fetches since the last success.
/// - `stapler_next_refresh_seconds` when the next fetch is planned (Unix time).
/// - `stapler_staple_this_update_seconds`, `stapler_staple_next_update_seconds`: the
///   validity of the staple being served (Unix times); absent while there is no staple.
/// - `stapler_staple_status` 0 good, 1 revoked; absent while there is no staple.
/// Totals: `stapler_certificates`, `stapler_certificates_inactive`, `stapler_fetches_total
/// {result="success|failure"}`, `stapler_haproxy_pushes_total{result=...}` (every known
/// result, zeros included, so rates work from the first scrape), the running, queued and
/// pending work of the status table's first line, `stapler_build_info` and
/// `process_start_time_seconds`.
enum Metrics {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Values of `stapler_staple_status`.
    static let statusGood: Int64 = 0
    static let statusRevoked: Int64 = 1

    /// One certificate file as the metrics show it.
    struct Certificate {
        var path: FilePath
        var isActive: Bool
        var mustStaple: Bool
        var staple: StapleSummary?
        var nextRefresh: Int64?
        var failures: Int

        init(path: FilePath, isActive: Bool, mustStaple: Bool = false, staple: StapleSummary? = nil,
             nextRefresh: Int64? = nil, failures: Int = 0) {
            self.path = path
            self.isActive = isActive
            self.mustStaple = mustStaple
            self.staple = staple
            self.nextRefresh = nextRefresh
            self.failures = failures
        }

        /// Reads the fields `Daemon.statusLine` reads, and calls inactive what it calls inactive.
        init(_ tracked: TrackedCertificate) {
            let isActive = tracked.record != nil || tracked.inactiveReason == nil
            self.init(path: tracked.path, isActive: isActive, mustStaple: tracked.record?.mustStaple ?? false,
                      staple: tracked.refresh.staple, nextRefresh: tracked.refresh.nextRefresh,
                      failures: tracked.refresh.failures)
        }
    }

    /// Daemon-wide values besides the counters.
    struct Process {
        var fetchesRunning: Int
        var fetchesQueued: Int
        var pushesPending: Int
        /// Unix time.
        var startTime: Int64
        var version: String
    }

    static func render(certificates: [Certificate], statistics: Statistics, process: Process) -> [UInt8] {
        var out = Exposition()
        out.bytes.reserveCapacity(1024 + certificates.count * 640)
        let sorted = certificates.sorted { $0.path < $1.path }
        // Escaped once, used by every family.
        let labels = sorted.map { labelSet(path: $0.path) }

        out.family("stapler_certificates", .gauge, "Certificate files found in the configured paths.")
        out.sample("stapler_certificates", value: Int64(certificates.count))
        out.family("stapler_certificates_inactive", .gauge,
                   "Certificate files that yield nothing to staple (no OCSP URL, expired, unreadable).")
        out.sample("stapler_certificates_inactive", value: Int64(certificates.count(where: { !$0.isActive })))

        func perCertificate(_ name: String, _ help: String, _ value: (Certificate) -> Int64?) {
            out.family(name, .gauge, help)
            for (index, certificate) in sorted.enumerated() {
                if let value = value(certificate) { out.sample(name, labels: labels[index], value: value) }
            }
        }
        perCertificate("stapler_certificate_active", "1 when the file yields a certificate to staple, else 0.") {
            $0.isActive ? 1 : 0
        }
        perCertificate("stapler_certificate_must_staple", "1 when the certificate has the TLS Feature status_request (Must-Staple).") {
            $0.isActive ? ($0.mustStaple ? 1 : 0) : nil
        }
        perCertificate("stapler_consecutive_failures", "Failed OCSP fetches since the last success.") {
            $0.isActive ? Int64($0.failures) : nil
        }
        perCertificate("stapler_next_refresh_seconds", "Unix time of the next planned OCSP fetch.") {
            $0.isActive ? $0.nextRefresh : nil
        }
        perCertificate("stapler_staple_this_update_seconds", "thisUpdate of the staple being served, Unix time.") {
            $0.isActive ? $0.staple?.thisUpdate : nil
        }
        perCertificate("stapler_staple_next_update_seconds", "nextUpdate of the staple being served (it expires then), Unix time.") {
            $0.isActive ? $0.staple?.nextUpdate : nil
        }
        perCertificate("stapler_staple_status", "OCSP status in the staple being served: 0 good, 1 revoked.") {
            guard $0.isActive, let staple = $0.staple else { return nil }
            return staple.isRevoked ? statusRevoked : statusGood
        }

        out.family("stapler_fetches_total", .counter, "OCSP fetches finished since start, by result.")
        out.sample("stapler_fetches_total", labels: labelSet("result", "success"), value: Int64(statistics.fetchesSucceeded))
        out.sample("stapler_fetches_total", labels: labelSet("result", "failure"), value: Int64(statistics.fetchesFailed))
        out.family("stapler_fetches_running", .gauge, "OCSP fetches in progress.")
        out.sample("stapler_fetches_running", value: Int64(process.fetchesRunning))
        out.family("stapler_fetches_queued", .gauge, "Certificates waiting for a fetch slot.")
        out.sample("stapler_fetches_queued", value: Int64(process.fetchesQueued))

        out.family("stapler_haproxy_pushes_total", .counter, "Staples sent to HAProxy stats sockets since start, by result.")
        for outcome in HAProxyPushOutcome.allCases {
            out.sample("stapler_haproxy_pushes_total", labels: labelSet("result", outcome.metricLabel),
                       value: Int64(statistics.pushes[outcome, default: 0]))
        }
        out.family("stapler_haproxy_pushes_pending", .gauge, "Staples sent to HAProxy and not answered yet.")
        out.sample("stapler_haproxy_pushes_pending", value: Int64(process.pushesPending))

        out.family("stapler_responder_clock_lead_seconds", .gauge,
                   "The most a responder's thisUpdate was ahead of our clock since start; large means our clock is behind.")
        out.sample("stapler_responder_clock_lead_seconds", value: statistics.largestResponderClockLead)

        out.family("stapler_build_info", .gauge, "Always 1; the version is in the label.")
        out.sample("stapler_build_info", labels: labelSet("version", process.version), value: 1)
        out.family("process_start_time_seconds", .gauge, "Start time of the process since the Unix epoch in seconds.")
        out.sample("process_start_time_seconds", value: process.startTime)
        return out.bytes
    }

    // MARK: Labels

    /// `{path="..."}` for a certificate file.
    static func labelSet(path: FilePath) -> [UInt8] {
        labelSet("path", path.description)
    }

    static func labelSet(_ name: String, _ value: String) -> [UInt8] {
        var bytes = Array("{\(name)=\"".utf8)
        appendEscaped(value, to: &bytes)
        bytes.append(contentsOf: "\"}".utf8)
        return bytes
    }

    /// A label value as the text format wants it: any UTF-8, with backslash, double quote
    /// and line feed escaped.
    static func escapeLabelValue(_ value: String) -> String {
        var bytes: [UInt8] = []
        appendEscaped(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func appendEscaped(_ value: String, to bytes: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            default: bytes.append(byte)
            }
        }
    }
}

/// The text being built: families (HELP and TYPE lines) and their samples.
private struct Exposition {
    enum Kind: String { case gauge, counter }

    var bytes: [UInt8] = []

    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        // HELP text is ours and has neither backslashes nor line feeds to escape.
        bytes.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n".utf8)
    }

    mutating func sample(_ name: String, labels: [UInt8] = [], value: Int64) {
        bytes.append(contentsOf: name.utf8)
        bytes.append(contentsOf: labels)
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: String(value).utf8)
        bytes.append(UInt8(ascii: "\n"))
    }
}
