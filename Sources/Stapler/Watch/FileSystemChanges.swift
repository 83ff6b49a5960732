import Reactor

/// What a burst of inotify events asks the daemon to look at again, reduced to sets so that
/// a deployment copying 5,000 files costs one stat and at most one parse per file.
///
/// Events are hints, not facts: whatever they say, the daemon re-stats the path and acts on
/// what it finds (new, changed, gone or unchanged). That makes the rules below forgiving:
/// any event about a certificate name means "look at it again".
struct FileSystemChanges: Equatable {
    /// Certificate paths to re-stat: written, renamed in or out, touched, deleted.
    var paths = Set<FilePath>()
    /// Certificate names that were only created so far. A regular file is still being
    /// written (its IN_CLOSE_WRITE follows, and reading it now would parse half a file); a
    /// symlink is complete at once. The daemon tells them apart with lstat.
    var created = Set<FilePath>()
    /// Directories whose whole listing must be read again: a new subdirectory, a Kubernetes
    /// `..data` symlink swap (which changes every file behind it without an event for them),
    /// a watched directory that went away.
    var directories = Set<FilePath>()
    /// Other names that appeared or went away in recursive mode: a symlink to a directory
    /// is one of them (the kernel flags real directories only), and a rescan is due if the
    /// name leads to a directory now or was one the daemon watched. The daemon tells with a
    /// stat.
    var possibleDirectories = Set<FilePath>()
    /// The kernel dropped events (IN_Q_OVERFLOW): nothing can be trusted, rescan all.
    var everything = false

    var isEmpty: Bool {
        paths.isEmpty && created.isEmpty && directories.isEmpty && possibleDirectories.isEmpty && !everything
    }

    /// The mask to watch certificate directories with.
    static let watchMask: InotifyMask = [.closeWrite, .movedTo, .movedFrom, .create, .delete, .attrib,
                                         .deleteSelf, .moveSelf, .onlyDirectory]

    /// Folds a batch of events in. `directory` maps a watch to the directory it watches
    /// (nil for a watch already forgotten).
    mutating func absorb(_ events: [DirectoryEvent], rules: DiscoveryRules,
                         directory: (WatchDescriptor) -> FilePath?) {
        for event in events {
            if event.mask.contains(.queueOverflow) {
                everything = true
                continue
            }
            guard let watched = directory(event.watch) else { continue }
            if event.name.isEmpty {
                // About the watched directory itself: deleted, moved away, or unwatched.
                if !event.mask.isDisjoint(with: [.deleteSelf, .moveSelf, .ignored, .unmounted]) {
                    directories.insert(watched)
                }
                continue
            }
            let path = watched.appending(event.name)
            if event.name.bytes.starts(with: [UInt8(ascii: "."), UInt8(ascii: ".")]) {
                // Kubernetes publishes a secret by renaming a new `..data` link into place.
                if !event.mask.isDisjoint(with: [.movedTo, .create]) { directories.insert(watched) }
                continue
            }
            if event.mask.contains(.isDirectory) {
                if rules.recursive && !event.mask.isDisjoint(with: [.create, .movedTo]) { directories.insert(path) }
                if !event.mask.isDisjoint(with: [.delete, .movedFrom]) { directories.insert(path) }
                continue
            }
            guard !rules.isIgnored(path) else { continue }
            guard rules.isCandidate(event.name) else {
                // Not a certificate, and no real directory: a link to one, in recursive mode?
                // (Our own staples and temporary files, keys and issuers never are.)
                if rules.recursive, !event.name.bytes.starts(with: [UInt8(ascii: ".")]),
                   rules.isExplicitCandidate(event.name),
                   !event.mask.isDisjoint(with: [.create, .movedTo, .delete, .movedFrom]) {
                    possibleDirectories.insert(path)
                }
                continue
            }
            if event.mask.subtracting(.isDirectory) == .create {
                created.insert(path)
            } else {
                paths.insert(path)
            }
        }
    }

    /// Folds in the events of the watches on the directories that hold the configured paths
    /// (`parent` maps such a watch to its directory). There only the configured names
    /// matter, and any event about one (made, renamed in or away, deleted, touched, a
    /// symlink repointed) asks for a rescan: a configured directory made anew has no watch
    /// yet, and a configured file has none of its own.
    mutating func absorbParentEvents(_ events: [DirectoryEvent], parent: (WatchDescriptor) -> FilePath?,
                                     isLocation: (FilePath) -> Bool) {
        for event in events where !event.name.isEmpty {
            guard let directory = parent(event.watch) else { continue }
            let path = directory.appending(event.name)
            if isLocation(path) { directories.insert(path) }
        }
    }
}
