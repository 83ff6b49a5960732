import Reactor
import XCTest

/// Running an `EventLoop` inside a test: never longer than a deadline, and failing the test
/// (at the caller's line) when the deadline is what ended the run.
extension EventLoop {
    /// Runs until a handler calls `stop()`.
    public func runForTest(deadline: Duration = .seconds(20),
                           file: StaticString = #filePath, line: UInt = #line) throws {
        var expired = false
        let timer = schedule(after: deadline) { [unowned self] in
            expired = true
            self.stop()
        }
        try run()
        cancel(timer)
        if expired { XCTFail("deadline of \(deadline) passed", file: file, line: line) }
    }

    /// Runs until `condition` holds, checking it every couple of milliseconds.
    public func runForTest(deadline: Duration = .seconds(20), until condition: @escaping () -> Bool,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        guard !condition() else { return }
        var check: (() -> Void)?
        var poll: TimerHandle?
        check = { [unowned self] in
            if condition() {
                self.stop()
            } else {
                poll = self.schedule(after: .milliseconds(2)) { check?() }
            }
        }
        poll = schedule(after: .milliseconds(1)) { check?() }
        try runForTest(deadline: deadline, file: file, line: line)
        if let poll { cancel(poll) }
        check = nil
    }
}
