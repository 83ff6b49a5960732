import Reactor
import XCTest

/// Length-prefixed frames as they cross a socketpair: cut anywhere, several in one read, and
/// a peer announcing more than the reader takes refused before any of it is kept.
final class FrameDecoderTests: XCTestCase {
    func testFramesCutAtEveryByteComeOutWhole() throws {
        let payloads: [[UInt8]] = [Array("first".utf8), [], Array(repeating: 0xAB, count: 300), [0]]
        let stream = payloads.flatMap(FrameDecoder.frame)
        var decoder = FrameDecoder(limit: 300)
        var seen: [[UInt8]] = []
        for byte in stream {
            decoder.append([byte])
            while let payload = try decoder.next() { seen.append(payload) }
        }
        XCTAssertEqual(seen, payloads)
        XCTAssertEqual(decoder.pendingBytes, 0)
    }

    func testSeveralFramesInOneReadAndAFrameCutShort() throws {
        var decoder = FrameDecoder(limit: 64)
        decoder.append(FrameDecoder.frame([1, 2]) + FrameDecoder.frame([3]) + FrameDecoder.frame([4, 5, 6]).prefix(5))
        XCTAssertEqual(try decoder.next(), [1, 2])
        XCTAssertEqual(try decoder.next(), [3])
        XCTAssertNil(try decoder.next(), "the third frame is not complete")
        XCTAssertEqual(decoder.pendingBytes, 5, "what the end of the stream would cut short")
        decoder.append([5, 6])
        XCTAssertEqual(try decoder.next(), [4, 5, 6])
    }

    func testALengthOverTheLimitIsRefusedFromItsHeaderAndForGood() throws {
        var decoder = FrameDecoder(limit: 1024)
        XCTAssertEqual(FrameDecoder.frame(Array(repeating: 7, count: 1024)).prefix(4), [0, 0, 4, 0])
        decoder.append([0x7F, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try decoder.next()) { error in
            XCTAssertEqual(error as? FrameDecoder.Failure, .tooLong(length: 0x7FFF_FFFF, limit: 1024))
            XCTAssertEqual("\(error)", "a frame of 2147483647 bytes, over the 1024-byte limit")
        }
        XCTAssertEqual(decoder.pendingBytes, 0, "nothing is kept for it")
        // Nothing after it starts on a frame boundary any more: a valid frame is refused too.
        decoder.append(FrameDecoder.frame([1]))
        XCTAssertThrowsError(try decoder.next())
        XCTAssertEqual(decoder.pendingBytes, 0)
    }

    func testAFrameOfExactlyTheLimitIsTaken() throws {
        var decoder = FrameDecoder(limit: 3)
        decoder.append(FrameDecoder.frame([9, 9, 9]))
        XCTAssertEqual(try decoder.next(), [9, 9, 9])
    }
}
