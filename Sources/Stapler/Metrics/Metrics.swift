import Reactor

/// The daemon's state in the Prometheus text exposition format 0.0.4, for `--metrics`.
///
/// Pure: it renders values handed to it. Those are read from the same `TrackedCertificate`
/// fields and `Statistics` counters the SIGUSR1 status table shows, so the two always agree.
/// Unix times are named `*_timestamp_seconds`, as Prometheus naming asks.
///
/// Aggregates, whose number of series does not grow with the certificates:
/// - `stapler_certificates` files found; `stapler_certificates_inactive` those that yield
///   nothing to staple.
/// - `stapler_certificates_by_state{state}`: every file in exactly one state, every state
///   present (zeros included). From `record`/`inactiveKind` and `refresh` (staple, failures):
///   - `good`: a good staple valid now, and the last attempt (if any since) succeeded;
///   - `revoked`: the staple being served says revoked (whatever came after);
///   - `failing`: the last fetch failed (`consecutive_failures` > 0), with or without an
///     older staple still being served;
///   - `pending`: no staple valid now and no failure yet: the first fetch is queued or running;
///   - `no_ocsp_url`: the certificate names no responder (normal since 2025, never queried);
///   - `expired`: the certificate itself has expired (not queried, RFC 5019 §3.2);
///   - `unusable`: unreadable, malformed, or its issuer missing (fails `--one-off`);
///   - `skipped`: no end-entity certificate in the file (a key file, a CA certificate).
/// - `stapler_staple_earliest_expiry_timestamp_seconds`: the earliest nextUpdate among the
///   staples being served (absent while there is none); one alert on it covers every file.
/// - `stapler_must_staple_without_valid_staple`: Must-Staple certificates whose clients
///   would fail the handshake now: no staple, an expired one, or a revoked one.
/// - `stapler_fetches_total{result="success|failure"}`, `stapler_haproxy_pushes_total
///   {result=...}` (every known result, zeros included, so rates work from the first
///   scrape), the running, queued and pending work of the status table's first line,
///   `stapler_ocsp_requests_total{route="proxy|direct"}` (with a proxy set, direct requests
///   are fallbacks while it fails, or hosts `no_proxy` exempts) and
///   `stapler_ocsp_proxy_failing` (1 while the last request through the proxy failed there),
///   `stapler_build_info` and `process_start_time_seconds`.
///
/// Per certificate file (label `path`, as the logs show it: bytes that are not UTF-8 appear
/// as `\xNN`, then backslash, double quote and line feed are escaped as the format asks);
/// seven families, so 70,000 series at 10,000 certificates: `perCertificate: false`
/// (`--metrics-per-certificate=false`) leaves them out.
/// - `stapler_certificate_active` 1 when the file yields something to staple, 0 when it
///   does not (no OCSP URL, expired, unreadable); only this series exists for inactive files.
/// - `stapler_certificate_must_staple` 1 for a TLS Feature status_request certificate.
/// - `stapler_consecutive_failures` failed fetches since the last success.
/// - `stapler_next_refresh_timestamp_seconds` when the next fetch is planned.
/// - `stapler_staple_this_update_timestamp_seconds`, `stapler_staple_next_update_timestamp_seconds`:
///   the validity of the staple being served; absent while there is no staple.
/// - `stapler_staple_status` 0 good, 1 revoked; absent while there is no staple.
enum Metrics {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Values of `stapler_staple_status`.
    static let statusGood: Int64 = 0
    static let statusRevoked: Int64 = 1

    /// The `state` label of `stapler_certificates_by_state`, in the order it is rendered.
    enum State: String, CaseIterable {
        case good, revoked, failing, pending
        case noOCSPURL = "no_ocsp_url"
        case expired, unusable, skipped
    }

    /// One certificate file as the metrics show it.
    struct Certificate {
        var path: FilePath
        var isActive: Bool
        /// Why an inactive file is inactive (nil: not known, counted as `unusable`).
        var inactiveKind: InactiveKind?
        var mustStaple: Bool
        var staple: StapleSummary?
        var nextRefresh: Int64?
        var failures: Int

        init(path: FilePath, isActive: Bool, inactiveKind: InactiveKind? = nil, mustStaple: Bool = false,
             staple: StapleSummary? = nil, nextRefresh: Int64? = nil, failures: Int = 0) {
            self.path = path
            self.isActive = isActive
            self.inactiveKind = inactiveKind
            self.mustStaple = mustStaple
            self.staple = staple
            self.nextRefresh = nextRefresh
            self.failures = failures
        }

        /// Reads the fields `Daemon.statusLine` reads, and calls inactive what it calls inactive.
        init(_ tracked: TrackedCertificate) {
            let isActive = tracked.record != nil || tracked.inactiveReason == nil
            self.init(path: tracked.path, isActive: isActive, inactiveKind: tracked.inactiveKind,
                      mustStaple: tracked.record?.mustStaple ?? false, staple: tracked.refresh.staple,
                      nextRefresh: tracked.refresh.nextRefresh, failures: tracked.refresh.failures)
        }

        /// A good staple that clients accept at `now`.
        func hasValidGoodStaple(now: Int64) -> Bool {
            guard let staple else { return false }
            return !staple.isRevoked && staple.nextUpdate > now
        }

        func state(now: Int64) -> State {
            guard isActive else {
                switch inactiveKind {
                case .notALeaf: return .skipped
                case .noOCSPURL: return .noOCSPURL
                case .expired: return .expired
                case .unusable, nil: return .unusable
                }
            }
            if staple?.isRevoked == true { return .revoked }
            if failures > 0 { return .failing }
            return hasValidGoodStaple(now: now) ? .good : .pending
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

    /// - Parameters:
    ///   - perCertificate: include the seven per-certificate families.
    ///   - now: Unix time, for what "valid now" means in the aggregates.
    static func render(certificates: [Certificate], statistics: Statistics, process: Process,
                       perCertificate: Bool = true, now: Int64) -> [UInt8] {
        var out = Exposition()
        out.bytes.reserveCapacity(2048 + (perCertificate ? certificates.count * 640 : 0))

        out.family("stapler_certificates", .gauge, "Certificate files found in the configured paths.")
        out.sample("stapler_certificates", value: Int64(certificates.count))
        out.family("stapler_certificates_inactive", .gauge,
                   "Certificate files that yield nothing to staple (no OCSP URL, expired, unreadable).")
        out.sample("stapler_certificates_inactive", value: Int64(certificates.count(where: { !$0.isActive })))

        var byState: [State: Int64] = [:]
        var earliestExpiry: Int64?
        var mustStapleWithoutStaple: Int64 = 0
        for certificate in certificates {
            byState[certificate.state(now: now), default: 0] += 1
            guard certificate.isActive else { continue }
            if let nextUpdate = certificate.staple?.nextUpdate { earliestExpiry = min(earliestExpiry ?? nextUpdate, nextUpdate) }
            if certificate.mustStaple && !certificate.hasValidGoodStaple(now: now) { mustStapleWithoutStaple += 1 }
        }
        out.family("stapler_certificates_by_state", .gauge,
                   "Certificate files by state: good, revoked, failing, pending, no_ocsp_url, expired, unusable, skipped.")
        for state in State.allCases {
            out.sample("stapler_certificates_by_state", labels: labelSet("state", state.rawValue),
                       value: byState[state, default: 0])
        }
        out.family("stapler_staple_earliest_expiry_timestamp_seconds", .gauge,
                   "Earliest nextUpdate among the staples being served, Unix time.")
        if let earliestExpiry { out.sample("stapler_staple_earliest_expiry_timestamp_seconds", value: earliestExpiry) }
        out.family("stapler_must_staple_without_valid_staple", .gauge,
                   "Must-Staple certificates without a good staple valid now (missing, expired or revoked).")
        out.sample("stapler_must_staple_without_valid_staple", value: mustStapleWithoutStaple)

        if perCertificate { renderPerCertificate(certificates, into: &out) }

        out.family("stapler_fetches_total", .counter, "OCSP fetches finished since start, by result.")
        out.sample("stapler_fetches_total", labels: labelSet("result", "success"), value: Int64(statistics.fetchesSucceeded))
        out.sample("stapler_fetches_total", labels: labelSet("result", "failure"), value: Int64(statistics.fetchesFailed))
        out.family("stapler_ocsp_requests_total", .counter,
                   "OCSP requests sent since start, through a proxy or straight to the responder.")
        out.sample("stapler_ocsp_requests_total", labels: labelSet("route", "proxy"), value: Int64(statistics.requestsViaProxy))
        out.sample("stapler_ocsp_requests_total", labels: labelSet("route", "direct"), value: Int64(statistics.requestsDirect))
        out.family("stapler_ocsp_proxy_failing", .gauge,
                   "1 while the last OCSP request through the proxy failed at the proxy (no answer, 502, 503, 504).")
        out.sample("stapler_ocsp_proxy_failing", value: statistics.proxyFailing ? 1 : 0)
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

    /// The seven families with one series per certificate (inactive files: `active` only).
    private static func renderPerCertificate(_ certificates: [Certificate], into out: inout Exposition) {
        let sorted = certificates.sorted { $0.path < $1.path }
        // Escaped once, used by every family.
        let labels = sorted.map { labelSet(path: $0.path) }

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
        perCertificate("stapler_next_refresh_timestamp_seconds", "Unix time of the next planned OCSP fetch.") {
            $0.isActive ? $0.nextRefresh : nil
        }
        perCertificate("stapler_staple_this_update_timestamp_seconds", "thisUpdate of the staple being served, Unix time.") {
            $0.isActive ? $0.staple?.thisUpdate : nil
        }
        perCertificate("stapler_staple_next_update_timestamp_seconds", "nextUpdate of the staple being served (it expires then), Unix time.") {
            $0.isActive ? $0.staple?.nextUpdate : nil
        }
        perCertificate("stapler_staple_status", "OCSP status in the staple being served: 0 good, 1 revoked.") {
            guard $0.isActive, let staple = $0.staple else { return nil }
            return staple.isRevoked ? statusRevoked : statusGood
        }
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
