import Glibc

/// A descriptor its owner opened and watches for reading (signalfd, inotify): registered on
/// creation, or closed again if that fails; `close()` cancels the watch before closing, so
/// the number can never be reused under a live registration.
struct ReadableDescriptor {
    let fd: Int32
    private var registration: IORegistration?

    /// Takes ownership of `fd`.
    init(fd: Int32, loop: EventLoop, onReadable: @escaping () -> Void) throws(SystemError) {
        self.fd = fd
        do {
            registration = try loop.register(fd: fd, interest: .readable) { _ in onReadable() }
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    var isOpen: Bool { registration != nil }

    mutating func close() {
        guard let registration else { return }
        registration.cancel()
        self.registration = nil
        Glibc.close(fd)
    }
}
