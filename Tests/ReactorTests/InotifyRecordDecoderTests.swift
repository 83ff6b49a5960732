import Glibc
import XCTest
@testable import Reactor

final class InotifyRecordDecoderTests: XCTestCase {
    private func record(wd: Int32, mask: UInt32, cookie: UInt32 = 0, name: String = "", length: UInt32? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: wd) { bytes += $0 }
        withUnsafeBytes(of: mask) { bytes += $0 }
        withUnsafeBytes(of: cookie) { bytes += $0 }
        let padded = length ?? UInt32((name.utf8.count + 16) / 16 * 16)
        withUnsafeBytes(of: padded) { bytes += $0 }
        let nameBytes = Array(name.utf8)
        return bytes + nameBytes + Array(repeating: 0, count: max(0, Int(padded) - nameBytes.count))
    }

    private func decode(_ bytes: [UInt8]) -> [DirectoryEvent] {
        bytes.withUnsafeBytes { InotifyRecordDecoder.events(in: $0) }
    }

    func testDecodesPackedRecordsWithPaddedNames() {
        var bytes = record(wd: 3, mask: UInt32(IN_CLOSE_WRITE), name: "cert.pem", length: 16)
        bytes += record(wd: -1, mask: UInt32(IN_Q_OVERFLOW), length: 0)
        bytes += record(wd: 4, mask: UInt32(IN_MOVED_TO), cookie: 9, name: "x", length: 16)
        bytes += [1, 2, 3] // a truncated header is ignored, not read past
        let events = decode(bytes)
        XCTAssertEqual(events.count, 3)
        XCTAssertEqual(events[0].name, "cert.pem")
        XCTAssertEqual(events[1].watch, .none)
        XCTAssertTrue(events[1].mask.contains(.queueOverflow))
        XCTAssertEqual(events[2].cookie, 9)
        XCTAssertEqual(events[2].name, "x")
    }

    func testARecordWhoseNameRunsPastTheBufferEndsTheDecodingAfterTheWholeOnes() {
        let whole = record(wd: 1, mask: UInt32(IN_CREATE), name: "a.pem")
        let cut = Array(record(wd: 2, mask: UInt32(IN_CREATE), name: "b.pem").dropLast(3))
        let events = decode(whole + cut)
        XCTAssertEqual(events.map(\.name), ["a.pem"])
    }

    func testTheLargestLengthFieldIsRefusedWithoutReadingOrOverflowing() {
        let events = decode(record(wd: 1, mask: UInt32(IN_CREATE), name: "x", length: 8) + record(
            wd: 2, mask: UInt32(IN_CREATE), length: 0).prefix(12) + [0xFF, 0xFF, 0xFF, 0xFF, 0x41])
        XCTAssertEqual(events.map(\.watch), [WatchDescriptor(rawValue: 1)])
    }

    func testANameWithoutANulTakesTheWholeLengthAndBytesAfterANulAreIgnored() {
        let unterminated = record(wd: 5, mask: UInt32(IN_MOVED_TO), name: "abcd", length: 4)
        var padded = record(wd: 6, mask: UInt32(IN_MOVED_TO), name: "ef", length: 8)
        padded[16 + 3] = UInt8(ascii: "z") // after the first NUL: not part of the name
        let events = decode(unterminated + padded)
        XCTAssertEqual(events.map(\.name), ["abcd", "ef"])
    }

    func testAnEmptyBufferAndAShortHeaderDecodeToNothing() {
        XCTAssertEqual(decode([]), [])
        XCTAssertEqual(decode(Array(record(wd: 1, mask: UInt32(IN_CREATE)).prefix(15))), [])
    }
}
