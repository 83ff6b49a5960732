import Reactor

/// Certificate files waiting to be parsed, taken a slice per pass of the loop. A burst of
/// changes (every certificate replaced by a deployment, or touched by an operator) or a scan
/// finding 100,000 new files would otherwise hold the one thread for seconds, a parse costing
/// about 0.1 ms; between slices the loop answers metrics scrapes, signals, HAProxy and curl.
///
/// A slice runs from a zero-delay timer, not `executeSoon`: deferred tasks run until none is
/// left, before the loop looks at its descriptors again, whereas a timer waits its turn
/// among the other events.
final class CertificateLoadQueue {
    /// Files parsed per pass of the loop: a few tens of milliseconds of work.
    static let loadsPerPass = 256

    private let loop: EventLoop
    private let load: (TrackedCertificate, _ changed: Bool) -> Void
    private var waiting: [(certificate: TrackedCertificate, changed: Bool)] = []
    private var head = 0
    private var timer: TimerHandle?
    /// Called after the slice that emptied the queue.
    var onDrained: (() -> Void)?

    var isEmpty: Bool { head == waiting.count }

    init(loop: EventLoop, load: @escaping (TrackedCertificate, _ changed: Bool) -> Void) {
        self.loop = loop
        self.load = load
    }

    /// Queues a file to parse; `changed`: it was known and changed on disk. A file queued
    /// twice (changed again before its turn) is parsed twice, as two changes would be.
    func add(_ certificate: TrackedCertificate, changed: Bool) {
        waiting.append((certificate, changed))
        scheduleSlice()
    }

    /// Drops everything waiting (the daemon is stopping).
    func removeAll() {
        if let timer { loop.cancel(timer) }
        timer = nil
        waiting = []
        head = 0
    }

    private func runSlice() {
        let end = min(head + Self.loadsPerPass, waiting.count)
        while head < end {
            let (certificate, changed) = waiting[head]
            head += 1
            load(certificate, changed)
        }
        if isEmpty {
            waiting = []
            head = 0
            onDrained?()
        } else {
            scheduleSlice()
        }
    }

    private func scheduleSlice() {
        guard timer == nil else { return }
        timer = loop.schedule(after: .zero) { [unowned self] in
            self.timer = nil
            self.runSlice()
        }
    }
}
