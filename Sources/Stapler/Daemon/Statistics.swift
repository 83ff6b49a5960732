/// Counters since start, for the status report and metrics.
final class Statistics {
    var fetchesStarted = 0
    var fetchesSucceeded = 0
    var fetchesFailed = 0
    var pushes: [String: Int] = [:]

    func record(push result: HAProxyPushResult) {
        let key: String
        switch result {
        case .updated: key = "updated"
        case .installed: key = "installed"
        case .rejected: key = "rejected"
        case .certificateNotServed: key = "not_served"
        case .stapleTooLarge: key = "too_large"
        case .superseded: key = "superseded"
        case .queueFull: key = "queue_full"
        case .cancelled: key = "cancelled"
        }
        pushes[key, default: 0] += 1
    }
}
