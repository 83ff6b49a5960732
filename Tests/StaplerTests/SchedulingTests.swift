import XCTest
@testable import Stapler

final class RefreshPolicyTests: XCTestCase {
    let policy = RefreshPolicy(minimumValidity: 7200, jitterFraction: 0.05, minimumDelay: 30)
    let now: Int64 = 1_000_000
    let farFuture: Int64 = 10_000_000

    func testRefreshesAtTheMidpointOfAWeekLongStaple() {
        // Valid for 7 days: the midpoint (3.5 days) comes long before nextUpdate - 2 h.
        let due = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 7 * 86400, fetchedAt: now,
                                     cacheMaxAge: nil, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(due, now + 7 * 86400 / 2)
    }

    func testShortStaplesRefreshMinimumValidityBeforeExpiry() {
        // Valid 3 h: the midpoint (1.5 h) is later than nextUpdate - 2 h (1 h).
        let due = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 3 * 3600, fetchedAt: now,
                                     cacheMaxAge: nil, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(due, now + 3600)
    }

    func testJitterOnlyMakesRefreshesEarlierAndByAtMostFivePercent() {
        let plain = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now, cacheMaxAge: nil,
                                       certificateNotAfter: farFuture, now: now, random: 0)
        let jittered = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now, cacheMaxAge: nil,
                                          certificateNotAfter: farFuture, now: now, random: 0.999)
        XCTAssertLessThan(jittered, plain)
        XCTAssertGreaterThanOrEqual(jittered, plain - Int64(Double(plain - now) * 0.05))
        // Many certificates issued together spread over more than a thousand distinct seconds.
        let spread = Set((0..<10_000).map { index in
            policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now, cacheMaxAge: nil,
                               certificateNotAfter: farFuture, now: now, random: Double(index) / 10_000)
        })
        XCTAssertGreaterThan(spread.count, 1000)
    }

    func testWaitsForCacheMaxAgeUnlessThatComesTooCloseToExpiry() {
        // max-age 2 days beats the 12 h midpoint when nextUpdate is 4 days out.
        let waited = policy.nextRefresh(thisUpdate: now - 86400 * 3, nextUpdate: now + 86400 * 4, fetchedAt: now,
                                        cacheMaxAge: 2 * 86400, certificateNotAfter: farFuture, now: now, random: 0.5)
        XCTAssertEqual(waited, now + 2 * 86400, "never before max-age runs out, jitter included")
        // max-age reaching past nextUpdate - minimumValidity is ignored.
        let ignored = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400, fetchedAt: now,
                                         cacheMaxAge: 86400, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(ignored, now + 43200)
    }

    func testNeverInThePastNorAfterTheCertificateExpires() {
        let stale = policy.nextRefresh(thisUpdate: now - 86400, nextUpdate: now + 60, fetchedAt: now,
                                       cacheMaxAge: nil, certificateNotAfter: farFuture, now: now, random: 0)
        XCTAssertEqual(stale, now + 30)
        let expiring = policy.nextRefresh(thisUpdate: now, nextUpdate: now + 86400 * 7, fetchedAt: now,
                                          cacheMaxAge: nil, certificateNotAfter: now + 3600, now: now, random: 0)
        XCTAssertEqual(expiring, now + 3600)
    }

    func testRecyclesOnlyStaplesWithMoreThanMinimumValidityLeft() {
        XCTAssertTrue(policy.isRecyclable(nextUpdate: now + 7201, now: now))
        XCTAssertFalse(policy.isRecyclable(nextUpdate: now + 7200, now: now))
    }
}

final class RetryBackoffTests: XCTestCase {
    let backoff = RetryBackoff(initial: 30, maximum: 3600, urgentMaximum: 300, jitterFraction: 0.1)

    func testDoublesFromThirtySecondsUpToAnHour() {
        let delays = (1...10).map { backoff.delay(failures: $0, urgent: false, random: 0.5) }
        XCTAssertEqual(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600])
        XCTAssertEqual(backoff.delay(failures: 1000, urgent: false, random: 0.5), 3600, "no overflow")
    }

    func testUrgentRetriesStayWithinFiveMinutes() {
        XCTAssertEqual(backoff.delay(failures: 8, urgent: true, random: 0.5), 300)
    }

    func testJitterStaysWithinTenPercent() {
        XCTAssertEqual(backoff.delay(failures: 3, urgent: false, random: 0), 108)
        XCTAssertEqual(backoff.delay(failures: 3, urgent: false, random: 1), 132)
    }
}

final class CacheControlTests: XCTestCase {
    func testReadsMaxAge() {
        XCTAssertEqual(CacheControl.maxAge("max-age=3600"), 3600)
        XCTAssertEqual(CacheControl.maxAge("public, max-age=86400, no-transform"), 86400)
        XCTAssertEqual(CacheControl.maxAge("public, MAX-AGE = \"60\""), 60)
        XCTAssertNil(CacheControl.maxAge("no-cache, max-age=60"))
        XCTAssertNil(CacheControl.maxAge("max-age=abc"))
        XCTAssertNil(CacheControl.maxAge("max-age=-5"))
        XCTAssertNil(CacheControl.maxAge(nil))
        XCTAssertNil(CacheControl.maxAge("public"))
    }
}
