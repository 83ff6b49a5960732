/// Messages over a byte stream (a socketpair between two processes): each frame is its
/// length as 4 bytes, big-endian, then that many bytes. The reader names the largest frame it
/// takes: a length beyond that is refused as soon as its 4 bytes are in, before anything is
/// kept for it, so a peer can never make the reader hold more than one frame and one read.
public struct FrameDecoder: Sendable {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// A frame announced longer than the reader's limit: the peer is broken or hostile,
        /// and nothing after it can be trusted to start on a frame boundary.
        case tooLong(length: Int, limit: Int)

        public var description: String {
            switch self {
            case .tooLong(let length, let limit): "a frame of \(length) bytes, over the \(limit)-byte limit"
            }
        }
    }

    public static let headerSize = 4

    public let limit: Int
    private var buffer: [UInt8] = []
    /// Where the next frame starts in `buffer`: consumed bytes are dropped in bulk, not one
    /// frame at a time.
    private var start = 0
    private var failure: Failure?

    public init(limit: Int) {
        precondition(limit >= 0 && limit <= Int(UInt32.max), "a frame length is 4 bytes")
        self.limit = limit
    }

    /// The bytes of a frame: length, then payload.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        precondition(payload.count <= Int(UInt32.max), "a frame length is 4 bytes")
        let length = UInt32(payload.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + payload
    }

    /// Bytes as they were read, cut anywhere.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        guard failure == nil else { return }
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame's payload; nil until one is complete. Once a frame is refused the
    /// stream is broken for good: every later call throws the same failure.
    public mutating func next() throws(Failure) -> [UInt8]? {
        if let failure { throw failure }
        guard buffer.count - start >= Self.headerSize else { return nil }
        let length = buffer[start..<start + Self.headerSize].reduce(0) { $0 << 8 | Int($1) }
        guard length <= limit else {
            failure = .tooLong(length: length, limit: limit)
            buffer = []
            start = 0
            throw failure!
        }
        guard buffer.count - start - Self.headerSize >= length else { return nil }
        let payloadStart = start + Self.headerSize
        start = payloadStart + length
        return Array(buffer[payloadStart..<start])
    }

    /// Bytes of a frame not complete yet: at the end of the stream, a frame cut short.
    public var pendingBytes: Int { buffer.count - start }
}
