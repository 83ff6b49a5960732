import CEpoll
import Glibc

/// Names one inotify watch. The kernel reuses numbers only after a watch is gone.
public struct WatchDescriptor: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public var description: String { "wd\(rawValue)" }
    /// The descriptor IN_Q_OVERFLOW arrives with: it belongs to no watch.
    public static let none = WatchDescriptor(rawValue: -1)
}

/// One decoded inotify record.
public struct DirectoryEvent: Hashable, Sendable {
    public var watch: WatchDescriptor
    public var mask: InotifyMask
    /// Pairs an IN_MOVED_FROM with its IN_MOVED_TO.
    public var cookie: UInt32
    /// The name inside the watched directory; empty for events about the directory itself.
    public var name: FilePath

    public init(watch: WatchDescriptor, mask: InotifyMask, cookie: UInt32, name: FilePath) {
        self.watch = watch
        self.mask = mask
        self.cookie = cookie
        self.name = name
    }
}

/// Watches directories with inotify and hands decoded events to one handler, a read's worth
/// at a time, so that bursts can be coalesced by the owner.
///
/// Watch directories, not files: editors and Kubernetes replace files by rename, which a
/// per-file watch loses. Watches are not recursive.
public final class DirectoryWatcher {
    private var descriptor: ReadableDescriptor?
    private var fd: Int32 { descriptor?.fd ?? -1 }
    private let handler: ([DirectoryEvent]) -> Void
    private var buffer: [UInt8]

    public init(loop: EventLoop, handler: @escaping ([DirectoryEvent]) -> Void) throws(SystemError) {
        self.handler = handler
        // Room for several hundred events with names; read() returns whole records only.
        buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let fd = try retryingOnInterrupt("inotify_init1") { inotify_init1(CEPOLL_IN_NONBLOCK | CEPOLL_IN_CLOEXEC) }
        descriptor = try ReadableDescriptor(fd: fd, loop: loop) { [unowned self] in self.drain() }
    }

    deinit { close() }

    public func close() {
        descriptor?.close()
    }

    /// Adds (or, for a path already watched, replaces the mask of) a watch. Watching the same
    /// inode twice returns the same descriptor.
    @discardableResult
    public func watch(_ path: FilePath, mask: InotifyMask) throws(FileError) -> WatchDescriptor {
        let wd = path.withCString { inotify_add_watch(fd, $0, mask.rawValue) }
        guard wd >= 0 else { throw FileError(path: path, operation: "inotify_add_watch") }
        return WatchDescriptor(rawValue: wd)
    }

    /// Removes a watch. The kernel then sends IN_IGNORED for it. A watch the kernel already
    /// dropped (its directory was deleted) is not an error.
    public func unwatch(_ watch: WatchDescriptor) {
        _ = inotify_rm_watch(fd, watch.rawValue)
    }

    private func drain() {
        while descriptor?.isOpen == true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if got <= 0 { return } // EAGAIN: drained
            let events = buffer.withUnsafeBytes {
                InotifyRecordDecoder.events(in: UnsafeRawBufferPointer(rebasing: $0[0..<got]))
            }
            if !events.isEmpty { handler(events) }
        }
    }
}
