import Glibc
import Reactor

/// Where a certificate's staple file lives.
enum StapleLocation: Equatable, Sendable {
    /// `<certificate file>.ocsp`, where HAProxy loads it at start-up.
    case besideCertificate
    /// `DIR/<certificate's absolute path>.ocsp` (`--staple-dir`): the certificate's whole path
    /// mirrored below DIR, so two `site.pem` in different directories never share a staple,
    /// and the certificate directories may be read-only.
    case under(FilePath)

    func path(forCertificate certificate: FilePath) -> FilePath {
        path(forCertificate: certificate, suffix: ".ocsp")
    }

    /// Where a fetched issuer goes: `<certificate file>.issuer` (HAProxy's convention, read at
    /// its start too), or at the certificate's mirrored path below `--staple-dir`.
    func issuerPath(forCertificate certificate: FilePath) -> FilePath {
        path(forCertificate: certificate, suffix: ".issuer")
    }

    private func path(forCertificate certificate: FilePath, suffix: String) -> FilePath {
        switch self {
        case .besideCertificate: return certificate.addingSuffix(suffix)
        case .under(let root): return root.appending(certificate).addingSuffix(suffix)
        }
    }

    /// The directory that holds the staples of the certificates in `directory`.
    func directory(forCertificatesIn directory: FilePath) -> FilePath {
        switch self {
        case .besideCertificate: return directory
        case .under(let root): return root.appending(directory)
        }
    }

    /// The directories a staple path needs, outermost first: `--staple-dir` itself (made on
    /// first use, its parent must exist) and those below it.
    func directoriesToCreate(for staple: FilePath) -> [FilePath] {
        guard case .under(let root) = self else { return [] }
        var directories: [FilePath] = []
        var directory = staple.directory
        while directory.bytes.count > root.bytes.count, directory.bytes.starts(with: root.bytes) {
            directories.append(directory)
            directory = directory.directory
        }
        return [root] + directories.reversed()
    }
}

/// A staple file, raw DER: read at start-up (recycling), replaced atomically after a fetch.
enum StapleFile {
    /// Same cap as a response from the network: a staple is one.
    static let maximumSize = OCSPResponseVerifier.maximumResponseSize

    /// What `write` did with a staple.
    enum WriteOutcome: Equatable, Sendable {
        /// Written to a temporary file; the writer's next commit puts it in place and calls
        /// the completion. The ticket cancels it until then.
        case staged(BatchedFileWriter.Ticket)
        /// The file already held these exact bytes; nothing was touched (no inotify event,
        /// no HAProxy reload churn, no disk write) and the completion is not called.
        case unchanged
    }

    static func path(forCertificate certificate: FilePath, in location: StapleLocation = .besideCertificate) -> FilePath {
        location.path(forCertificate: certificate)
    }

    /// The current staple of `certificate`, nil when there is none. Not verified: pass it to
    /// `OCSPResponseVerifier` before trusting it.
    static func read(forCertificate certificate: FilePath,
                     in location: StapleLocation = .besideCertificate) throws(StapleFileError) -> [UInt8]? {
        let path = path(forCertificate: certificate, in: location)
        do {
            return try FileSystem.readFile(path, limit: maximumSize)
        } catch {
            if error.errno == ENOENT { return nil }
            throw StapleFileError(path: path, reason: .file(error))
        }
    }

    /// Replaces the staple atomically (readers see the old bytes or the new, never a mix; a
    /// failure leaves the old file as it was), in `writer`'s next batch. Skips the write when
    /// the bytes are the same. A staple path that is a symlink is followed only to a target
    /// inside the staple's own directory: the daemon may run as root, and a planted link
    /// must not let it overwrite files elsewhere. Below `--staple-dir`, missing directories
    /// are created and existing ones must be real directories, not links. Errors found
    /// before the commit (the link, a full disk) are thrown; the commit's own go to
    /// `completion`.
    static func write(_ der: [UInt8], forCertificate certificate: FilePath, in location: StapleLocation = .besideCertificate,
                      using writer: BatchedFileWriter,
                      completion: @escaping (StapleFileError?) -> Void) throws(StapleFileError) -> WriteOutcome {
        let path = path(forCertificate: certificate, in: location)
        try makeDirectories(location.directoriesToCreate(for: path), for: path)
        let (target, exists) = try writeTarget(for: path, belowStapleDirectory: location != .besideCertificate)
        // A first staple (every one of a cold start) has nothing to compare with: not looking
        // the name up a second time spares the kernel a directory search per certificate.
        if exists, let existing = try? FileSystem.readFile(target, limit: maximumSize), existing == der {
            return .unchanged
        }
        do {
            let ticket = try writer.write(der, to: target) { error in
                completion(error.map { StapleFileError(path: path, reason: .file($0)) })
            }
            return .staged(ticket)
        } catch {
            throw StapleFileError(path: path, reason: .file(error))
        }
    }

    /// Creates `directories` (from `StapleLocation.directoriesToCreate`) for the file `path`.
    static func makeDirectories(_ directories: [FilePath], for path: FilePath) throws(StapleFileError) {
        for (index, directory) in directories.enumerated() {
            // `--staple-dir` itself may be a link the operator made; below it, nothing is.
            if let status = try? FileSystem.status(directory, followSymlinks: index == 0) {
                guard status.kind == .directory else {
                    throw StapleFileError(path: path, reason: .notADirectory(directory))
                }
                continue
            }
            do {
                try FileSystem.makeDirectory(directory, mode: 0o755)
            } catch {
                throw StapleFileError(path: path, reason: .file(error))
            }
        }
    }

    /// The path to replace: the staple path itself, or the file its symlink designates when
    /// that lies inside the staple's directory (or below it); and false when nothing is at
    /// the staple path.
    private static func writeTarget(for path: FilePath, belowStapleDirectory: Bool) throws(StapleFileError)
        -> (target: FilePath, exists: Bool) {
        let status: FileStatus
        do {
            status = try FileSystem.status(path, followSymlinks: false)
        } catch {
            if error.errno == ENOENT { return (path, false) }
            throw StapleFileError(path: path, reason: .file(error))
        }
        guard status.kind == .symlink else { return (path, true) }

        let directory: FilePath
        do {
            directory = try FileSystem.realPath(path.directory)
        } catch {
            throw StapleFileError(path: path, reason: .file(error))
        }
        let target = try resolvedTarget(of: path)
        guard isInside(target, directory: directory) else {
            throw StapleFileError(path: path, reason: .symlinkOutsideDirectory(target: target,
                                                                               belowStapleDirectory: belowStapleDirectory))
        }
        return (target, true)
    }

    /// Where a symlink leads: fully resolved when the target exists, else the parent
    /// resolved plus the final name (a link made before its first staple was written).
    private static func resolvedTarget(of link: FilePath) throws(StapleFileError) -> FilePath {
        if let resolved = try? FileSystem.realPath(link) { return resolved }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = link.withCString { readlink($0, &buffer, buffer.count - 1) }
        guard length > 0 else {
            throw StapleFileError(path: link, reason: .file(FileError(path: link, operation: "readlink",
                                                                      reason: .system(errno: errno))))
        }
        let text = FilePath(bytes: buffer[..<length].map { UInt8(bitPattern: $0) })
        let target = text.isAbsolute ? text : link.directory.appending(text)
        let parent: FilePath
        do {
            parent = try FileSystem.realPath(target.directory)
        } catch {
            throw StapleFileError(path: link, reason: .file(error))
        }
        let candidate = parent.appending(target.lastComponent)
        // realpath failed on the link, yet the parent resolves: the final name must be
        // missing (write creates it) or another dangling link (refused, never followed twice).
        if let status = try? FileSystem.status(candidate, followSymlinks: false), status.kind == .symlink {
            throw StapleFileError(path: link, reason: .symlinkChain(target: candidate))
        }
        return candidate
    }

    private static func isInside(_ path: FilePath, directory: FilePath) -> Bool {
        let prefix = directory.bytes.last == UInt8(ascii: "/") ? directory.bytes : directory.bytes + [UInt8(ascii: "/")]
        let name = path.lastComponent.bytes
        return path.bytes.count > prefix.count && path.bytes.starts(with: prefix)
            && name != [0x2e] && name != [0x2e, 0x2e]
    }
}

/// A staple file that cannot be read or replaced; one log line with the path.
struct StapleFileError: Error, Equatable, Sendable, CustomStringConvertible {
    enum Reason: Equatable, Sendable {
        case file(FileError)
        /// The staple path is a symlink to somewhere the daemon will not write.
        case symlinkOutsideDirectory(target: FilePath, belowStapleDirectory: Bool = false)
        /// The staple path links to a dangling link: one level is followed, never more.
        case symlinkChain(target: FilePath)
        /// Below `--staple-dir`, a name the staple's path needs as a directory is something
        /// else (a file, a symlink).
        case notADirectory(FilePath)
    }

    let path: FilePath
    let reason: Reason

    var description: String {
        switch reason {
        case .file(let error):
            return "staple \(path): \(error.operation) \(error.path == path ? "" : "\(error.path) ")failed: \(error.reasonDescription)"
        case .symlinkOutsideDirectory(let target, let belowStapleDirectory):
            let directory = belowStapleDirectory ? "its directory below --staple-dir" : "the certificate's directory"
            return "staple \(path) is a symlink to \(target), outside \(directory): not replacing it"
        case .symlinkChain(let target):
            return "staple \(path) is a symlink to another dangling symlink \(target): not following it"
        case .notADirectory(let directory):
            return "staple \(path): \(directory) is not a directory (a symlink or a file): not writing below it"
        }
    }
}
