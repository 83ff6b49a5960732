/// The part of a response the client keeps, built from what curl's header and write
/// callbacks deliver: each status or header line as the server sent it (CRLF included), and
/// the body in pieces. No curl here, so any bytes a server can send can be fed to it.
///
/// Only the last response of a transfer counts: a redirect or a `100 Continue` starts a new
/// status line, which drops what came before it. Both caps are on what the server sent, so a
/// server cannot make the daemon hold more than `maxHeaderBytes + maxBodyBytes`.
struct HTTPResponseCollector {
    enum Overflow { case body, headers }

    let maxBodyBytes: Int
    /// Counts every header line of every response in the transfer, redirects included.
    let maxHeaderBytes: Int

    private(set) var body: [UInt8] = []
    private(set) var contentType: String?
    /// Every Cache-Control line of the last response, joined with ", " as RFC 9110 allows.
    private(set) var cacheControl: String?
    /// Which cap refused data, turning curl's write error into a clear reason.
    private(set) var overflow: Overflow?
    private var headerBytes = 0

    init(maxBodyBytes: Int, maxHeaderBytes: Int) {
        self.maxBodyBytes = max(0, maxBodyBytes)
        self.maxHeaderBytes = max(0, maxHeaderBytes)
    }

    /// Takes a piece of the body. Returns the number of bytes taken: all of them, or 0 when
    /// the body would pass its cap (curl then fails the transfer with a write error).
    mutating func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.count <= maxBodyBytes - body.count else {
            overflow = .body
            return 0
        }
        body.append(contentsOf: bytes)
        return bytes.count
    }

    /// Takes one status or header line. Returns the number of bytes taken, like `receiveBody`.
    mutating func receiveHeaderLine(_ line: UnsafeRawBufferPointer) -> Int {
        headerBytes += line.count
        guard headerBytes <= maxHeaderBytes else {
            overflow = .headers
            return 0
        }
        if line.starts(with: "HTTP/".utf8) {
            // A new response (after a redirect or a 100 Continue): only the last one counts.
            contentType = nil
            cacheControl = nil
            body.removeAll()
            return line.count
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return line.count }
        let name = line[..<colon]
        if ASCII.equalsIgnoringCase(name, "content-type") {
            contentType = Self.fieldValue(line[(colon + 1)...])
        } else if ASCII.equalsIgnoringCase(name, "cache-control") {
            let value = Self.fieldValue(line[(colon + 1)...])
            cacheControl = cacheControl.map { "\($0), \(value)" } ?? value
        }
        return line.count
    }

    /// The value without surrounding whitespace, line end included (curl hands lines over
    /// with their CRLF).
    private static func fieldValue(_ bytes: Slice<UnsafeRawBufferPointer>) -> String {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end && isSpace(bytes[start]) { start += 1 }
        while end > start && isSpace(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
