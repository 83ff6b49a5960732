import Reactor
import XCTest
@testable import Stapler

/// The messages between the daemon and the `--on-update` launcher: what each side accepts
/// from the other, and the exact refusal of what a broken or compromised peer could send.
final class LauncherMessagesTests: XCTestCase {
    private let staples = Array("/etc/nginx/certs/a.pem.ocsp\n/var/lib/stapler/etc/ssl/b c.pem.ocsp\n".utf8)

    // MARK: Requests, as the launcher reads them

    func testARunRequestSurvivesTheWireAndGivesTheCommandItsEnvironment() throws {
        let request = LauncherRequest(staples: staples, timeout: .seconds(60), killGrace: .milliseconds(500))
        let decoded = try LauncherRequest.decode(request.encoded())
        XCTAssertEqual(decoded, request)
        let count = try LauncherRequest.stapleCount(decoded.staples)
        XCTAssertEqual(count, 2)
        XCTAssertEqual(UpdateCommandRun.environment(staples: decoded.staples, count: count).map { String(decoding: $0, as: UTF8.self) },
                       ["STAPLER_UPDATED_COUNT=2",
                        "STAPLER_UPDATED_STAPLES=/etc/nginx/certs/a.pem.ocsp\n/var/lib/stapler/etc/ssl/b c.pem.ocsp"])
    }

    func testOnlyStaplePathsMayBeListed() {
        let refusals: [(String, Int, String)] = [
            ("", 1, "no staple listed"),
            ("/a.pem.ocsp", 1, "no line feed at the end"),
            ("/a.pem.ocsp\n/b.pem.ocsp", 2, "no line feed at the end"),
            ("/a.pem.ocsp\n\n", 2, "not an absolute path"),
            ("etc/shadow.ocsp\n", 1, "not an absolute path"),
            ("/etc/shadow\n", 1, "does not end in .ocsp"),
            ("/.ocsp\n", 1, "does not end in .ocsp"),
            ("/certs/../../etc/x.ocsp\n", 1, "not a normalised path (an empty, . or .. component)"),
            ("/certs/./x.ocsp\n", 1, "not a normalised path (an empty, . or .. component)"),
            ("/certs//x.ocsp\n", 1, "not a normalised path (an empty, . or .. component)"),
            ("/ok.ocsp\n/x\u{0}y.ocsp\n", 2, "contains a NUL byte"),
            ("/" + String(repeating: "a", count: 4095) + ".ocsp\n", 1, "longer than 4095 bytes"),
        ]
        for (list, line, reason) in refusals {
            let request = LauncherRequest(staples: Array(list.utf8), timeout: .seconds(1), killGrace: .seconds(1))
            XCTAssertThrowsError(try LauncherRequest.decode(request.encoded()), list) { error in
                XCTAssertEqual(error as? LauncherProtocolError, .badStaples(line: line, reason: reason), list)
            }
        }
        XCTAssertEqual(try LauncherRequest.stapleCount(Array("/..ocsp\n/a/...ocsp\n".utf8)), 2, "dots inside names are fine")
    }

    func testDurationsOutsideTheirBoundsAreRefused() {
        for (timeout, grace, field) in [(Duration.zero, Duration.seconds(5), "timeout"),
                                        (.seconds(86_401), .seconds(5), "timeout"),
                                        (.seconds(60), .zero, "kill grace"),
                                        (.seconds(60), .seconds(61), "kill grace")] {
            let bytes = LauncherRequest(staples: staples, timeout: timeout, killGrace: grace).encoded()
            XCTAssertThrowsError(try LauncherRequest.decode(bytes)) { error in
                guard case .outOfRange(let named, _)? = error as? LauncherProtocolError else { return XCTFail("\(error)") }
                XCTAssertEqual(named, field)
            }
        }
        // A nanosecond count beyond Int64 cannot become a Duration: refused, not trapped on.
        XCTAssertThrowsError(try LauncherRequest.decode([1] + Array(repeating: 0xFF, count: 16) + staples))
    }

    func testUnknownAndTruncatedRequestsAreRefused() {
        XCTAssertEqual(decodeRequestError([]), .truncated(message: "run request"))
        XCTAssertEqual(decodeRequestError([0x02]), .unknownType(2))
        XCTAssertEqual(decodeRequestError([0x01, 0, 0, 0]), .truncated(message: "run request"))
        XCTAssertEqual("\(LauncherProtocolError.badStaples(line: 3, reason: "not an absolute path"))",
                       "staple list line 3: not an absolute path")
    }

    // MARK: Reports, as the daemon reads them

    func testEveryReportSurvivesTheWire() throws {
        guard case .started(let pid) = try LauncherReport.decode(LauncherReport.started(pid: 4242).encoded()) else {
            return XCTFail("not started")
        }
        XCTAssertEqual(pid, 4242)

        guard case .spawnFailed(let call, let errno) = try LauncherReport.decode(
            LauncherReport.spawnFailed(call: "posix_spawn", errno: ENOENT).encoded()) else { return XCTFail("not spawnFailed") }
        XCTAssertEqual(call, "posix_spawn")
        XCTAssertEqual(errno, ENOENT)
        XCTAssertEqual(UpdateCommandError.spawn(ChildProcess.SpawnError(program: Array("ngnix".utf8), call: call, errno: errno))
            .description, "cannot run \"ngnix\": No such file or directory")

        let sent = ChildProcess.Completion(termination: .signalled(SIGTERM), timedOut: true, output: Array("reloading\n".utf8),
                                           outputDropped: 12, inputUnread: 3, duration: .milliseconds(5_500))
        guard case .finished(let completion) = try LauncherReport.decode(LauncherReport.finished(sent).encoded()) else {
            return XCTFail("not finished")
        }
        XCTAssertEqual(completion.termination, .signalled(SIGTERM))
        XCTAssertTrue(completion.timedOut)
        XCTAssertEqual(completion.output, sent.output)
        XCTAssertEqual(completion.outputDropped, 12)
        XCTAssertEqual(completion.inputUnread, 3)
        XCTAssertEqual(completion.duration, .milliseconds(5_500))
        XCTAssertEqual(UpdateHook.excerpt(completion), "reloading ... (12 more bytes)")

        guard case .refused(let reason) = try LauncherReport.decode(LauncherReport.refused(reason: "bad\nline").encoded()) else {
            return XCTFail("not refused")
        }
        XCTAssertEqual(reason, "bad\\nline", "one log line, whatever the launcher says")
    }

    func testReportsOutOfRangeAreRefused() {
        func finished(kind: UInt8, code: UInt32, timedOut: UInt8 = 0, counts: [UInt64] = [0, 0, 0], output: Int = 0) -> [UInt8] {
            var bytes: [UInt8] = [LauncherReport.finishedType, kind]
            LauncherWire.append(code, to: &bytes)
            bytes.append(timedOut)
            for count in counts { LauncherWire.append(count, to: &bytes) }
            return bytes + Array(repeating: 0x41, count: output)
        }
        XCTAssertNoThrow(try LauncherReport.decode(finished(kind: 0, code: 255, output: LauncherReport.maximumOutput)))
        XCTAssertEqual(decodeReportError(finished(kind: 0, code: 256)), .outOfRange(field: "termination", value: "kind 0, code 256"))
        XCTAssertEqual(decodeReportError(finished(kind: 1, code: 0)), .outOfRange(field: "termination", value: "kind 1, code 0"))
        XCTAssertEqual(decodeReportError(finished(kind: 1, code: 65)), .outOfRange(field: "termination", value: "kind 1, code 65"))
        XCTAssertEqual(decodeReportError(finished(kind: 3, code: 0)), .outOfRange(field: "termination", value: "kind 3, code 0"))
        XCTAssertEqual(decodeReportError(finished(kind: 0, code: 0, timedOut: 2)), .outOfRange(field: "timed out", value: "2"))
        XCTAssertEqual(decodeReportError(finished(kind: 0, code: 0, counts: [UInt64.max, 0, 0])),
                       .outOfRange(field: "output dropped", value: "\(UInt64.max)"))
        XCTAssertEqual(decodeReportError(finished(kind: 0, code: 0, counts: [0, 0, UInt64.max])),
                       .outOfRange(field: "duration", value: "\(UInt64.max) ns"))
        XCTAssertEqual(decodeReportError(finished(kind: 0, code: 0, output: LauncherReport.maximumOutput + 1)),
                       .outOfRange(field: "output", value: "\(LauncherReport.maximumOutput + 1) bytes"))
        XCTAssertEqual(decodeReportError([LauncherReport.startedType, 0, 0, 0, 0]), .outOfRange(field: "pid", value: "0"))
        XCTAssertEqual(decodeReportError([LauncherReport.startedType, 0, 0, 1, 0, 9]),
                       .trailingBytes(message: "launcher report", count: 1))
        XCTAssertEqual(decodeReportError([LauncherReport.spawnFailedType, 0, 0, 0, 0] + Array("x".utf8)),
                       .outOfRange(field: "errno", value: "0"))
        XCTAssertEqual(decodeReportError([LauncherReport.spawnFailedType, 0, 0, 0, 2] + Array("a b".utf8)),
                       .outOfRange(field: "call", value: "3 bytes, printable ASCII expected"))
        XCTAssertEqual(decodeReportError([0x01]), .unknownType(1), "a request is no report")
        XCTAssertEqual(decodeReportError([LauncherReport.finishedType, 0, 0]), .truncated(message: "launcher report"))
    }

    // MARK: Helpers

    private func decodeRequestError(_ bytes: [UInt8]) -> LauncherProtocolError? { refusal(LauncherRequest.decode, bytes) }

    private func decodeReportError(_ bytes: [UInt8]) -> LauncherProtocolError? { refusal(LauncherReport.decode, bytes) }

    private func refusal<Message>(_ decode: ([UInt8]) throws(LauncherProtocolError) -> Message,
                                  _ bytes: [UInt8]) -> LauncherProtocolError? {
        do {
            _ = try decode(bytes)
            return nil
        } catch {
            return error
        }
    }
}
