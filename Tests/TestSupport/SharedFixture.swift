/// A fixture made once for a whole test class (a PKI, a running responder: seconds of work)
/// and shared by its tests. Made on first use; a failure to make it is remembered and fails
/// every test that asks, with the reason. The class releases it in `class func tearDown`.
///
/// XCTest runs a class's tests one after another on one thread, which is what the unchecked
/// `Sendable` rests on.
public final class SharedFixture<Value>: @unchecked Sendable {
    private let make: () throws -> Value
    private let release: (Value) -> Void
    private var made: Result<Value, Error>?

    public init(make: @escaping () throws -> Value, release: @escaping (Value) -> Void = { _ in }) {
        self.make = make
        self.release = release
    }

    /// The fixture, made now if this is the first test to ask.
    public func value() throws -> Value {
        if made == nil { made = Result { try make() } }
        return try made!.get()
    }

    /// Releases the fixture (stops its processes); the next `value()` makes a new one.
    public func tearDown() {
        if case .success(let value)? = made { release(value) }
        made = nil
    }
}
