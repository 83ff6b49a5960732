import Glibc

/// The process environment as a dictionary, read from `environ` (no Foundation).
enum ProcessEnvironment {
    static func current() -> [String: String] {
        var entries: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            entries.append(String(cString: entry))
            pointer += 1
        }
        return dictionary(entries)
    }

    /// `NAME=value` entries by name; the value runs from the first `=`, an entry without one
    /// is not a variable, and a later entry for the same name wins.
    static func dictionary(_ entries: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for text in entries {
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
        }
        return result
    }
}
