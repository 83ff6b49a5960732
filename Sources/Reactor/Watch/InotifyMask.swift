import Glibc

/// inotify event bits (man 7 inotify), as a set.
public struct InotifyMask: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let modify = InotifyMask(rawValue: UInt32(IN_MODIFY))
    public static let attrib = InotifyMask(rawValue: UInt32(IN_ATTRIB))
    public static let closeWrite = InotifyMask(rawValue: UInt32(IN_CLOSE_WRITE))
    public static let movedFrom = InotifyMask(rawValue: UInt32(IN_MOVED_FROM))
    public static let movedTo = InotifyMask(rawValue: UInt32(IN_MOVED_TO))
    public static let create = InotifyMask(rawValue: UInt32(IN_CREATE))
    public static let delete = InotifyMask(rawValue: UInt32(IN_DELETE))
    public static let deleteSelf = InotifyMask(rawValue: UInt32(IN_DELETE_SELF))
    public static let moveSelf = InotifyMask(rawValue: UInt32(IN_MOVE_SELF))
    /// The watch was removed (explicitly, or because its directory went away).
    public static let ignored = InotifyMask(rawValue: UInt32(IN_IGNORED))
    /// The kernel queue overflowed: events were lost, everything must be rescanned.
    public static let queueOverflow = InotifyMask(rawValue: UInt32(IN_Q_OVERFLOW))
    public static let unmounted = InotifyMask(rawValue: UInt32(IN_UNMOUNT))
    /// The name is a directory.
    public static let isDirectory = InotifyMask(rawValue: UInt32(IN_ISDIR))
    /// Do not follow a symlink given as the watched path.
    /// Only watch the path if it is a directory.
    public static let onlyDirectory = InotifyMask(rawValue: UInt32(IN_ONLYDIR))

    public var description: String {
        let names: [(InotifyMask, String)] = [
            (.modify, "MODIFY"), (.attrib, "ATTRIB"), (.closeWrite, "CLOSE_WRITE"), (.movedFrom, "MOVED_FROM"),
            (.movedTo, "MOVED_TO"), (.create, "CREATE"), (.delete, "DELETE"), (.deleteSelf, "DELETE_SELF"),
            (.moveSelf, "MOVE_SELF"), (.ignored, "IGNORED"), (.queueOverflow, "Q_OVERFLOW"),
            (.unmounted, "UNMOUNT"), (.isDirectory, "ISDIR"),
        ]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: "|")
    }
}
