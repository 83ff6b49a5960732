import Glibc
import Reactor

/// The staple HAProxy loads at start-up: `<certificate file>.ocsp`, raw DER.
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

    static func path(forCertificate certificate: FilePath) -> FilePath {
        certificate.addingSuffix(".ocsp")
    }

    /// The current staple of `certificate`, nil when there is none. Not verified: pass it to
    /// `OCSPResponseVerifier` before trusting it.
    static func read(forCertificate certificate: FilePath) throws(StapleFileError) -> [UInt8]? {
        let path = path(forCertificate: certificate)
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
    /// inside the certificate's directory: the daemon may run as root, and a planted link
    /// must not let it overwrite files elsewhere. Errors found before the commit (the link,
    /// a full disk) are thrown; the commit's own go to `completion`.
    static func write(_ der: [UInt8], forCertificate certificate: FilePath, using writer: BatchedFileWriter,
                      completion: @escaping (StapleFileError?) -> Void) throws(StapleFileError) -> WriteOutcome {
        let path = path(forCertificate: certificate)
        let target = try writeTarget(for: path)
        if let existing = try? FileSystem.readFile(target, limit: maximumSize), existing == der {
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

    /// The path to replace: the staple path itself, or the file its symlink designates when
    /// that lies inside the staple's directory (or below it).
    private static func writeTarget(for path: FilePath) throws(StapleFileError) -> FilePath {
        let status: FileStatus
        do {
            status = try FileSystem.status(path, followSymlinks: false)
        } catch {
            if error.errno == ENOENT { return path }
            throw StapleFileError(path: path, reason: .file(error))
        }
        guard status.kind == .symlink else { return path }

        let directory: FilePath
        do {
            directory = try FileSystem.realPath(path.directory)
        } catch {
            throw StapleFileError(path: path, reason: .file(error))
        }
        let target = try resolvedTarget(of: path)
        guard isInside(target, directory: directory) else {
            throw StapleFileError(path: path, reason: .symlinkOutsideDirectory(target: target))
        }
        return target
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
        case symlinkOutsideDirectory(target: FilePath)
        /// The staple path links to a dangling link: one level is followed, never more.
        case symlinkChain(target: FilePath)
    }

    let path: FilePath
    let reason: Reason

    var description: String {
        switch reason {
        case .file(let error):
            return "staple \(path): \(error.operation) \(error.path == path ? "" : "\(error.path) ")failed: \(error.reasonDescription)"
        case .symlinkOutsideDirectory(let target):
            return "staple \(path) is a symlink to \(target), outside the certificate's directory: not replacing it"
        case .symlinkChain(let target):
            return "staple \(path) is a symlink to another dangling symlink \(target): not following it"
        }
    }
}
