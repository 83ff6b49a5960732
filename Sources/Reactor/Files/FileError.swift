import Glibc

/// A file operation that failed, with the path and the reason, ready for one log line.
public struct FileError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Reason: Equatable, Sendable {
        case system(errno: Int32)
        case tooLarge(limit: Int)
        case notRegularFile
        case notDirectory
    }

    public let path: FilePath
    public let operation: String
    public let reason: Reason

    public init(path: FilePath, operation: String, reason: Reason) {
        self.path = path
        self.operation = operation
        self.reason = reason
    }

    init(path: FilePath, operation: String, errno code: Int32 = Glibc.errno) {
        self.init(path: path, operation: operation, reason: .system(errno: code))
    }

    /// The errno behind a system failure, if that is what it was.
    public var errno: Int32? {
        if case .system(let code) = reason { return code }
        return nil
    }

    public var reasonDescription: String {
        switch reason {
        case .system(let code): return String(cString: strerror(code))
        case .tooLarge(let limit): return "larger than the \(limit)-byte limit"
        case .notRegularFile: return "not a regular file"
        case .notDirectory: return "not a directory"
        }
    }

    public var description: String { "\(path): \(operation) failed: \(reasonDescription)" }
}
