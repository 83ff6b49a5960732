import Reactor

/// Text from outside (certificates, OpenSSL, responders, HAProxy, file names) goes into
/// one-line log messages: nothing in it may end the line or forge another one.
enum LogText {
    /// ASCII only: control bytes and non-ASCII become `\xNN`, and the length is capped, so
    /// a hostile certificate cannot flood or forge log lines.
    static func sanitised(_ text: String, limit: Int) -> String {
        var result: [UInt8] = []
        for (count, byte) in text.utf8.enumerated() {
            if count >= limit {
                result.append(contentsOf: "...".utf8)
                break
            }
            if (0x20..<0x7f).contains(byte) { result.append(byte) } else { ASCII.appendEscape(byte, to: &result) }
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Any UTF-8 kept, tabs kept; line feed and carriage return become `\n` and `\r`, other
    /// control bytes `\xNN`.
    static func singleLine(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 }) else { return text }
        var result: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\n"): result.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): result.append(contentsOf: "\\r".utf8)
            case UInt8(ascii: "\t"): result.append(byte)
            case ..<0x20: ASCII.appendEscape(byte, to: &result)
            default: result.append(byte)
            }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
