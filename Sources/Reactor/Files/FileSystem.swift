import Glibc

/// What `stat` says about a file, reduced to what change detection and discovery need.
public struct FileStatus: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case regular, directory, symlink, other }

    public var kind: Kind
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    /// Modification and status-change times in nanoseconds since the epoch: a `touch`
    /// changes both, a rename-in changes the inode.
    public var modified: Int64
    public var changed: Int64
    public var mode: UInt32

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        modified = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        changed = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        mode = UInt32(st.st_mode)
    }
}

/// One name in a directory listing, with the type readdir reported (which may be unknown).
public struct DirectoryEntry: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case regular, directory, symlink, other, unknown }
    public var name: FilePath
    public var kind: Kind

    public init(name: FilePath, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}

/// Blocking file operations. Local files only: reads are capped and small, writes are a few
/// KiB, so the loop does them inline rather than on a thread.
public enum FileSystem {
    /// Reads a whole regular file, refusing more than `limit` bytes. Symlinks are followed
    /// (certificates are often links), devices and FIFOs are refused so a read never blocks.
    public static func readFile(_ path: FilePath, limit: Int) throws(FileError) -> [UInt8] {
        let fd = path.withCString { open($0, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) }
        guard fd >= 0 else { throw FileError(path: path, operation: "open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path: path, operation: "fstat") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw FileError(path: path, operation: "read", reason: .notRegularFile)
        }
        if st.st_size > limit { throw FileError(path: path, operation: "read", reason: .tooLarge(limit: limit)) }
        // Read one byte past the limit: the file may have grown since fstat.
        var buffer = [UInt8](repeating: 0, count: Int(st.st_size) + 1)
        var filled = 0
        while true {
            if filled == buffer.count {
                if buffer.count > limit { break }
                buffer.append(contentsOf: repeatElement(0, count: min(buffer.count, limit + 1 - buffer.count)))
            }
            let got = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + filled, raw.count - filled)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw FileError(path: path, operation: "read")
            }
            if got == 0 { break }
            filled += got
        }
        if filled > limit { throw FileError(path: path, operation: "read", reason: .tooLarge(limit: limit)) }
        buffer.removeSubrange(filled...)
        return buffer
    }

    public static func status(_ path: FilePath, followSymlinks: Bool = true) throws(FileError) -> FileStatus {
        var st = stat()
        let result = path.withCString { followSymlinks ? stat($0, &st) : lstat($0, &st) }
        guard result == 0 else { throw FileError(path: path, operation: followSymlinks ? "stat" : "lstat") }
        return FileStatus(st)
    }

    /// The names in a directory, without "." and "..", in no particular order.
    public static func listDirectory(_ path: FilePath) throws(FileError) -> [DirectoryEntry] {
        try OpenDirectory(path).entries()
    }

    /// How many names the file at `path` has (hard links; the name itself if a symlink); nil
    /// if it cannot be stat'ed.
    public static func linkCount(_ path: FilePath) -> UInt64? {
        var st = stat()
        guard path.withCString({ lstat($0, &st) }) == 0 else { return nil }
        return UInt64(st.st_nlink)
    }

    /// The canonical absolute path, all links resolved.
    public static func realPath(_ path: FilePath) throws(FileError) -> FilePath {
        guard let resolved = path.withCString({ realpath($0, nil) }) else {
            throw FileError(path: path, operation: "realpath")
        }
        defer { free(resolved) }
        return FilePath(cString: resolved)
    }

    /// One directory; an existing one is no error (it may be a symlink: check if that matters).
    public static func makeDirectory(_ path: FilePath, mode: mode_t = 0o755) throws(FileError) {
        guard path.withCString({ mkdir($0, mode) }) == 0 || errno == EEXIST else {
            throw FileError(path: path, operation: "mkdir")
        }
    }

    public static func remove(_ path: FilePath) throws(FileError) {
        guard path.withCString({ unlink($0) }) == 0 else { throw FileError(path: path, operation: "unlink") }
    }

    /// Replaces `path` with `bytes` so that a reader sees either the old file or the whole new
    /// one, never a mix, even across a crash: write a hidden temporary file beside it
    /// (O_EXCL|O_NOFOLLOW, so a planted link cannot redirect the write), fsync, rename over
    /// the target, fsync the directory. On any failure the temporary file is removed and the
    /// target is untouched.
    public static func writeAtomically(_ bytes: [UInt8], to path: FilePath, mode: mode_t = 0o644) throws(FileError) {
        try install(bytes, at: path, mode: mode, operation: "rename", keepsTemporary: false) { rename($0, $1) }
    }

    /// Creates `path` holding `bytes`, whole or not at all, and never replaces an existing
    /// file (it fails with EEXIST instead): as `writeAtomically`, but the durable temporary
    /// file is hard-linked to the name, which link(2) refuses when the name exists, and then
    /// removed.
    public static func createAtomically(_ bytes: [UInt8], at path: FilePath, mode: mode_t = 0o644) throws(FileError) {
        try install(bytes, at: path, mode: mode, operation: "link", keepsTemporary: true) { link($0, $1) }
    }

    /// Writes a durable temporary file beside `path` and gives it that name with `place`
    /// (from, to). The temporary name is removed on failure, and after success when `place`
    /// left it (`keepsTemporary`); the new name is then made durable.
    private static func install(_ bytes: [UInt8], at path: FilePath, mode: mode_t, operation: String,
                                keepsTemporary: Bool,
                                _ place: (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Int32) throws(FileError) {
        let (temporary, fd) = try createTemporaryFile(bytes, beside: path, mode: mode)
        var failure: FileError?
        if fsync(fd) != 0 { failure = FileError(path: temporary, operation: "fsync") }
        close(fd)
        if failure == nil, temporary.withCString({ from in path.withCString { to in place(from, to) } }) != 0 {
            failure = FileError(path: path, operation: operation)
        }
        if failure != nil || keepsTemporary { _ = temporary.withCString { unlink($0) } }
        if let failure { throw failure }
        // The new name is durable only once the directory entry is: without this a crash can
        // bring back the old file (harmless) or, on some file systems, an empty name.
        syncDirectory(path.directory)
    }

    /// Writes `bytes` to a new hidden file in `path`'s directory, for a rename over `path`
    /// once its data is durable, and returns it with its descriptor still open (to sync it;
    /// the caller closes it). Created exclusively and without following links, so a name
    /// planted in advance cannot redirect the write. On failure nothing is left behind.
    ///
    /// `creation` is what the caller knows of its process (its pid, its umask), learnt once:
    /// a writer of 100,000 staples saves a `getpid` and, when the umask leaves `mode`
    /// whole, an `fchmod` per file.
    static func createTemporaryFile(_ bytes: [UInt8], beside path: FilePath, mode: mode_t,
                                    creation: FileCreation = FileCreation()) throws(FileError)
        -> (path: FilePath, fd: Int32) {
        let temporary = path.directory.appending(temporaryName(for: path.lastComponent, processID: creation.processID))
        let fd = temporary.withCString {
            open($0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        }
        guard fd >= 0 else { throw FileError(path: temporary, operation: "create") }
        var failure: FileError?
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + written, raw.count - written) }
            if result < 0 {
                if errno == EINTR { continue }
                failure = FileError(path: temporary, operation: "write")
                break
            }
            written += result
        }
        // open() applied the umask: put back what it took away, if anything.
        if failure == nil && creation.umask & mode != 0 && fchmod(fd, mode) != 0 {
            failure = FileError(path: temporary, operation: "fchmod")
        }
        if let failure {
            close(fd)
            _ = temporary.withCString { unlink($0) }
            throw failure
        }
        return (temporary, fd)
    }

    /// Makes the names created or renamed in `directory` durable. Best effort: a directory
    /// that cannot be opened or synced leaves the rename done, only less durable.
    public static func syncDirectory(_ directory: FilePath) {
        let fd = directory.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Hidden (HAProxy skips dot-files) and unique to this process and write.
    static func temporaryName(for name: FilePath, processID: pid_t = getpid()) -> FilePath {
        temporaryCounter &+= 1
        return FilePath(bytes: [UInt8(ascii: ".")] + name.bytes
            + Array(".\(processID).\(temporaryCounter)\(temporarySuffix)".utf8))
    }

    /// Every temporary file ends with this, so discovery and cleanup can recognise them.
    public static let temporarySuffix = ".stapler-tmp"

    /// Whether `name` is one of our temporary files (`.<name>.<pid>.<counter>.stapler-tmp`)
    /// whose writer process no longer runs: a leftover of a crash, safe to remove.
    public static func isStaleTemporaryFile(_ name: FilePath) -> Bool {
        guard name.hasSuffix(temporarySuffix) else { return false }
        let fields = name.bytes.dropLast(temporarySuffix.utf8.count).split(separator: UInt8(ascii: "."))
        guard fields.count >= 3, let pid = pid_t(String(decoding: fields[fields.count - 2], as: UTF8.self)) else {
            return false
        }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    private nonisolated(unsafe) static var temporaryCounter: UInt64 = 0
}

/// What creating a file depends on in the creating process, read once (two system calls)
/// by a writer that creates many: `FileSystem.createTemporaryFile`.
public struct FileCreation: Sendable {
    /// Named in temporary files, so that a later run can tell a dead writer's leftovers.
    public let processID: pid_t
    /// The bits open(2) clears from a new file's mode.
    public let umask: mode_t

    /// Reads both now; call it after any fork that makes the writing process (`-D`).
    public init() {
        processID = getpid()
        // umask(2) can only be read by setting it: put the same value back at once (one
        // thread, so no file is created in between).
        let current = Glibc.umask(0o077)
        Glibc.umask(current)
        umask = current
    }
}
