@testable import Stapler
import XCTest

/// The pid file is removed at exit only if it still names this process: a successor may
/// have written its own.
final class ProcessControlPidFileTests: XCTestCase {
    func testAFileNamesThePidOnItsFirstLineOnly() {
        XCTAssertTrue(ProcessControl.pidFile(Array("4242\n".utf8), names: 4242))
        XCTAssertTrue(ProcessControl.pidFile(Array("4242".utf8), names: 4242))
        XCTAssertTrue(ProcessControl.pidFile(Array("\n\n4242\nother".utf8), names: 4242), "empty lines are skipped")
        XCTAssertFalse(ProcessControl.pidFile(Array("42420\n".utf8), names: 4242))
        XCTAssertFalse(ProcessControl.pidFile(Array("1\n4242\n".utf8), names: 4242))
        XCTAssertFalse(ProcessControl.pidFile(Array(" 4242\n".utf8), names: 4242))
        XCTAssertFalse(ProcessControl.pidFile([], names: 4242))
        XCTAssertFalse(ProcessControl.pidFile([0xFF, 0x0A], names: 4242))
    }
}
