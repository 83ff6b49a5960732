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
}

/// A change in a socket's state, for one log line each.
enum HAProxyClientEvent: Equatable {
    /// HAProxy answers commands: the first contact, or again after a failure.
    case connected(socket: FilePath)
    /// A new failure (a repeat of the same one is not reported again); queued staples are
    /// retried after `retryIn`.
    case failed(HAProxyClientError, retryIn: Duration)
}
