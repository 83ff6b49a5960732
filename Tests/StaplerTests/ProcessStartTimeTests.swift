import Glibc
import Reactor
@testable import Stapler
import XCTest

/// The start time from /proc texts: the real ones of this process, and hostile variants of
/// the command name and fields.
final class ProcessStartTimeTests: XCTestCase {
    private func selfStat(command: String, startTicks: String) -> [UInt8] {
        // pid (comm) state, then fields 4..21, then starttime (22) and more.
        let fields = ["S"] + (4...21).map { String($0) } + [startTicks, "9", "10"]
        return Array("4242 (\(command)) \(fields.joined(separator: " "))\n".utf8)
    }

    private let systemStat = Array("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n".utf8)

    func testStartIsBootTimePlusStartTicksInSeconds() {
        XCTAssertEqual(ProcessStartTime.parse(selfStat: selfStat(command: "stapler", startTicks: "12345"),
                                              systemStat: systemStat, ticksPerSecond: 100), 1_700_000_123)
    }

    func testACommandNameWithSpacesAndParenthesesDoesNotShiftTheFields() {
        XCTAssertEqual(ProcessStartTime.parse(selfStat: selfStat(command: "a) b (c) 7 8", startTicks: "200"),
                                              systemStat: systemStat, ticksPerSecond: 100), 1_700_000_002)
    }

    func testMissingOrMalformedFieldsGiveNothing() {
        let good = selfStat(command: "stapler", startTicks: "100")
        XCTAssertNil(ProcessStartTime.parse(selfStat: Array(good.prefix(30)), systemStat: systemStat, ticksPerSecond: 100))
        XCTAssertNil(ProcessStartTime.parse(selfStat: Array("no parenthesis".utf8), systemStat: systemStat,
                                            ticksPerSecond: 100))
        XCTAssertNil(ProcessStartTime.parse(selfStat: selfStat(command: "s", startTicks: "x1"), systemStat: systemStat,
                                            ticksPerSecond: 100))
        XCTAssertNil(ProcessStartTime.parse(selfStat: good, systemStat: Array("cpu 1\n".utf8), ticksPerSecond: 100))
        XCTAssertNil(ProcessStartTime.parse(selfStat: good, systemStat: systemStat, ticksPerSecond: 0))
        XCTAssertNil(ProcessStartTime.parse(selfStat: good, systemStat: systemStat, ticksPerSecond: -1))
    }

    /// Would trap on the addition before: the largest boot time plus any ticks.
    func testASumPastInt64IsRefusedNotATrap() {
        XCTAssertNil(ProcessStartTime.parse(selfStat: selfStat(command: "s", startTicks: "100"),
                                            systemStat: Array("btime 9223372036854775807\n".utf8), ticksPerSecond: 1))
        XCTAssertNil(ProcessStartTime.parse(selfStat: selfStat(command: "s", startTicks: "-9223372036854775808"),
                                            systemStat: Array("btime -1\n".utf8), ticksPerSecond: 1))
    }

    func testThisProcessStartedBeforeNowAndAfterBoot() throws {
        let stat = try XCTUnwrap(try? FileSystem.readFile("/proc/self/stat", limit: 1 << 16))
        let system = try XCTUnwrap(try? FileSystem.readFile("/proc/stat", limit: 1 << 20))
        let start = try XCTUnwrap(ProcessStartTime.parse(selfStat: stat, systemStat: system,
                                                         ticksPerSecond: Int64(sysconf(Int32(_SC_CLK_TCK)))))
        XCTAssertLessThanOrEqual(start, UTCTime.now())
        XCTAssertGreaterThan(start, UTCTime.now() - 86_400 * 365)
    }
}
