import COpenSSL
import Glibc

/// One entry of OpenSSL's per-thread error queue, reduced to what a log line and a
/// classification need.
struct OpenSSLError: Equatable, Sendable {
    let library: Int32
    let reason: Int32
    /// The detail OpenSSL attached, if any ("Verify error: certificate has expired").
    let detail: String?
    /// The reason text plus the detail ("certificate verify error: Verify error: certificate
    /// has expired").
    let text: String
}

/// OpenSSL reports failures on a per-thread queue that outlives the call which failed. Every
/// operation here drains it when done, so one failure never leaks into the next log line.
enum OpenSSLErrorQueue {
    /// Removes every queued error and returns them, oldest first (at most a few: a hostile
    /// input must not make a long message).
    static func drain() -> [OpenSSLError] {
        var errors: [OpenSSLError] = []
        while true {
            var data: UnsafePointer<CChar>?
            var flags: Int32 = 0
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { break }
            guard errors.count < 4 else { continue }
            let reason = ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)"
            var detail: String?
            if let data, flags & ERR_TXT_STRING != 0, data.pointee != 0 {
                detail = LogText.sanitised(String(cString: data), limit: 200)
            }
            errors.append(OpenSSLError(library: ERR_GET_LIB(code), reason: ERR_GET_REASON(code), detail: detail,
                                       text: LogText.sanitised(reason, limit: 100) + (detail.map { ": " + $0 } ?? "")))
        }
        return errors
    }

    /// The queued errors as one clause ("; "-separated), or `fallback` when OpenSSL said nothing.
    static func drainDescription(fallback: String) -> String {
        let errors = drain()
        return errors.isEmpty ? fallback : errors.map(\.text).joined(separator: "; ")
    }

    static func clear() { ERR_clear_error() }
}

/// Conversions between OpenSSL's ASN.1 values and plain Swift values.
enum ASN1 {
    /// An ASN1_TIME (UTCTime or GeneralizedTime) as Unix seconds; nil if it does not parse.
    static func unixTime(_ time: UnsafePointer<ASN1_TIME>?) -> Int64? {
        guard let time else { return nil }
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Int64(timegm(&parts))
    }

    /// The content octets of an ASN1_STRING (OCTET STRING, INTEGER magnitude, ...).
    static func bytes(_ string: UnsafePointer<ASN1_STRING>?) -> [UInt8] {
        guard let string, let data = ASN1_STRING_get0_data(string) else { return [] }
        let length = Int(ASN1_STRING_length(string))
        return length > 0 ? Array(UnsafeBufferPointer(start: data, count: length)) : []
    }

    /// Decodes one DER object with an OpenSSL `d2i_*` function. Returns the object and how
    /// many bytes it used, or nil if the bytes are not such an object.
    static func decode(_ der: [UInt8],
                       _ d2i: (UnsafeMutablePointer<UnsafePointer<UInt8>?>, Int) -> OpaquePointer?)
        -> (object: OpaquePointer, consumed: Int)? {
        guard !der.isEmpty else { return nil }
        return der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let object = d2i(&cursor, buffer.count), let cursor else { return nil }
            return (object, cursor - buffer.baseAddress!)
        }
    }

    /// Encodes an object with an OpenSSL `i2d_*` function; nil if OpenSSL refuses.
    static func encode(_ i2d: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32) -> [UInt8]? {
        let length = i2d(nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d(&cursor)
        }
        return written == length ? der : nil
    }
}

/// Bytes that may hold secrets (a private key's PEM text) are overwritten before their
/// memory is released. OPENSSL_cleanse is the memset the compiler may not drop.
enum SensitiveBytes {
    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 { OPENSSL_cleanse(base, raw.count) }
        }
    }

    static func wipe(_ bytes: inout [UInt8], range: Range<Int>) {
        guard !range.isEmpty else { return }
        bytes.withUnsafeMutableBytes { raw in
            OPENSSL_cleanse(raw.baseAddress! + range.lowerBound, range.count)
        }
    }
}

/// Text from certificates and OpenSSL goes into one-line log messages: control bytes and
/// non-ASCII are escaped, and the length is capped so a hostile certificate cannot flood
/// or forge log lines.
enum LogText {
    static func sanitised(_ text: String, limit: Int) -> String {
        var result = ""
        var count = 0
        for byte in text.utf8 {
            if count >= limit {
                result += "..."
                break
            }
            switch byte {
            case 0x20..<0x7f:
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789abcdef")
                result += "\\x" + String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
            }
            count += 1
        }
        return result
    }

    static func hex<C: Collection>(_ bytes: C, uppercase: Bool = false) -> String where C.Element == UInt8 {
        let digits = Array(uppercase ? "0123456789ABCDEF".utf8 : "0123456789abcdef".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// An OpenSSL library context with only the null provider: nothing to decode keys with, so
/// a certificate parsed in it skips its public key (see `X509Certificate(der:withPublicKey:)`).
/// Loading the null provider also stops OpenSSL from loading the default one into it.
enum KeylessParsing {
    nonisolated(unsafe) static let context: OpaquePointer? = {
        guard let context = OSSL_LIB_CTX_new() else { return nil }
        guard OSSL_PROVIDER_load(context, "null") != nil else {
            OSSL_LIB_CTX_free(context)
            OpenSSLErrorQueue.clear()
            return nil
        }
        return context
    }()
}
