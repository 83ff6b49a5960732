import Foundation
import XCTest

/// What the end-to-end tests expect a running HAProxy to staple, failing at the caller's line.
extension HAProxyProcess {
    /// A TLS client asking for `site` is stapled `expected` within `timeout` (a push lands
    /// just after the log line that announces it).
    public func expectStaple(_ expected: StapleSeenByClient, for site: HAProxySite, timeout: TimeInterval = 10,
                             file: StaticString = #filePath, line: UInt = #line) {
        var seen: StapleSeenByClient?
        _ = waitUntil(timeout: timeout, interval: 0.1) {
            seen = try? self.stapleSeen(serverName: site.serverName)
            return seen == expected
        }
        XCTAssertEqual(seen, expected, "TLS client asking \(adminSocket) for \(site.serverName)", file: file, line: line)
    }
}
