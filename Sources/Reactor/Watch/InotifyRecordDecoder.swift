/// Decodes what a read from an inotify descriptor returns: packed `struct inotify_event`
/// records. Swift does not import the flexible `name` member; it starts after the 16-byte
/// header and takes `len` bytes, padded with NULs.
///
/// The kernel returns whole records only, but the decoder does not count on it: a record
/// whose header or name runs past the buffer ends the decoding, and nothing is read beyond it.
enum InotifyRecordDecoder {
    /// `wd`, `mask`, `cookie` and `len`: four 32-bit words in host order.
    static let headerSize = 16

    static func events(in bytes: UnsafeRawBufferPointer) -> [DirectoryEvent] {
        var events: [DirectoryEvent] = []
        var offset = 0
        while offset + headerSize <= bytes.count {
            let wd = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameStart = offset + headerSize
            guard length <= bytes.count - nameStart else { break }
            var nameEnd = nameStart
            while nameEnd < nameStart + length && bytes[nameEnd] != 0 { nameEnd += 1 }
            events.append(DirectoryEvent(watch: WatchDescriptor(rawValue: wd), mask: InotifyMask(rawValue: mask),
                                         cookie: cookie, name: FilePath(bytes: bytes[nameStart..<nameEnd])))
            offset = nameStart + length
        }
        return events
    }
}
