import Glibc

/// A directory held open while its names are listed and looked at. `status(of:)` stats a
/// name relative to the open directory (fstatat), so a scan of a directory of 100,000
/// certificates neither makes the kernel resolve the directory's own path 100,000 times
/// nor builds a C string of each full path.
public final class OpenDirectory {
    public let path: FilePath
    private let stream: OpaquePointer

    public init(_ path: FilePath) throws(FileError) {
        guard let stream = path.withCString({ opendir($0) }) else { throw FileError(path: path, operation: "opendir") }
        self.path = path
        self.stream = stream
    }

    deinit { closedir(stream) }

    /// The names in the directory, without "." and "..", in no particular order. Read once.
    public func entries() throws(FileError) -> [DirectoryEntry] {
        var entries: [DirectoryEntry] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw FileError(path: path, operation: "readdir") }
                return entries
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { FilePath(cString: $0) }
            }
            // Byte by byte: comparing with array literals built two arrays per name.
            let dot = UInt8(ascii: ".")
            if name.bytes.count <= 2 && name.bytes.allSatisfy({ $0 == dot }) { continue }
            let kind: DirectoryEntry.Kind
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_REG): kind = .regular
            case Int32(DT_DIR): kind = .directory
            case Int32(DT_LNK): kind = .symlink
            case Int32(DT_UNKNOWN): kind = .unknown
            default: kind = .other
            }
            entries.append(DirectoryEntry(name: name, kind: kind))
        }
    }

    /// What `stat` says about `name` in this directory, symlinks followed. Errors name the
    /// whole path.
    public func status(of name: FilePath) throws(FileError) -> FileStatus {
        var st = stat()
        let result = name.withCString { fstatat(dirfd(stream), $0, &st, 0) }
        guard result == 0 else { throw FileError(path: path.appending(name), operation: "stat") }
        return FileStatus(st)
    }
}
