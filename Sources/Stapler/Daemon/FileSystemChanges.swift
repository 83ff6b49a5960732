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
    /// The kernel dropped events (IN_Q_OVERFLOW): nothing can be trusted, rescan all.
    var everything = false

    var isEmpty: Bool { paths.isEmpty && created.isEmpty && directories.isEmpty && !everything }

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
            guard rules.isCandidate(event.name), !rules.isIgnored(path) else { continue }
            if event.mask.subtracting(.isDirectory) == .create {
                created.insert(path)
            } else {
                paths.insert(path)
            }
        }
    }
}
