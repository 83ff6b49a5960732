import COpenSSL

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
