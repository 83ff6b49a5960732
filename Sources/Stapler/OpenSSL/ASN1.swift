import COpenSSL
import Glibc

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

    /// A DER SEQUENCE around `content` (definite length, short or long form).
    static func sequence(wrapping content: [UInt8]) -> [UInt8] {
        element(tag: 0x30, wrapping: content)
    }

    /// One DER element of a one-byte `tag` around `content`, with its length in the minimal
    /// definite form.
    static func element(tag: UInt8, wrapping content: [UInt8]) -> [UInt8] {
        var lengthBytes: [UInt8] = []
        var length = content.count
        if length < 0x80 {
            lengthBytes = [UInt8(length)]
        } else {
            while length > 0 {
                lengthBytes.insert(UInt8(truncatingIfNeeded: length), at: 0)
                length >>= 8
            }
            lengthBytes.insert(0x80 | UInt8(lengthBytes.count), at: 0)
        }
        var der: [UInt8] = [tag]
        der.reserveCapacity(1 + lengthBytes.count + content.count)
        der += lengthBytes
        der += content
        return der
    }
}
