import CEpoll
import Glibc

/// Delivers signals as loop events through a signalfd.
///
/// The signals are blocked in the calling thread, so they stay pending until the loop reads
/// them instead of interrupting whatever runs. Create it before any other thread exists
/// (curl's resolver threads inherit the mask, which keeps the signals away from them too).
public final class SignalSource {
    private var descriptor: ReadableDescriptor?
    private let signals: [Int32]
    private let handler: (Int32) -> Void

    public init(loop: EventLoop, signals: [Int32], handler: @escaping (Int32) -> Void) throws(SystemError) {
        self.signals = signals
        self.handler = handler
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        let blocked = pthread_sigmask(SIG_BLOCK, &mask, nil)
        if blocked != 0 { throw SystemError("pthread_sigmask", errno: blocked) }
        let fd = try retryingOnInterrupt("signalfd") { signalfd(-1, &mask, CEPOLL_SFD_NONBLOCK | CEPOLL_SFD_CLOEXEC) }
        descriptor = try ReadableDescriptor(fd: fd, loop: loop) { [unowned self] in self.drain() }
    }

    deinit { close() }

    /// Stops listening. The signals stay blocked: unblocking would let a pending SIGTERM
    /// kill the process with its default action.
    public func close() {
        descriptor?.close()
    }

    /// Sets the disposition of signals the daemon never wants to hear about: SIGPIPE (a
    /// socket write to a closed peer fails with EPIPE instead), SIGXFSZ.
    public static func ignore(_ signals: [Int32]) {
        for signal in signals { _ = Glibc.signal(signal, SIG_IGN) }
    }

    /// Gives signals their default disposition back, whatever the process inherited across
    /// exec (an ignored signal stays ignored in the new program).
    public static func restoreDefault(_ signals: [Int32]) {
        for signal in signals { _ = Glibc.signal(signal, SIG_DFL) }
    }

    private func drain() {
        var info = signalfd_siginfo()
        let size = MemoryLayout<signalfd_siginfo>.size
        while let fd = descriptor?.fd, descriptor?.isOpen == true {
            let got = read(fd, &info, size)
            if got != size { return } // EAGAIN: drained
            handler(Int32(bitPattern: info.ssi_signo))
        }
    }
}
