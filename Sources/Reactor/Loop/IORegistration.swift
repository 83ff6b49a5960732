/// A file descriptor watched by an `EventLoop`, with the handler its readiness goes to.
///
/// The registration never owns the descriptor: whoever opened it cancels the registration
/// and then closes it. After `cancel()` the handler is never called again, even for events
/// already collected in the current `epoll_wait` batch.
public final class IORegistration {
    public let fd: Int32
    public private(set) var interest: IOEvents
    public var isActive: Bool { loop != nil }

    let token: UInt32
    var handler: (IOEvents) -> Void
    private(set) weak var loop: EventLoop?

    init(fd: Int32, token: UInt32, interest: IOEvents, loop: EventLoop, handler: @escaping (IOEvents) -> Void) {
        self.fd = fd
        self.token = token
        self.interest = interest
        self.loop = loop
        self.handler = handler
    }

    /// Changes what the handler hears about; a no-op when nothing changes.
    public func setInterest(_ newInterest: IOEvents) throws(SystemError) {
        guard let loop, newInterest != interest else { return }
        try loop.modify(self, interest: newInterest)
        interest = newInterest
    }

    /// Stops delivery and removes the descriptor from epoll. Safe to call more than once,
    /// and from inside any handler.
    public func cancel() {
        guard let loop else { return }
        loop.deregister(self)
        self.loop = nil
        handler = { _ in }
    }

    func detach() {
        loop = nil
        handler = { _ in }
    }
}
