import Reactor

/// Notices certificate files appearing, changing and going away: a scan of the configured
/// paths (at start, on SIGHUP, every `--refresh-interval`), and inotify watches on every
/// scanned directory whose events are coalesced for `changeDelay` and turned into the few
/// paths to look at again. The periodic scan is a safety net for what inotify cannot see:
/// in a directory watched without a lost event since its files were last stat'ed, it takes
/// the listing's word for unchanged regular files (`UnchangedFileShortcut`).
///
/// File events in, observations out: it stats, it never parses. The daemon decides what a
/// new or changed file means.
final class CertificateWatcher {
    struct Settings {
        var locations: [FilePath] = []
        var rules = DiscoveryRules()
        /// The periodic rescan; nil for none (`--one-off`).
        var rescanInterval: Duration?
        /// inotify watches (not for `--one-off`: it reads once and ends).
        var watchesEvents = true
        /// However well inotify covers a directory, a periodic rescan stats every file at
        /// least this often: a file written in place and still held open raises no event
        /// the watcher acts on until it is closed.
        var fullScanInterval: Duration = .seconds(3600)
        /// Where staples are written: below `--staple-dir`, a writer that died mid-write leaves
        /// its temporary files there, not in the certificate directories.
        var stapleLocation = StapleLocation.besideCertificate
    }

    enum Observation {
        /// Every certificate file a full scan found; any file not listed is gone.
        case scanned([DiscoveredFile])
        /// A periodic rescan: the files it stat'ed, and how many known files it took as
        /// unchanged without naming them (`UnchangedFileShortcut`). When the two together
        /// are fewer than the files known, some known file went unnoticed by inotify: only a
        /// full scan (`rescan()`) can tell which.
        case rescanned([DiscoveredFile], unchangedWithoutStat: Int)
        /// A path an event named is a regular file with this status. `location` is that of
        /// its watched directory (nil when the file is not in one: the daemon knows it or
        /// ignores it).
        case present(FilePath, status: FileStatus, location: Int?)
        /// A path an event named is gone.
        case absent(FilePath)
    }

    /// Coalescing window for file system events: long enough to gather an editor's save or a
    /// copy of many files into one pass, short enough that a new certificate is stapled
    /// within a second.
    static let changeDelay: Duration = .milliseconds(100)

    private let loop: EventLoop
    private let logger: Logger
    private let onObservation: (Observation) -> Void
    private var settings = Settings()
    private var inotify: DirectoryWatcher?
    private var watches: [WatchDescriptor: FilePath] = [:]
    private var watchedDirectories: [FilePath: (watch: WatchDescriptor, location: Int)] = [:]
    private var parentWatches = ParentWatches()
    private var pendingChanges = FileSystemChanges()
    private var changeTimer: TimerHandle?
    private var rescanTimer: TimerHandle?
    /// Directories whose watch was in place through the last full look at their files, with
    /// no event lost since: the periodic rescan may skip the `stat` of their unchanged files.
    private var eventCoveredDirectories = Set<FilePath>()
    private var lastFullScan = MonotonicInstant(nanoseconds: 0)
    /// The inode numbers of the files the daemon knows, for the periodic rescan's shortcut.
    var knownInodes: (() -> Set<UInt64>)?
    /// Unreadable paths, with the reason last logged, so each is reported once per change.
    private var reportedProblems: [FilePath: String] = [:]
    private var isClosed = false

    init(loop: EventLoop, logger: Logger, onObservation: @escaping (Observation) -> Void) {
        self.loop = loop
        self.logger = logger
        self.onObservation = onObservation
    }

    /// Takes new settings; the next scan uses them. Creates the inotify instance the first
    /// time events are wanted.
    func configure(_ settings: Settings) throws(SystemError) {
        self.settings = settings
        if settings.watchesEvents && inotify == nil {
            inotify = try DirectoryWatcher(loop: loop) { [weak self] events in self?.absorb(events) }
        }
    }

    /// Scans now, every file stat'ed (at start, on SIGHUP), and plans the next periodic scan
    /// from now.
    func rescan() {
        scanAll()
        scheduleRescan()
    }

    func close() {
        isClosed = true
        for timer in [changeTimer, rescanTimer] { if let timer { loop.cancel(timer) } }
        changeTimer = nil
        rescanTimer = nil
        inotify?.close()
    }

    // MARK: Scans

    private func scheduleRescan() {
        if let rescanTimer { loop.cancel(rescanTimer) }
        rescanTimer = nil
        guard let interval = settings.rescanInterval, !isClosed else { return }
        rescanTimer = loop.schedule(after: interval) { [weak self] in
            guard let self else { return }
            self.rescanTimer = nil
            self.scanAll(trustingEvents: true)
            self.scheduleRescan()
        }
    }

    /// Lists every configured path and stats its certificate files (no read). With
    /// `trustingEvents`, files that inotify would have reported are not stat'ed.
    private func scanAll(trustingEvents: Bool = false) {
        let now = MonotonicInstant.now()
        let fullScanDue = now.duration(since: lastFullScan) >= settings.fullScanInterval
        let shortcut = trustingEvents && inotify != nil && !fullScanDue
            && !eventCoveredDirectories.isEmpty
            ? knownInodes.map { UnchangedFileShortcut(watchedDirectories: eventCoveredDirectories, knownInodes: $0()) }
            : nil
        let watchedBefore = watchedDirectories.mapValues(\.watch)
        let result = CertificateDiscovery.scan(settings.locations, rules: settings.rules, shortcut: shortcut)
        if shortcut == nil {
            lastFullScan = now
            onObservation(.scanned(result.files))
        } else {
            onObservation(.rescanned(result.files, unchangedWithoutStat: result.unchangedWithoutStat))
        }
        let (newlyWatched, watchProblems) = updateWatches(result.directories)
        // Covered from now on: the directories whose watch was already in place when they
        // were listed (a new watch came after the listing, and a file made in between raised
        // no event we saw), and only if that look stat'ed them or they were covered before.
        var covered = Set<FilePath>()
        for (directory, entry) in watchedDirectories where watchedBefore[directory] == entry.watch {
            if shortcut == nil || eventCoveredDirectories.contains(directory) { covered.insert(directory) }
        }
        eventCoveredDirectories = covered
        reportProblems(result.problems, watchProblems: watchProblems)
        for stale in result.staleTemporaryFiles + staleTemporaryFilesBelowStapleDirectory(result.directories) {
            // Left by a writer that died mid-write; the staple beside it is intact.
            if (try? FileSystem.remove(stale)) != nil { logger.info("\(stale): removed, left by a stopped writer") }
        }
        updateParentWatches()
        if !newlyWatched.isEmpty {
            // A file made between a directory's listing and its watch raised no event we
            // could see: list such directories once more, now that their watches are in place.
            pendingChanges.directories.formUnion(newlyWatched)
            scheduleChangesPass()
        }
        logger.debug("scanned: \(result.files.count) certificate file(s), \(watchedDirectories.count) "
                     + "watched director\(watchedDirectories.count == 1 ? "y" : "ies")"
                     + (shortcut == nil ? "" : ", \(result.unchangedWithoutStat) unchanged as inotify says"))
    }

    /// Our temporary files left by a stopped writer in the staple directories that mirror the
    /// scanned certificate directories (`--staple-dir` only).
    private func staleTemporaryFilesBelowStapleDirectory(_ directories: [(path: FilePath, location: Int)]) -> [FilePath] {
        guard case .under = settings.stapleLocation else { return [] }
        var stale: [FilePath] = []
        for (directory, _) in directories {
            let mirrored = settings.stapleLocation.directory(forCertificatesIn: directory)
            guard let entries = try? FileSystem.listDirectory(mirrored) else { continue }
            for entry in entries where FileSystem.isStaleTemporaryFile(entry.name) {
                stale.append(mirrored.appending(entry.name))
            }
        }
        return stale
    }

    /// Logs each problem once, when it appears or changes, and says when it is gone. A
    /// directory that cannot be watched is a warning (the periodic rescan still covers it),
    /// and not worth a word when it cannot even be read.
    private func reportProblems(_ problems: [FileError], watchProblems: [FilePath: String]) {
        var current: [FilePath: String] = [:]
        for problem in problems {
            let text = problem.description
            current[problem.path] = text
            if reportedProblems[problem.path] != text { logger.error(text) }
        }
        for (path, text) in watchProblems where current[path] == nil {
            current[path] = text
            if reportedProblems[path] != text { logger.warning(text) }
        }
        for (path, text) in reportedProblems where current[path] == nil {
            if text.hasSuffix(Self.watchFallback) {
                logger.debug("\(path): watched again, or no longer scanned")
            } else {
                logger.info("\(path): readable again")
            }
        }
        reportedProblems = current
    }

    private static let watchFallback = "; relying on the periodic rescan"

    /// Looks at one path an event named: a regular file, gone, or neither (ignored).
    private func examine(_ path: FilePath) {
        let status: FileStatus
        do {
            status = try FileSystem.status(path)
        } catch {
            return onObservation(.absent(path))
        }
        guard status.kind == .regular else { return }
        onObservation(.present(path, status: status, location: watchedDirectories[path.directory]?.location))
    }

    // MARK: inotify

    /// Keeps one watch per scanned directory, dropping those of directories no longer found.
    /// Returns the directories watched from now on, and those that cannot be watched (out of
    /// watches: fs.inotify.max_user_watches), with the reason.
    ///
    /// Every scanned directory is watched again at each scan: for a directory already
    /// watched the kernel answers with the same descriptor, and a different one means its
    /// path leads somewhere else now (a symlink to it was repointed), whose events the old
    /// watch would never see.
    private func updateWatches(_ directories: [(path: FilePath, location: Int)]) -> (added: [FilePath],
                                                                                      problems: [FilePath: String]) {
        guard let inotify else { return ([], [:]) }
        var wanted: [FilePath: Int] = [:]
        for (directory, location) in directories { wanted[directory] = location }
        // Drop first: a directory renamed within the tree keeps its inode, and so its watch
        // descriptor; dropping it after watching the new name would unwatch the new name.
        for (directory, entry) in watchedDirectories where wanted[directory] == nil {
            watches[entry.watch] = nil
            watchedDirectories[directory] = nil
            releaseWatch(entry.watch)
        }
        var added: [FilePath] = []
        var problems: [FilePath: String] = [:]
        for (directory, location) in directories {
            let watch: WatchDescriptor
            do {
                watch = try inotify.watch(directory, mask: FileSystemChanges.watchMask)
            } catch {
                // Gone since the listing (its events will tell), or out of watches.
                if watchedDirectories[directory] == nil { problems[directory] = "\(error)\(Self.watchFallback)" }
                continue
            }
            if let existing = watchedDirectories[directory] {
                if existing.watch == watch {
                    watchedDirectories[directory] = (watch, location)
                    continue
                }
                if watches[existing.watch] == directory { watches[existing.watch] = nil }
                releaseWatch(existing.watch)
            }
            watches[watch] = directory
            watchedDirectories[directory] = (watch, location)
            added.append(directory)
        }
        return (added, problems)
    }

    /// Removes a kernel watch nothing uses any more (a parent watch and a certificate
    /// directory watch can be one and the same).
    private func releaseWatch(_ watch: WatchDescriptor) {
        guard watches[watch] == nil, parentWatches.directories[watch] == nil else { return }
        inotify?.unwatch(watch)
    }

    /// Watches the directory holding each configured path, for the events about the path
    /// itself that no watch inside it can report. The same mask as certificate directories:
    /// a parent that is one of them shares its watch, and a narrower mask would replace it.
    private func updateParentWatches() {
        guard let inotify else { return }
        var wanted = Set<FilePath>()
        var locations = Set<FilePath>()
        for location in settings.locations {
            let parent = location.directory
            wanted.insert(parent)
            locations.insert(parent.appending(location.lastComponent))
        }
        parentWatches.locations = locations
        for (parent, watch) in parentWatches.watches where !wanted.contains(parent) {
            parentWatches.watches[parent] = nil
            parentWatches.directories[watch] = nil
            releaseWatch(watch)
        }
        for parent in wanted {
            // A parent that cannot be watched (missing, unreadable) is left to the periodic
            // rescan, and tried again at every scan. Watched again like any directory, in
            // case its path leads elsewhere now.
            guard let watch = try? inotify.watch(parent, mask: FileSystemChanges.watchMask) else { continue }
            let previous = parentWatches.watches[parent]
            guard previous != watch else { continue }
            parentWatches.watches[parent] = watch
            parentWatches.directories[watch] = parent
            if let previous {
                parentWatches.directories[previous] = nil
                releaseWatch(previous)
            }
        }
    }

    /// Gathers a batch of events; the work happens once the burst settles.
    private func absorb(_ events: [DirectoryEvent]) {
        // Lost events: until a full look, no directory is covered by its watch.
        if events.contains(where: { $0.mask.contains(.queueOverflow) }) { eventCoveredDirectories = [] }
        pendingChanges.absorb(events, rules: settings.rules) { [unowned self] in self.watches[$0] }
        pendingChanges.absorbParentEvents(events, parent: { [unowned self] in self.parentWatches.directories[$0] },
                                          isLocation: { [unowned self] in self.parentWatches.locations.contains($0) })
        for event in events where event.mask.contains(.ignored) {
            // The kernel dropped this watch (its directory went away).
            if let directory = watches.removeValue(forKey: event.watch) {
                watchedDirectories[directory] = nil
                eventCoveredDirectories.remove(directory)
            }
            if let parent = parentWatches.directories.removeValue(forKey: event.watch) {
                parentWatches.watches[parent] = nil
            }
        }
        scheduleChangesPass()
    }

    /// Applies the pending changes once the coalescing window has passed.
    private func scheduleChangesPass() {
        guard !pendingChanges.isEmpty, changeTimer == nil, !isClosed else { return }
        changeTimer = loop.schedule(after: Self.changeDelay) { [weak self] in
            guard let self else { return }
            self.changeTimer = nil
            self.applyPendingChanges()
        }
    }

    private func applyPendingChanges() {
        let changes = pendingChanges
        pendingChanges = FileSystemChanges()
        let directoryLinkChanged = changes.possibleDirectories.contains {
            watchedDirectories[$0] != nil || (try? FileSystem.status($0))?.kind == .directory
        }
        if changes.everything || !changes.directories.isEmpty || directoryLinkChanged {
            if changes.everything { logger.warning("inotify queue overflowed: rescanning everything") }
            scanAll()
            return
        }
        for path in changes.paths { examine(path) }
        for path in changes.created where !changes.paths.contains(path) {
            // A new symlink, or a new name for an existing file (a hard link), is complete at
            // once; a new regular file is examined on its close-write, not half written.
            guard let status = try? FileSystem.status(path, followSymlinks: false) else { continue }
            if status.kind == .symlink || status.kind == .regular && (FileSystem.linkCount(path) ?? 1) > 1 {
                examine(path)
            }
        }
    }
}

/// The watches on the directories that hold the configured paths (see `updateParentWatches`).
private struct ParentWatches {
    var directories: [WatchDescriptor: FilePath] = [:]
    var watches: [FilePath: WatchDescriptor] = [:]
    /// The configured paths, spelled as the parents' events name them.
    var locations = Set<FilePath>()
}
