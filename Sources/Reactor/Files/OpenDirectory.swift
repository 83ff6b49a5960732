import CEpoll
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
        try forEachEntry { entries.append(DirectoryEntry(name: $0.makeName(), kind: $0.kind)) }
        return entries
    }

    /// Calls `body` with each name of the directory, without "." and "..", in no particular
    /// order, as the listing holds it: no copy of a name is made unless `body` asks for one,
    /// since a rescan of 100,000 certificates and their staples goes through 200,000 names
    /// and keeps few of them. Read once.
    public func forEachEntry(_ body: (borrowing ListedName) -> Void) throws(FileError) {
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw FileError(path: path, operation: "readdir") }
                return
            }
            let length = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { strnlen($0, 256) }
            }
            let kind: DirectoryEntry.Kind
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_REG): kind = .regular
            case Int32(DT_DIR): kind = .directory
            case Int32(DT_LNK): kind = .symlink
            case Int32(DT_UNKNOWN): kind = .unknown
            default: kind = .other
            }
            let inode = UInt64(entry.pointee.d_ino)
            withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                let name = UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                               count: length)
                let dot = UInt8(ascii: ".")
                if name.count <= 2 && name.allSatisfy({ $0 == dot }) { return }
                body(ListedName(bytes: name, kind: kind, inode: inode))
            }
        }
    }

    /// Whether every change to the files of this directory passes through this kernel, so
    /// that an inotify watch on it sees them all: true for the disk and memory file systems
    /// of one machine; false for network and FUSE file systems (writes made by other hosts
    /// raise no event here), for overlayfs (changes made to its layers directly raise none)
    /// and for anything unknown.
    public var changesRaiseEvents: Bool {
        let type = cepoll_filesystem_type(dirfd(stream))
        return type >= 0 && Self.localFileSystemTypes.contains(UInt64(type))
    }

    /// `statfs.f_type` magic numbers (linux/magic.h) of file systems local to this kernel.
    private static let localFileSystemTypes: Set<UInt64> = [
        0xEF53, // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
    ]

    /// What `stat` says about `name` in this directory, symlinks followed. Errors name the
    /// whole path.
    public func status(of name: FilePath) throws(FileError) -> FileStatus {
        var st = stat()
        let result = name.withCString { fstatat(dirfd(stream), $0, &st, 0) }
        guard result == 0 else { throw FileError(path: path.appending(name), operation: "stat") }
        return FileStatus(st)
    }
}

/// One name of a directory listing, valid only during the call it is handed to.
public struct ListedName: ~Copyable {
    /// The name's bytes, pointing into the listing's buffer.
    public let bytes: UnsafeBufferPointer<UInt8>
    public let kind: DirectoryEntry.Kind
    /// The inode the name leads to (`d_ino`).
    public let inode: UInt64

    /// A copy of the name that outlives the call.
    public func makeName() -> FilePath { FilePath(bytes: bytes) }
}
