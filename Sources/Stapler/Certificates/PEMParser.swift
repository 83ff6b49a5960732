/// One `-----BEGIN label-----` ... `-----END label-----` block of a PEM file, as ranges into
/// the text it was found in (nothing is copied, so key material exists in one place only).
struct PEMBlock: Equatable, Sendable {
    let label: String
    /// The base64 body lines, between the BEGIN and END lines.
    let body: Range<Int>
    /// The whole block, BEGIN line to END line included.
    let whole: Range<Int>

    var isCertificate: Bool { label == "CERTIFICATE" || label == "X509 CERTIFICATE" }
    /// "PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", ...
    var isPrivateKey: Bool { label.hasSuffix("PRIVATE KEY") }
}

/// Why a PEM text cannot be split into blocks.
struct PEMError: Error, Equatable, Sendable, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// Splits PEM text into blocks. Written for hostile input: the caller caps the text (1 MiB),
/// the block count is capped here, anything outside blocks (comments, `openssl x509 -text`
/// output, junk) is ignored, CRLF and trailing blanks are tolerated.
enum PEMParser {
    /// A real bundle has a leaf, a few chain certificates, a key and maybe DH parameters.
    static let maximumBlocks = 64
    /// Labels are short ASCII words; a longer "label" is junk that happens to look like one.
    static let maximumLabelLength = 64

    private static let beginMarker = Array("-----BEGIN ".utf8)
    private static let endMarker = Array("-----END ".utf8)
    private static let dashes = Array("-----".utf8)

    static func blocks(in text: [UInt8]) throws(PEMError) -> [PEMBlock] {
        var blocks: [PEMBlock] = []
        var open: (label: String, start: Int, bodyStart: Int)?
        var lineStart = 0
        while lineStart < text.count {
            let newline = text[lineStart...].firstIndex(of: UInt8(ascii: "\n"))
            let lineEnd = newline ?? text.count
            let next = newline.map { $0 + 1 } ?? text.count
            let line = trimmed(text, lineStart..<lineEnd)
            if let current = open {
                if let label = marker(text, line, endMarker) {
                    guard label == current.label else {
                        throw PEMError(reason: "PEM block \(quoted(current.label)) ends with END \(quoted(label))")
                    }
                    blocks.append(PEMBlock(label: label, body: current.bodyStart..<lineStart,
                                           whole: current.start..<next))
                    open = nil
                } else if marker(text, line, beginMarker) != nil {
                    throw PEMError(reason: "PEM block \(quoted(current.label)) has no END line")
                }
            } else if let label = marker(text, line, beginMarker) {
                guard blocks.count < maximumBlocks else {
                    throw PEMError(reason: "more than \(maximumBlocks) PEM blocks")
                }
                open = (label, lineStart, next)
            }
            lineStart = next
        }
        if let current = open {
            throw PEMError(reason: "PEM block \(quoted(current.label)) has no END line (truncated file?)")
        }
        return blocks
    }

    /// The label of a `-----BEGIN label-----` (or END) line, nil if the line is not one.
    private static func marker(_ text: [UInt8], _ line: Range<Int>, _ prefix: [UInt8]) -> String? {
        guard line.count > prefix.count + dashes.count,
              text[line.lowerBound..<line.lowerBound + prefix.count].elementsEqual(prefix),
              text[(line.upperBound - dashes.count)..<line.upperBound].elementsEqual(dashes) else { return nil }
        let label = text[(line.lowerBound + prefix.count)..<(line.upperBound - dashes.count)]
        guard !label.isEmpty, label.count <= maximumLabelLength,
              label.allSatisfy({ (0x20...0x7e).contains($0) && $0 != UInt8(ascii: "-") })
        else { return nil }
        return String(decoding: label, as: UTF8.self)
    }

    /// The line without leading and trailing spaces, tabs and CR.
    private static func trimmed(_ text: [UInt8], _ line: Range<Int>) -> Range<Int> {
        var lower = line.lowerBound
        var upper = line.upperBound
        while lower < upper, isBlank(text[lower]) { lower += 1 }
        while upper > lower, isBlank(text[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    private static func isBlank(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
    }

    /// A label is echoed in messages only when it looks like one (RFC 7468: upper-case
    /// words): a mangled file can put anything on a BEGIN line, key bytes included.
    private static func quoted(_ label: String) -> String {
        let plain = label.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x20 }
        return plain ? "\"\(label)\"" : "with an unusual label"
    }
}
