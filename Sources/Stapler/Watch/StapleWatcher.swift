import Reactor

/// Notices staple files that another Stapler replaces (`--push-only`): inotify on the
/// directories that hold them, where the file system delivers events (the writer renames
/// each new staple into place: IN_MOVED_TO), and a periodic rescan where it does not (NFS,
/// some FUSE and network volumes), which stats every followed staple and reports those
/// whose inode, size, modification or change time moved. Unchanged staples are never read.
///
/// Paths in, changed paths out: it stats, it never reads. A directory that does not exist
/// yet (the writer has not written below `--staple-dir` so far) is watched through its
/// nearest existing ancestor until it appears.
final class StapleWatcher {
    struct Settings {
        /// The periodic rescan; nil for none (`--one-off`).
        var rescanInterval: Duration?
        /// inotify watches (not for `--one-off`: it reads once and ends).
        var watchesEvents = true
    }

    /// Every event of a staple directory, and of an ancestor waiting for one to appear.
    static let watchMask: InotifyMask = [.closeWrite, .movedTo, .movedFrom, .create, .delete, .attrib,
                                         .deleteSelf, .moveSelf, .onlyDirectory]

    private struct Directory {
        var watch: WatchDescriptor?
        var staples = Set<FilePath>()
    }

    private let loop: EventLoop
    private let settings: Settings
    private let onChange: (FilePath) -> Void
    private var inotify: DirectoryWatcher?
    /// Each followed staple and its status as last reported (nil: missing).
    private var staples: [FilePath: FileStatus?] = [:]
    private var directories: [FilePath: Directory] = [:]
    private var watches: [WatchDescriptor: FilePath] = [:]
    /// Existing ancestors of missing staple directories, watched for those to appear.
    private var ancestors: [FilePath: WatchDescriptor] = [:]
    private var ancestorWatches: [WatchDescriptor: FilePath] = [:]
    private var pending = Set<FilePath>()
    private var pendingEverything = false
    private var changeTimer: TimerHandle?
    private var rescanTimer: TimerHandle?
    private var isClosed = false

    /// `onChange` is given a followed staple path whose status changed since it was last
    /// reported (written, replaced, touched, deleted).
    init(loop: EventLoop, settings: Settings, onChange: @escaping (FilePath) -> Void) throws(SystemError) {
        self.loop = loop
        self.settings = settings
        self.onChange = onChange
        if settings.watchesEvents {
            inotify = try DirectoryWatcher(loop: loop) { [weak self] events in self?.absorb(events) }
        }
        scheduleRescan()
    }

    var followedCount: Int { staples.count }

    /// Follows a staple file from now on; its current status is the reference for changes
    /// (the caller reads the file itself).
    func follow(_ staple: FilePath) {
        guard staples[staple] == nil else { return }
        staples[staple] = .some(try? FileSystem.status(staple))
        let directory = staple.directory
        let isNew = directories[directory] == nil
        directories[directory, default: Directory()].staples.insert(staple)
        if isNew { watch(directory) }
    }

    func unfollow(_ staple: FilePath) {
        guard staples.removeValue(forKey: staple) != nil else { return }
        let directory = staple.directory
        directories[directory]?.staples.remove(staple)
        guard let entry = directories[directory], entry.staples.isEmpty else { return }
        directories[directory] = nil
        if let watch = entry.watch {
            watches[watch] = nil
            release(watch)
        }
        updateAncestors()
    }

    func close() {
        isClosed = true
        for timer in [changeTimer, rescanTimer] { if let timer { loop.cancel(timer) } }
        changeTimer = nil
        rescanTimer = nil
        inotify?.close()
    }

    // MARK: The periodic rescan

    private func scheduleRescan() {
        guard let interval = settings.rescanInterval, !isClosed else { return }
        rescanTimer = loop.schedule(after: interval) { [weak self] in
            guard let self else { return }
            self.rescanTimer = nil
            self.rescan()
            self.scheduleRescan()
        }
    }

    /// One stat per followed staple; also retries the watches of directories that were
    /// missing or could not be watched.
    func rescan() {
        retryMissingWatches()
        examine(Array(staples.keys))
    }

    /// Reports the staples whose status differs from the one last reported.
    private func examine(_ paths: some Sequence<FilePath>) {
        for path in paths {
            guard let known = staples[path] else { continue }
            let status = try? FileSystem.status(path)
            guard status != known else { continue }
            staples[path] = .some(status)
            onChange(path)
        }
    }

    // MARK: inotify

    /// Watches a staple directory, or its nearest existing ancestor while it is missing.
    private func watch(_ directory: FilePath) {
        guard let inotify else { return }
        if let watch = try? inotify.watch(directory, mask: Self.watchMask) {
            directories[directory]?.watch = watch
            watches[watch] = directory
        }
        updateAncestors()
    }

    private func retryMissingWatches() {
        guard inotify != nil else { return }
        var appeared: [FilePath] = []
        for (directory, entry) in directories where entry.watch == nil {
            watch(directory)
            if directories[directory]?.watch != nil { appeared.append(directory) }
        }
        // Staples written between the directory's creation and its watch raised no event
        // we could see.
        for directory in appeared { examine(directories[directory]?.staples ?? []) }
    }

    /// Keeps one watch on the nearest existing ancestor of each staple directory that has
    /// none, so its creation is seen at once.
    private func updateAncestors() {
        guard let inotify else { return }
        var wanted = Set<FilePath>()
        for (directory, entry) in directories where entry.watch == nil {
            var ancestor = directory.directory
            while ancestor != ancestor.directory,
                  (try? FileSystem.status(ancestor))?.kind != .directory {
                ancestor = ancestor.directory
            }
            wanted.insert(ancestor)
        }
        for (ancestor, watch) in ancestors where !wanted.contains(ancestor) {
            ancestors[ancestor] = nil
            ancestorWatches[watch] = nil
            release(watch)
        }
        for ancestor in wanted where ancestors[ancestor] == nil {
            guard let watch = try? inotify.watch(ancestor, mask: Self.watchMask) else { continue }
            ancestors[ancestor] = watch
            ancestorWatches[watch] = ancestor
        }
    }

    /// Removes a kernel watch nothing uses any more (a staple directory can be the
    /// ancestor of another).
    private func release(_ watch: WatchDescriptor) {
        guard watches[watch] == nil, ancestorWatches[watch] == nil else { return }
        inotify?.unwatch(watch)
    }

    private func absorb(_ events: [DirectoryEvent]) {
        for event in events {
            if event.mask.contains(.queueOverflow) {
                pendingEverything = true
                continue
            }
            if ancestorWatches[event.watch] != nil {
                // A directory appeared (or went) on the way to a missing staple directory.
                if event.mask.contains(.isDirectory) || event.name.isEmpty { pendingEverything = true }
                if event.mask.contains(.ignored), let ancestor = ancestorWatches.removeValue(forKey: event.watch) {
                    ancestors[ancestor] = nil
                }
            }
            guard let directory = watches[event.watch] else { continue }
            if event.name.isEmpty {
                // The staple directory itself was deleted or moved away: look for it anew.
                if !event.mask.isDisjoint(with: [.deleteSelf, .moveSelf, .ignored, .unmounted]) {
                    watches[event.watch] = nil
                    if directories[directory]?.watch == event.watch { directories[directory]?.watch = nil }
                    if !event.mask.contains(.ignored) { release(event.watch) }
                    pendingEverything = true
                }
                continue
            }
            if event.name.bytes.starts(with: [UInt8(ascii: "."), UInt8(ascii: ".")]) {
                // A Kubernetes volume swaps its `..data` link: every staple behind it may change.
                pending.formUnion(directories[directory]?.staples ?? [])
                continue
            }
            let path = directory.appending(event.name)
            if staples[path] != nil { pending.insert(path) }
        }
        scheduleChangesPass()
    }

    private func scheduleChangesPass() {
        guard !pending.isEmpty || pendingEverything, changeTimer == nil, !isClosed else { return }
        changeTimer = loop.schedule(after: CertificateWatcher.changeDelay) { [weak self] in
            guard let self else { return }
            self.changeTimer = nil
            let paths = self.pending
            let everything = self.pendingEverything
            self.pending = []
            self.pendingEverything = false
            if everything {
                self.rescan()
            } else {
                self.examine(paths)
            }
        }
    }
}
