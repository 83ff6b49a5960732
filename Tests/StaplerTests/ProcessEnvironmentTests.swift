import Glibc
@testable import Stapler
import XCTest

final class ProcessEnvironmentTests: XCTestCase {
    func testTheValueRunsFromTheFirstEqualsSignAndEntriesWithoutOneAreDropped() {
        let environment = ProcessEnvironment.dictionary(["HOME=/home/a=b", "NOTIFY_SOCKET=", "JUNK", "=x", "é=\u{FFFD}"])
        XCTAssertEqual(environment, ["HOME": "/home/a=b", "NOTIFY_SOCKET": "", "": "x", "é": "\u{FFFD}"])
    }

    func testALaterEntryForTheSameNameWins() {
        XCTAssertEqual(ProcessEnvironment.dictionary(["HOME=/a", "HOME=/b"]), ["HOME": "/b"])
    }

    func testTheCurrentEnvironmentHoldsThisProcessesPath() {
        XCTAssertEqual(ProcessEnvironment.current()["PATH"].map { String(cString: getenv("PATH")) == $0 }, true)
    }
}
