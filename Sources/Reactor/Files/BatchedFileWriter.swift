import CEpoll
import Glibc

/// Replaces files atomically and durably, many at a time.
///
/// `FileSystem.writeAtomically` pays two disk cache flushes per file (the data, then the
/// directory); on a virtual disk that is a few milliseconds each, and a cold start that
/// writes 10,000 files spends most of its time waiting for them. Here each file goes to a
/// hidden temporary file at once, and a commit, at most `maximumDelay` later, makes the
/// whole batch durable with one `syncfs` per file system, renames every file into place and
/// syncs each directory once. A crash at any point leaves every target either as it was or
/// replaced whole: no rename happens before the data it exposes is on disk.
///
/// Small batches (the steady state, one refresh now and then) fsync their own files instead:
/// `syncfs` also writes out whatever other processes left dirty on that file system, which
/// is worth it only when it saves many flushes.
public final class BatchedFileWriter {
    /// Identifies one write until it is committed, so it can be cancelled.
    public struct Ticket: Hashable, Sendable {
        fileprivate let id: UInt64
    }

    private struct Pending {
        let ticket: Ticket
        let target: FilePath
        let temporary: FilePath
        /// Open until the commit, to sync the file without looking its name up again.
        let fd: Int32
        let completion: (FileError?) -> Void
    }

    private let loop: EventLoop
    private let maximumDelay: Duration
    private let maximumBatch: Int
    private let syncfsThreshold: Int
    private var pending: [Pending] = []
    private var timer: TimerHandle?
    private var commitScheduled = false
    private var nextTicket: UInt64 = 0
    /// This process's pid and umask, read once for every file it creates.
    private let creation = FileCreation()

    /// - Parameters:
    ///   - maximumDelay: how long a write may wait for others before it is committed.
    ///   - maximumBatch: a batch this large is committed without waiting further (it also
    ///     bounds the descriptors held open).
    ///   - syncfsThreshold: from this many files on, one `syncfs` replaces their fsyncs.
    public init(loop: EventLoop, maximumDelay: Duration = .milliseconds(50), maximumBatch: Int = 128,
                syncfsThreshold: Int = 4) {
        self.loop = loop
        self.maximumDelay = maximumDelay
        self.maximumBatch = max(1, maximumBatch)
        self.syncfsThreshold = max(1, syncfsThreshold)
    }

    /// Abandons what was never committed: the targets stay as they were.
    deinit {
        if let timer { loop.cancel(timer) }
        for write in pending { discard(write) }
    }

    /// Writes waiting for their commit.
    public var pendingCount: Int { pending.count }

    /// Writes `bytes` to a temporary file beside `path` now (so a full disk or a read-only
    /// directory is reported at once) and replaces `path` with it at the next commit, after
    /// which `completion` gets nil, or the error that left `path` untouched. The completion
    /// is never called from inside this method.
    @discardableResult
    public func write(_ bytes: [UInt8], to path: FilePath, mode: mode_t = 0o644,
                      completion: @escaping (FileError?) -> Void) throws(FileError) -> Ticket {
        let (temporary, fd) = try FileSystem.createTemporaryFile(bytes, beside: path, mode: mode, creation: creation)
        nextTicket &+= 1
        let ticket = Ticket(id: nextTicket)
        pending.append(Pending(ticket: ticket, target: path, temporary: temporary, fd: fd, completion: completion))
        if pending.count >= maximumBatch {
            scheduleCommitSoon()
        } else if timer == nil {
            timer = loop.schedule(after: maximumDelay) { [weak self] in
                self?.timer = nil
                self?.commit()
            }
        }
        return ticket
    }

    /// Drops a write not yet committed: its temporary file goes, the target stays as it was,
    /// and its completion is never called. Does nothing for a committed ticket.
    public func cancel(_ ticket: Ticket) {
        guard let index = pending.firstIndex(where: { $0.ticket == ticket }) else { return }
        discard(pending.remove(at: index))
    }

    /// Commits every pending write now (the timer does it otherwise; call it before exiting).
    /// Completions run after every rename of the batch, in the order the writes were made.
    public func commit() {
        if let timer { loop.cancel(timer) }
        timer = nil
        guard !pending.isEmpty else { return }
        let batch = pending
        pending = []

        var failures = makeDurable(batch)
        var directories: [FilePath] = []
        for (index, write) in batch.enumerated() {
            // Network file systems may report a lost write only here.
            if close(write.fd) != 0 && failures[index] == nil {
                failures[index] = FileError(path: write.temporary, operation: "close")
            }
            if failures[index] == nil {
                let renamed = write.temporary.withCString { from in write.target.withCString { to in rename(from, to) } }
                if renamed == 0 {
                    let directory = write.target.directory
                    if !directories.contains(directory) { directories.append(directory) }
                    continue
                }
                failures[index] = FileError(path: write.target, operation: "rename")
            }
            _ = write.temporary.withCString { unlink($0) }
        }
        for directory in directories { FileSystem.syncDirectory(directory) }
        for (index, write) in batch.enumerated() { write.completion(failures[index]) }
    }

    /// Puts the data of every temporary file of the batch on disk: the failures, by index.
    private func makeDurable(_ batch: [Pending]) -> [FileError?] {
        var failures = [FileError?](repeating: nil, count: batch.count)
        guard batch.count >= syncfsThreshold else {
            for (index, write) in batch.enumerated() where fsync(write.fd) != 0 {
                failures[index] = FileError(path: write.temporary, operation: "fsync")
            }
            return failures
        }
        var outcomeByDevice: [UInt64: Int32] = [:]
        // Files of one directory are on one file system: one fstat per run of them (a batch
        // of a cold start is 128 staples of the same directory, most of the time).
        var last: (directory: FilePath, device: UInt64)?
        for (index, write) in batch.enumerated() {
            let directory = write.target.directory
            let device: UInt64
            if let last, last.directory == directory {
                device = last.device
            } else {
                var st = stat()
                guard fstat(write.fd, &st) == 0 else {
                    failures[index] = FileError(path: write.temporary, operation: "fstat")
                    continue
                }
                device = UInt64(st.st_dev)
                last = (directory, device)
            }
            if outcomeByDevice[device] == nil {
                outcomeByDevice[device] = cepoll_syncfs(write.fd) == 0 ? 0 : errno
            }
            if let code = outcomeByDevice[device], code != 0 {
                failures[index] = FileError(path: write.temporary, operation: "syncfs", errno: code)
            }
        }
        return failures
    }

    private func scheduleCommitSoon() {
        guard !commitScheduled else { return }
        commitScheduled = true
        loop.executeSoon { [weak self] in
            self?.commitScheduled = false
            self?.commit()
        }
    }

    private func discard(_ write: Pending) {
        close(write.fd)
        _ = write.temporary.withCString { unlink($0) }
    }
}
