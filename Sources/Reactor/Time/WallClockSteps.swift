import CEpoll
import Glibc

/// Tells the loop when the wall clock is set: NTP stepping a clock that booted hours or years
/// off, an operator's `date -s`, a VM restored from a snapshot. Timers count on
/// CLOCK_BOOTTIME and never notice; whatever compares wall-clock dates must look again.
///
/// A CLOCK_REALTIME timerfd armed far ahead with TFD_TIMER_CANCEL_ON_SET: the kernel cancels
/// it whenever the clock is set, and its read fails with ECANCELED. The step is the change
/// of the offset between the wall clock and CLOCK_BOOTTIME since the last arming.
public final class WallClockSteps {
    private var descriptor: ReadableDescriptor?
    private var offset: Int64
    private let handler: (_ stepNanoseconds: Int64) -> Void

    /// How far ahead the cancel-only timer is armed: it is never meant to expire.
    static let armingHorizonSeconds = 10 * 365 * 86_400

    public init(loop: EventLoop, handler: @escaping (_ stepNanoseconds: Int64) -> Void) throws(SystemError) {
        self.handler = handler
        offset = Self.wallMinusBoot()
        let fd = try retryingOnInterrupt("timerfd_create") {
            timerfd_create(CLOCK_REALTIME, CEPOLL_TFD_NONBLOCK | CEPOLL_TFD_CLOEXEC)
        }
        descriptor = try ReadableDescriptor(fd: fd, loop: loop) { [unowned self] in self.readable() }
        do {
            try arm()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    public func close() {
        descriptor?.close()
        descriptor = nil
    }

    private func arm() throws(SystemError) {
        guard let fd = descriptor?.fd else { return }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var spec = itimerspec()
        spec.it_value.tv_sec = now.tv_sec + Self.armingHorizonSeconds
        offset = Self.wallMinusBoot()
        if timerfd_settime(fd, CEPOLL_TFD_TIMER_ABSTIME | CEPOLL_TFD_TIMER_CANCEL_ON_SET, &spec, nil) != 0 {
            throw SystemError("timerfd_settime", subject: "CLOCK_REALTIME (cancel on set)")
        }
    }

    private func readable() {
        guard let fd = descriptor?.fd else { return }
        var expirations: UInt64 = 0
        let got = read(fd, &expirations, MemoryLayout<UInt64>.size)
        let cancelled = got < 0 && errno == ECANCELED
        guard cancelled || got == MemoryLayout<UInt64>.size else { return } // EAGAIN: nothing
        let previous = offset
        // Re-arm first: a second step during the handler must raise its own event.
        do { try arm() } catch { offset = Self.wallMinusBoot() }
        if cancelled { handler(offset &- previous) }
    }

    /// Nanoseconds from CLOCK_BOOTTIME to CLOCK_REALTIME: constant until the wall clock is set.
    static func wallMinusBoot() -> Int64 {
        var wall = timespec()
        var boot = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        return (Int64(wall.tv_sec) - Int64(boot.tv_sec)) &* 1_000_000_000 &+ (Int64(wall.tv_nsec) - Int64(boot.tv_nsec))
    }
}
