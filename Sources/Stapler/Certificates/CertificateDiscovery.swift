import Glibc
import Reactor

/// Which files under the configured paths are certificates to staple.
struct DiscoveryRules: Sendable {
    var extensions: [String] = ["crt", "pem", "cer"]
    var ignorePatterns: [IgnorePattern] = []
    var recursive = false
    /// Deeper trees are almost certainly a symlink maze, not a certificate store.
    var maximumDepth = 32

    /// Whether a name found in a directory looks like a certificate. Staples, keys, issuer
    /// files, hidden files and our temporary files never do, whatever their extension.
    func isCandidate(_ name: FilePath) -> Bool {
        name.bytes.withUnsafeBufferPointer { isCandidate($0) }
    }

    /// The same over a name's bytes where a listing holds them. Runs for every name of every
    /// scan, so it allocates nothing.
    func isCandidate(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = name.first, first != UInt8(ascii: ".") else { return false }
        guard isExplicitCandidate(name), !name.endsWith(FileSystem.temporarySuffix) else { return false }
        return extensions.contains { hasExtension(name, $0) }
    }

    /// A file named explicitly on the command line is taken whatever its extension, but a
    /// staple, key or issuer file named by mistake still is not.
    func isExplicitCandidate(_ name: FilePath) -> Bool {
        name.bytes.withUnsafeBufferPointer { isExplicitCandidate($0) }
    }

    private func isExplicitCandidate(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        !name.endsWith(".ocsp") && !name.endsWith(".key") && !name.endsWith(".issuer")
    }

    func isIgnored(_ path: FilePath) -> Bool { ignorePatterns.contains { $0.matches(path) } }

    /// `name` ends in "." + `ext`, ASCII case ignored, with something before the dot.
    private func hasExtension(_ name: UnsafeBufferPointer<UInt8>, _ ext: String) -> Bool {
        // Over the String's bytes: walking its UTF-8 view backwards cost twice as much.
        var ext = ext
        return ext.withUTF8 { ext in
            var index = name.count
            for byte in ext.reversed() {
                index -= 1
                guard index > 0, asciiLower(name[index]) == asciiLower(byte) else { return false }
            }
            index -= 1
            return index > 0 && name[index] == UInt8(ascii: ".")
        }
    }

    private func asciiLower(_ byte: UInt8) -> UInt8 {
        byte >= 65 && byte <= 90 ? byte + 32 : byte
    }
}

/// A certificate file found by a scan, with what `stat` said (as a `FileVersion`: the first
/// scan of 100,000 files holds them all at once), to tell later scans whether it changed
/// without reading it.
struct DiscoveredFile: Equatable {
    var path: FilePath
    var version: FileVersion
    /// Index of the configured location it was found under (for its HAProxy sockets).
    var location: Int

    init(path: FilePath, status: FileStatus, location: Int) {
        self.path = path
        version = FileVersion(status)
        self.location = location
    }
}

/// What lets a periodic rescan take a file as unchanged without a `stat`: the kernel would
/// have said otherwise. For a directory whose inotify watch was in place through the
/// previous full look at it, with no event lost since, on a file system whose changes all
/// raise events (`OpenDirectory.changesRaiseEvents`), a regular file that the listing shows
/// under an inode already known was neither replaced (a new inode) nor written, touched or
/// chmod'ed (events the watcher handles as they come). Such a file is only counted: no
/// path is built, nothing is looked up by name. Symbolic links are always stat'ed: a change
/// to their target raises no event in the directory that holds the link.
struct UnchangedFileShortcut {
    /// Directories watched, with no event lost, since their files were last stat'ed.
    var watchedDirectories: Set<FilePath>
    /// The inode numbers of the files the caller knows. Numbers only, not devices (8 bytes
    /// fewer per certificate kept): a file of another file system with a known number would
    /// be counted too, but only a new name can be such a file, and in a covered directory
    /// every new name raises an event, handled as it comes.
    var knownInodes: Set<UInt64>
}

/// What one scan of the configured paths found.
struct DiscoveryResult: Sendable {
    var files: [DiscoveredFile] = []
    /// Every directory scanned, with its location index: the ones to watch with inotify.
    var directories: [(path: FilePath, location: Int)] = []
    /// Paths that could not be read, each with the reason.
    var problems: [FileError] = []
    /// Known files taken as unchanged through the shortcut, counted but not listed in `files`.
    var unchangedWithoutStat = 0
    /// Our own temporary staple files left behind by a process that no longer runs (a
    /// kill -9 in the middle of a write): safe to delete.
    var staleTemporaryFiles: [FilePath] = []
}

/// Walks the configured paths. Stats each candidate (cheap) but reads none: parsing happens
/// only for files whose stat changed.
enum CertificateDiscovery {
    static func scan(_ locations: [FilePath], rules: DiscoveryRules,
                     shortcut: UnchangedFileShortcut? = nil) -> DiscoveryResult {
        var result = DiscoveryResult()
        var walk = Walk(rules: rules, shortcut: shortcut)
        for (index, location) in locations.enumerated() {
            let status: FileStatus
            do {
                status = try FileSystem.status(location)
            } catch {
                result.problems.append(error)
                continue
            }
            switch status.kind {
            case .directory:
                walk.directory(location, status: status, depth: 0, location: index, into: &result)
            case .regular:
                if rules.isExplicitCandidate(location.lastComponent) && !rules.isIgnored(location) {
                    walk.namedFiles = true
                    result.files.append(DiscoveredFile(path: location, status: status, location: index))
                }
            default:
                result.problems.append(FileError(path: location, operation: "scan", reason: .notRegularFile))
            }
        }
        if walk.namedFiles { result.files = firstOfEachPath(result.files) }
        return result
    }

    /// A file named on the command line may also be found in a scanned directory: the first
    /// sighting counts.
    private static func firstOfEachPath(_ files: [DiscoveredFile]) -> [DiscoveredFile] {
        var seen = Set<FilePath>()
        return files.filter { seen.insert($0.path).inserted }
    }

    /// The state of one scan: what was already visited, so that symlink loops, bind mounts
    /// and overlapping configured paths are each walked once. Each directory is listed once,
    /// so the paths found in directories are distinct without a set of them (which cost a
    /// hash of every path at every rescan); only a file named as a location can repeat one.
    private struct Walk {
        let rules: DiscoveryRules
        let shortcut: UnchangedFileShortcut?
        var visitedDirectories = Set<DirectoryIdentity>()
        /// A configured location was a file.
        var namedFiles = false

        init(rules: DiscoveryRules, shortcut: UnchangedFileShortcut?) {
            self.rules = rules
            self.shortcut = shortcut
        }

        /// The shortcut, when it holds for this directory.
        private func shortcut(for directory: FilePath, _ opened: OpenDirectory) -> UnchangedFileShortcut? {
            guard let shortcut, shortcut.watchedDirectories.contains(directory), opened.changesRaiseEvents else {
                return nil
            }
            return shortcut
        }

        mutating func directory(_ directory: FilePath, status: FileStatus, depth: Int, location: Int,
                                into result: inout DiscoveryResult) {
            guard visitedDirectories.insert(DirectoryIdentity(status)).inserted else { return }
            result.directories.append((directory, location))
            let opened: OpenDirectory
            do {
                opened = try OpenDirectory(directory)
            } catch {
                result.problems.append(error)
                return
            }
            let shortcut = shortcut(for: directory, opened)
            var subdirectories: [(FilePath, FileStatus)] = []
            do {
                try opened.forEachEntry { entry in
                    visit(entry, in: directory, opened, status: status, shortcut: shortcut, depth: depth,
                          location: location, subdirectories: &subdirectories, into: &result)
                }
            } catch {
                result.problems.append(error)
                return
            }
            for (path, subStatus) in subdirectories.sorted(by: { $0.0 < $1.0 }) {
                self.directory(path, status: subStatus, depth: depth + 1, location: location, into: &result)
            }
        }

        /// One name of `directory`'s listing: taken (a certificate file), counted (a known
        /// file the shortcut vouches for), kept for descent (a subdirectory), or passed over.
        private func visit(_ entry: borrowing ListedName, in directory: FilePath, _ opened: OpenDirectory,
                           status: FileStatus, shortcut: UnchangedFileShortcut?, depth: Int, location: Int,
                           subdirectories: inout [(FilePath, FileStatus)], into result: inout DiscoveryResult) {
            let name = entry.bytes
            if name.endsWith(FileSystem.temporarySuffix) {
                let temporary = entry.makeName()
                if FileSystem.isStaleTemporaryFile(temporary) {
                    result.staleTemporaryFiles.append(directory.appending(temporary))
                    return
                }
            }
            let isCandidate = rules.isCandidate(name)
            let mayDescend = rules.recursive && depth < rules.maximumDepth && entry.kind != .regular
                && name.first != UInt8(ascii: ".")
            guard isCandidate || mayDescend else { return }
            // A known file passed the ignore patterns when it was found, and they change
            // only with a reload, whose scan stats everything.
            if isCandidate, entry.kind == .regular, let shortcut, shortcut.knownInodes.contains(entry.inode) {
                result.unchangedWithoutStat += 1
                return
            }
            let listedName = entry.makeName()
            let path = directory.appending(listedName)
            guard !rules.isIgnored(path) else { return }
            let entryStatus: FileStatus
            do {
                entryStatus = try opened.status(of: listedName)
            } catch {
                // Gone since the listing, or a dangling link: only worth a word if it
                // looked like a certificate.
                if isCandidate { result.problems.append(error) }
                return
            }
            if entryStatus.kind == .directory && mayDescend {
                subdirectories.append((path, entryStatus))
            } else if entryStatus.kind == .regular && isCandidate {
                result.files.append(DiscoveredFile(path: path, status: entryStatus, location: location))
            }
        }
    }

    private struct DirectoryIdentity: Hashable {
        var device: UInt64
        var inode: UInt64
        init(_ status: FileStatus) {
            device = status.device
            inode = status.inode
        }
    }
}
