/// Counters since start, for the status report and metrics. The refresher counts fetches,
/// the HAProxy fan-out counts pushes; nothing else writes here.
final class Statistics {
    var fetchesStarted = 0
    var fetchesSucceeded = 0
    var fetchesFailed = 0
    /// OCSP requests sent through a proxy (`--ocsp-proxy` or the environment's) and straight
    /// to a responder: with a proxy set, direct ones are fallbacks while it fails.
    var requestsViaProxy = 0
    var requestsDirect = 0
    /// The last OCSP request through a proxy failed at the proxy (no answer, or 502-504).
    var proxyFailing = false
    private(set) var pushes: [HAProxyPushOutcome: Int] = [:]
    /// The most a responder's thisUpdate was ahead of our clock, in seconds, since start
    /// (0 when never): a large value says our clock is behind, not the responders'.
    private(set) var largestResponderClockLead: Int64 = 0

    func noteResponder(thisUpdate: Int64, now: Int64) {
        largestResponderClockLead = max(largestResponderClockLead, thisUpdate.saturatingSubtract(now))
    }

    func record(push result: HAProxyPushResult) {
        pushes[result.outcome, default: 0] += 1
    }

    /// Staples HAProxy did not take (see `HAProxyPushOutcome.isUndelivered`).
    var undeliveredPushes: Int {
        pushes.reduce(0) { $0 + ($1.key.isUndelivered ? $1.value : 0) }
    }
}
