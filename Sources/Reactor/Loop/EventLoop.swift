import CEpoll
import Glibc

/// A single-threaded event loop on epoll, with one timerfd for every deadline.
///
/// Everything runs on the thread that calls `run()`: handlers, timers and deferred tasks.
/// Between events the process sleeps in `epoll_wait` with no timeout; timers wake it through
/// the timerfd, armed only when the earliest deadline changes.
public final class EventLoop {
    private let epollFD: Int32
    private let timerFD: Int32
    private var registrations: [Int32: IORegistration] = [:]
    private var nextToken: UInt32 = 1
    private var timers = TimerQueue()
    private var armedDeadline: MonotonicInstant?
    private var timersChanged = false
    private var deferred: [() -> Void] = []
    private var running = false
    private let eventBuffer: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int32 = 128

    /// Counts `epoll_wait` returns; lets tests and benchmarks see that an idle loop sleeps.
    public private(set) var wakeups: UInt64 = 0

    public init() throws(SystemError) {
        epollFD = try retryingOnInterrupt("epoll_create1") { epoll_create1(CEPOLL_CLOEXEC) }
        do {
            timerFD = try retryingOnInterrupt("timerfd_create") {
                timerfd_create(MonotonicInstant.clock, CEPOLL_TFD_NONBLOCK | CEPOLL_TFD_CLOEXEC)
            }
        } catch {
            close(epollFD)
            throw error
        }
        eventBuffer = .allocate(capacity: Int(eventCapacity))
        // The timerfd is watched like any other descriptor; token 0 marks it.
        var event = cepoll_event_make(CEPOLL_IN, UInt64(UInt32(bitPattern: timerFD)))
        if epoll_ctl(epollFD, CEPOLL_CTL_ADD, timerFD, &event) != 0 {
            let error = SystemError("epoll_ctl", subject: "timerfd")
            close(timerFD)
            close(epollFD)
            eventBuffer.deallocate()
            throw error
        }
    }

    deinit {
        for registration in registrations.values { registration.detach() }
        close(timerFD)
        close(epollFD)
        eventBuffer.deallocate()
    }

    // MARK: Descriptors

    /// Watches `fd` for `interest`. A registration still held for the same number (its
    /// descriptor closed without cancelling) is retired first, so its handler never sees
    /// the new descriptor's events.
    public func register(fd: Int32, interest: IOEvents,
                         handler: @escaping (IOEvents) -> Void) throws(SystemError) -> IORegistration {
        if let stale = registrations.removeValue(forKey: fd) {
            stale.detach()
            // Linux ignores the event argument of EPOLL_CTL_DEL (since 2.6.9): nil will do.
            _ = epoll_ctl(epollFD, CEPOLL_CTL_DEL, fd, nil)
        }
        let token = nextToken
        nextToken = nextToken == UInt32.max ? 1 : nextToken + 1
        var event = cepoll_event_make(interest.epollMask, Self.pack(fd: fd, token: token))
        if epoll_ctl(epollFD, CEPOLL_CTL_ADD, fd, &event) != 0 {
            throw SystemError("epoll_ctl(ADD)", subject: "fd \(fd)")
        }
        let registration = IORegistration(fd: fd, token: token, interest: interest, loop: self, handler: handler)
        registrations[fd] = registration
        return registration
    }

    func modify(_ registration: IORegistration, interest: IOEvents) throws(SystemError) {
        var event = cepoll_event_make(interest.epollMask, Self.pack(fd: registration.fd, token: registration.token))
        if epoll_ctl(epollFD, CEPOLL_CTL_MOD, registration.fd, &event) != 0 {
            throw SystemError("epoll_ctl(MOD)", subject: "fd \(registration.fd)")
        }
    }

    func deregister(_ registration: IORegistration) {
        guard registrations[registration.fd] === registration else { return }
        registrations.removeValue(forKey: registration.fd)
        // ENOENT/EBADF mean the descriptor is already gone from the set: nothing to undo.
        _ = epoll_ctl(epollFD, CEPOLL_CTL_DEL, registration.fd, nil)
    }

    private static func pack(fd: Int32, token: UInt32) -> UInt64 {
        UInt64(token) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    // MARK: Timers

    /// Runs `handler` once at `deadline` (at once, on the next pass, if it is past).
    @discardableResult
    public func schedule(at deadline: MonotonicInstant, _ handler: @escaping () -> Void) -> TimerHandle {
        timersChanged = true
        return timers.schedule(at: deadline, handler)
    }

    @discardableResult
    public func schedule(after delay: Duration, _ handler: @escaping () -> Void) -> TimerHandle {
        schedule(at: .now() + delay, handler)
    }

    /// Forgets a timer; returns whether it was still pending.
    @discardableResult
    public func cancel(_ timer: TimerHandle) -> Bool {
        let wasPending = timers.cancel(timer)
        if wasPending { timersChanged = true }
        return wasPending
    }


    public var pendingTimerCount: Int { timers.count }

    // MARK: Deferred work

    /// Runs `task` after the handlers of the current pass, before sleeping again. For work
    /// that must not happen inside a callback (curl forbids re-entrant calls).
    public func executeSoon(_ task: @escaping () -> Void) {
        deferred.append(task)
    }

    // MARK: Running

    /// Dispatches events until `stop()` is called from a handler.
    public func run() throws(SystemError) {
        running = true
        defer { running = false }
        while running {
            try armTimerIfNeeded()
            let timeout: Int32 = deferred.isEmpty ? -1 : 0
            let count = epoll_wait(epollFD, eventBuffer, eventCapacity, timeout)
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("epoll_wait")
            }
            wakeups &+= 1
            for index in 0..<Int(count) {
                dispatch(eventBuffer + index)
            }
            runDeferred()
        }
    }

    /// Makes `run()` return once the current pass is over.
    public func stop() { running = false }

    public var isRunning: Bool { running }

    private func dispatch(_ event: UnsafePointer<epoll_event>) {
        let data = cepoll_event_data(event)
        let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
        let token = UInt32(truncatingIfNeeded: data >> 32)
        if token == 0 && fd == timerFD {
            fireTimers()
            return
        }
        // A registration cancelled earlier in this pass, or replaced by a new one on a reused
        // descriptor number, no longer matches: its stale event is dropped.
        guard let registration = registrations[fd], registration.token == token else { return }
        registration.handler(IOEvents(epollMask: cepoll_event_events(event)))
    }

    private func fireTimers() {
        var expirations: UInt64 = 0
        _ = read(timerFD, &expirations, MemoryLayout<UInt64>.size)
        armedDeadline = nil
        timersChanged = true
        for (_, handler) in timers.takeDue(now: .now()) {
            handler()
        }
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let tasks = deferred
            deferred.removeAll(keepingCapacity: true)
            for task in tasks { task() }
        }
    }

    private func armTimerIfNeeded() throws(SystemError) {
        guard timersChanged else { return }
        timersChanged = false
        let next = timers.earliest()
        guard next != armedDeadline else { return }
        var spec = itimerspec()
        if let next {
            // A zero it_value disarms a timerfd; a due-now deadline must still fire.
            let ns = max(next.nanoseconds, 1)
            spec.it_value.tv_sec = Int(ns / 1_000_000_000)
            spec.it_value.tv_nsec = Int(ns % 1_000_000_000)
        }
        if timerfd_settime(timerFD, CEPOLL_TFD_TIMER_ABSTIME, &spec, nil) != 0 {
            throw SystemError("timerfd_settime")
        }
        armedDeadline = next
    }
}
