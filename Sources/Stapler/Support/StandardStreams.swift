import Glibc

/// One line to standard error (a newline added if missing), written directly: no buffering
/// to lose when the process exits right after a usage or configuration error.
func standardError(_ text: String) {
    let bytes = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Text to standard output as it is (help, version, `check` reports).
func standardOutput(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}
