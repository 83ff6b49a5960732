import Reactor

/// One refresh of one certificate, from taking a fetch slot until the staple is on disk or
/// the attempt failed: the responder URLs tried, the proxy, the transfer and the write.
/// Its own object, made when the attempt starts and dropped when it ends, so that the
/// tens of thousands of certificates waiting for their next refresh do not carry it.
final class FetchAttempt {
    var transfer: HTTPTransferHandle?
    /// A verified staple waiting for its batch to reach the disk.
    var pendingWrite: BatchedFileWriter.Ticket?
    /// The responder URL being tried (an index into `record.ocspURLs`) and what the ones
    /// before it answered during this attempt.
    var urlIndex = 0
    var errors: [String] = []
    /// This try of the current URL goes straight to the responder (the proxy failed).
    var bypassesProxy = false
    /// The proxy the current request went through, nil when direct.
    var proxy: ProxyURL?

    /// Waiting for the responder or for the disk (between two URLs it is neither).
    var isBusy: Bool { transfer != nil || pendingWrite != nil }
}
