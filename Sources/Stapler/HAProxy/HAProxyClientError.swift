import Reactor

/// Why a HAProxy stats socket cannot take staples right now, with the socket's path, for one
/// log line. Staples waiting for it stay queued and are retried with backoff.
struct HAProxyClientError: Error, Equatable, CustomStringConvertible {
    enum Reason: Equatable {
        /// Could not connect, or the connection broke or went silent (see `UnixStreamError`).
        case connection(UnixStreamError.Reason)
        /// The socket's level is too low for `command`: it needs `level admin`.
        case permissionDenied(command: String)
        /// This HAProxy does not know `command` (too old, or built without OpenSSL).
        case unknownCommand(command: String)
        /// Another client left a `set ssl cert` transaction open for `certificate`; HAProxy
        /// allows one at a time, so staples that need a transaction wait for it to end.
        case foreignTransaction(certificate: FilePath)
        case unexpectedAnswer(command: String, answer: String)
        case answerTooLarge(command: String, limit: Int)
    }

    let socket: FilePath
    let reason: Reason

    /// Failures of the connection itself, as opposed to refusals of a command on a working one.
    var isConnectionFailure: Bool {
        if case .connection = reason { return true }
        return false
    }

    var description: String {
        let detail: String
        switch reason {
        case .connection(let reason):
            detail = UnixStreamError(path: socket, reason: reason).reasonDescription
        case .permissionDenied(let command):
            detail = "permission denied for '\(command)' (the stats socket needs 'level admin')"
        case .unknownCommand(let command):
            detail = "HAProxy does not know '\(command)'"
        case .foreignTransaction(let certificate):
            detail = "another client has an uncommitted 'set ssl cert' transaction for \(certificate)"
        case .unexpectedAnswer(let command, let answer):
            detail = "unexpected answer to '\(command)': \(answer)"
        case .answerTooLarge(let command, let limit):
            detail = "answer to '\(command)' longer than \(limit) bytes"
        }
        return "HAProxy socket \(socket): \(detail)"
    }
}
