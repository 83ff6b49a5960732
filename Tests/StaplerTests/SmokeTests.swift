import XCTest
@testable import Stapler

final class SmokeTests: XCTestCase {
    func testModuleImports() {}
}
