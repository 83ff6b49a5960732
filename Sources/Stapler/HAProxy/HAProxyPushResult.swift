import Reactor

/// How a staple pushed to one HAProxy ended. Connection trouble is not an ending: the push
/// waits and is retried until one of these happens.
enum HAProxyPushResult: Equatable {
    /// `set ssl ocsp-response` replaced the staple HAProxy serves.
    case updated
    /// The certificate had no staple slot (no `.ocsp` file when HAProxy started); a
    /// `set ssl cert <name>.ocsp` transaction and its commit installed the staple.
    case installed
    /// HAProxy refused these bytes (its answer, e.g. `OCSP single response: no longer
    /// valid.`), or refused the `set ssl cert` transaction a certificate without a staple
    /// slot needs (socket below `level admin`, HAProxy too old). Pushing again cannot help.
    case rejected(answer: String)
    /// This HAProxy serves no certificate by that path, nor any the staple's CertID names.
    case certificateNotServed
    /// The command would exceed what HAProxy reads on one line.
    case stapleTooLarge(limit: Int)
    /// A newer staple for the same certificate took this one's place in the queue.
    case superseded
    /// Too many certificates are already waiting for this socket.
    case queueFull(limit: Int)
    /// The client was shut down first.
    case cancelled

    var outcome: HAProxyPushOutcome {
        switch self {
        case .updated: .updated
        case .installed: .installed
        case .rejected: .rejected
        case .certificateNotServed: .notServed
        case .stapleTooLarge: .tooLarge
        case .superseded: .superseded
        case .queueFull: .queueFull
        case .cancelled: .cancelled
        }
    }
}

/// A push result without its details, for counting: the metric label of each, every one
/// listed so each series exists, at zero, before the first push.
enum HAProxyPushOutcome: String, CaseIterable {
    case updated, installed, rejected
    case notServed = "not_served"
    case tooLarge = "too_large"
    case superseded
    case queueFull = "queue_full"
    case cancelled

    var metricLabel: String { rawValue }

    /// HAProxy did not take a staple meant for it: a `--one-off` pass fails on these. Not
    /// served is no failure (one socket given for several paths need not serve all), and a
    /// superseded staple had a newer one take its place.
    var isUndelivered: Bool {
        switch self {
        case .rejected, .tooLarge, .queueFull, .cancelled: true
        case .updated, .installed, .notServed, .superseded: false
        }
    }
}

/// A change in a socket's state, for one log line each.
enum HAProxyClientEvent: Equatable {
    /// HAProxy answers commands: the first contact, or again after a failure.
    case connected(socket: FilePath)
    /// A new failure (a repeat of the same one is not reported again); queued staples are
    /// retried after `retryIn`.
    case failed(HAProxyClientError, retryIn: Duration)
    /// Another HAProxy process answers than the one last seen (the first one, or a new one
    /// after a restart or reload): it holds only the staples it loaded from files. Only with
    /// `Configuration.watchesProcess`.
    case newProcess(socket: FilePath, HAProxyProcessIdentity)
}
