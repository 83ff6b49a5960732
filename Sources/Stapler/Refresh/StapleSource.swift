import Reactor

/// Where the staples the daemon serves come from: fetched from each certificate's responder
/// (`StapleRefresher`), or read from the files another Stapler writes (`StapleReader`,
/// `--push-only`). The daemon's table drives either the same way and handles the same
/// outcomes (`StapleRefresher.Outcome`).
protocol StapleSource: AnyObject {
    /// A certificate seen for the first time (or usable again): serve what is on disk, or
    /// get a staple.
    func adopt(_ certificate: TrackedCertificate)
    /// The certificate file changed on disk (replaced, or `touch`ed).
    func refreshNow(_ certificate: TrackedCertificate)
    /// A periodic scan found the certificate file unchanged.
    func catchUpIfLate(_ certificate: TrackedCertificate, now: Int64)
    /// The wall clock was set: judge every staple again by the new clock.
    func clockStepped(_ certificates: some Sequence<TrackedCertificate>, now: Int64) -> (fetched: Int, rescheduled: Int)
    /// Stops whatever is planned or running for a certificate; what it knows stays.
    func cancel(_ certificate: TrackedCertificate)
    /// Cancels, and forgets the staple and failures.
    func forget(_ certificate: TrackedCertificate)
    /// Stops a certificate's timer (the daemon is stopping).
    func cancelTimer(_ certificate: TrackedCertificate)
    /// The daemon is stopping: put what is verified in place, abandon the rest.
    func stop()
    /// Settings re-read on SIGHUP.
    func update(_ settings: StapleRefresher.Settings)
    /// The bytes of the staple being served, for a HAProxy process that has none (a
    /// restart with `--staple-dir`); nil when there is none worth pushing.
    func stapleToPush(for certificate: TrackedCertificate) -> [UInt8]?

    /// Nothing queued, fetching or waiting for the disk (`--one-off` waits for it).
    var isIdle: Bool { get }
    /// Called when the last queued, running or unwritten refresh ends.
    var onIdle: (() -> Void)? { get set }
    var activeFetches: Int { get }
    var queuedCount: Int { get }
}
