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
        guard let first = name.bytes.first, first != UInt8(ascii: ".") else { return false }
        guard isExplicitCandidate(name), !name.hasSuffix(FileSystem.temporarySuffix) else { return false }
        return extensions.contains { hasExtension(name.bytes, $0) }
    }

    /// A file named explicitly on the command line is taken whatever its extension, but a
    /// staple, key or issuer file named by mistake still is not.
    func isExplicitCandidate(_ name: FilePath) -> Bool {
        ![".ocsp", ".key", ".issuer"].contains { name.hasSuffix($0) }
    }

    func isIgnored(_ path: FilePath) -> Bool { ignorePatterns.contains { $0.matches(path) } }

    /// `name` ends in "." + `ext`, ASCII case ignored, with something before the dot.
    /// Runs for every name of every scan, so it allocates nothing.
    private func hasExtension(_ name: [UInt8], _ ext: String) -> Bool {
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

/// A certificate file found by a scan, with what `stat` said, to tell later scans whether it
/// changed without reading it.
struct DiscoveredFile: Equatable, Sendable {
    var path: FilePath
    var status: FileStatus
    /// Index of the configured location it was found under (for its HAProxy sockets).
    var location: Int
}

/// What one scan of the configured paths found.
struct DiscoveryResult: Sendable {
    var files: [DiscoveredFile] = []
    /// Every directory scanned, with its location index: the ones to watch with inotify.
    var directories: [(path: FilePath, location: Int)] = []
    /// Paths that could not be read, each with the reason.
    var problems: [FileError] = []
    /// Our own temporary staple files left behind by a process that no longer runs (a
    /// kill -9 in the middle of a write): safe to delete.
    var staleTemporaryFiles: [FilePath] = []
}

/// Walks the configured paths. Stats each candidate (cheap) but reads none: parsing happens
/// only for files whose stat changed.
enum CertificateDiscovery {
    static func scan(_ locations: [FilePath], rules: DiscoveryRules) -> DiscoveryResult {
        var result = DiscoveryResult()
        var walk = Walk(rules: rules)
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
        var visitedDirectories = Set<DirectoryIdentity>()
        /// A configured location was a file.
        var namedFiles = false

        init(rules: DiscoveryRules) { self.rules = rules }

        mutating func directory(_ directory: FilePath, status: FileStatus, depth: Int, location: Int,
                                into result: inout DiscoveryResult) {
            guard visitedDirectories.insert(DirectoryIdentity(status)).inserted else { return }
            result.directories.append((directory, location))
            let opened: OpenDirectory
            let entries: [DirectoryEntry]
            do {
                opened = try OpenDirectory(directory)
                entries = try opened.entries()
            } catch {
                result.problems.append(error)
                return
            }
            var subdirectories: [(FilePath, FileStatus)] = []
            for entry in entries {
                if FileSystem.isStaleTemporaryFile(entry.name) {
                    result.staleTemporaryFiles.append(directory.appending(entry.name))
                    continue
                }
                let isCandidate = rules.isCandidate(entry.name)
                let mayDescend = rules.recursive && depth < rules.maximumDepth && entry.kind != .regular
                    && entry.name.bytes.first != UInt8(ascii: ".")
                guard isCandidate || mayDescend else { continue }
                let path = directory.appending(entry.name)
                guard !rules.isIgnored(path) else { continue }
                let entryStatus: FileStatus
                do {
                    entryStatus = try opened.status(of: entry.name)
                } catch {
                    // Gone since the listing, or a dangling link: only worth a word if it
                    // looked like a certificate.
                    if isCandidate { result.problems.append(error) }
                    continue
                }
                if entryStatus.kind == .directory && mayDescend {
                    subdirectories.append((path, entryStatus))
                } else if entryStatus.kind == .regular && isCandidate {
                    result.files.append(DiscoveredFile(path: path, status: entryStatus, location: location))
                }
            }
            for (path, subStatus) in subdirectories.sorted(by: { $0.0 < $1.0 }) {
                self.directory(path, status: subStatus, depth: depth + 1, location: location, into: &result)
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
